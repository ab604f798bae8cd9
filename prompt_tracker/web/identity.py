"""Who is asking: the guard every request passes, per AUTH_MODE.

- ``none``: one local user, no sign-in (development only; production refuses it).
- ``accounts``: Flask-Login over the server-side session; anonymous pages redirect (303) to /login.
- ``header``: a trusted reverse proxy names the user in a header. The header is honoured only on
  requests whose TCP peer is in TRUSTED_PROXIES; from anywhere else the request is anonymous and refused.

In every mode, werkzeug's ProxyFix applies the X-Forwarded-* headers of requests (Socket.IO handshakes
included) whose TCP peer is in TRUSTED_PROXIES, so limits per address see the client, not the proxy.
A signed-in session's store id is recorded under its user, so disabling the user ends it at once.
Signed in, the session's work is the user's workspace (``store.workspaces.Workspace``),
attached on every request, shared by all the user's browsers; signing out ends only the session.
"""

import ipaddress

from flask import current_app, flash, g, jsonify, redirect, render_template, request, session, url_for
from flask_login import current_user, logout_user
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.middleware.proxy_fix import ProxyFix

from ..auth.accounts import find_user, password_changed, proxy_user, user_disabled
from ..auth.models import User
from ..domain.settings import STANDALONE
from ..extensions import db, login
from ..prompts.db_errors import is_outage
from ..prompts.models import Prompt
from ..replies.sign_out import sign_out_everywhere, stop_session
from ..store.user_sessions import forget_session, remember_session
from .errors import error_response, wants_json

LOCAL_USER = "local"
# Reachable without a user: the login page itself, static files and the load balancer's check.
OPEN_ENDPOINTS = {"auth.login", "static", "health.healthz"}
# Blueprints that sign requests in by a bearer token of their own, never by the session (the read API).
TOKEN_BLUEPRINTS = {"api"}
TRUSTED_ENVIRON_KEY = "prompt_tracker.trusted_proxy"
USERS_DOWN = (
    "The user database is not reachable right now, so this app cannot tell who you are. "
    "Nothing was changed and you are still signed in; try again in a moment."
)


@login.user_loader
def load_user(user_id: str) -> User | None:
    """The signed-in user of the session (Flask-Login keeps only the id there)."""
    if g.get("users_unreachable"):
        # The page answering this request's database error: Flask-Login's template context asks for
        # the user again, and a second error there would escape every error handler (a bare 500).
        return None
    return db.session.get(User, int(user_id)) if user_id.isdigit() else None


class TrustedProxies:
    """WSGI middleware: ProxyFix for requests from a trusted proxy; the user header stripped otherwise."""

    def __init__(self, wsgi_app, proxies: list[str], user_header: str):
        self.networks = [ipaddress.ip_network(proxy.strip(), strict=False) for proxy in proxies if proxy.strip()]
        self.proxied = ProxyFix(wsgi_app, x_for=1, x_proto=1, x_host=1, x_port=1)
        self.direct = wsgi_app
        self.header_key = "HTTP_" + user_header.upper().replace("-", "_")

    def trusted(self, address: str) -> bool:
        """True if ``address`` (the TCP peer) is one of the configured proxies."""
        try:
            peer = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(peer in network for network in self.networks)

    def __call__(self, environ, start_response):
        if self.trusted(environ.get("REMOTE_ADDR", "")):
            environ[TRUSTED_ENVIRON_KEY] = True
            return self.proxied(environ, start_response)
        environ[TRUSTED_ENVIRON_KEY] = False
        environ.pop(self.header_key, None)  # nobody else may name a user
        return self.direct(environ, start_response)


def init_app(app) -> None:
    """Bind Flask-Login (accounts mode) and the guard; a disabled user's sessions end at once."""
    if app.config["AUTH_MODE"] == "accounts":
        # Only here: its after-request hook reads the session, which would cost every request a load.
        login.init_app(app)
        login.login_view = "auth.login"
    app.before_request(identify)
    app.add_template_global(current_user_is_admin)
    app.add_template_global(work_scope)
    user_disabled.connect(end_sessions_of_disabled_user, app)
    password_changed.connect(end_other_sessions_after_new_password, app)


def init_proxies(app) -> None:
    """Put the trusted-proxy middleware in front of everything, Socket.IO included (call it last)."""
    if app.config["TRUSTED_PROXIES"] or app.config["AUTH_MODE"] == "header":
        app.wsgi_app = TrustedProxies(app.wsgi_app, app.config["TRUSTED_PROXIES"], app.config["AUTH_HEADER"])


def end_sessions_of_disabled_user(app, user: User, **extra) -> int:
    """Receiver of ``user_disabled``: end every session of the user; return how many."""
    return sign_out_everywhere(user.id)


def end_other_sessions_after_new_password(app, user: User, keep: str | None = None, **extra) -> int:
    """Receiver of ``password_changed``: end every session of the user but ``keep``; return how many."""
    return sign_out_everywhere(user.id, keep=keep)


def remember_signed_in(user: User, replaces: str | None = None) -> None:
    """Record the session (just regenerated) as the user's, so that disabling them can end it, and give
    it the user's workspace (what it held before, a visitor's work, joins it)."""
    interface = current_app.session_interface
    remember_session(user.id, session.own_store_id, interface.is_stored, replaces=replaces)
    use_workspace(user)


EARLIER_KEPT = (
    "You already had a conversation in {playgrounds}, so it is kept as it was; the one from before you "
    "signed in is kept beside it: download it from the notice above the conversation, and import it to use it."
)


def use_workspace(user: User) -> None:
    """Keep this request's work in the user's workspace (every browser of theirs shares it)."""
    kept = current_app.session_interface.attach_workspace(session, user.id)
    if kept:
        flash(EARLIER_KEPT.format(playgrounds=", ".join(map(playground_label, kept))), "info")


def playground_label(playground: str) -> str:
    """How a person knows a playground: the standalone one, or the prompt's name."""
    prefix, _, prompt_id = playground.partition("-")
    if prefix == "prompt" and prompt_id.isdigit():
        prompt = db.session.get(Prompt, int(prompt_id))
        if prompt is not None:
            return f"the playground of {prompt.name}"
    return "the standalone playground" if playground == STANDALONE else playground


def current_user_name() -> str | None:
    """The name of whoever is asking (``local`` without sign-in), or None for an anonymous request."""
    return g.get("user_name")


def current_actor():
    """Who acts in this request, for the audit log: the signed-in user, else the name (``local``)."""
    return g.get("user") or g.get("user_name")


def work_scope() -> str:
    """Whose the playground's work is, as the save buttons say it: the signed-in user's, else this browser's."""
    signed_in = current_app.config["AUTH_MODE"] != "none" and current_user_name() is not None
    return "yours" if signed_in else "this browser"


def current_user_is_admin() -> bool:
    """Whether whoever asks is an admin: the signed-in user's flag; everyone is the local admin in AUTH_MODE=none."""
    if current_app.config["AUTH_MODE"] == "none":
        return True
    user = g.get("user")
    return bool(user is not None and user.is_admin and not user.disabled)


def identify():
    """Set ``g.user_name`` for this request, or answer it: a redirect to sign in, or a refusal."""
    if request.blueprint in TOKEN_BLUEPRINTS:
        return None  # the blueprint checks its token; the session is never read
    mode = current_app.config["AUTH_MODE"]
    if mode == "none":
        g.user_name = g.log_user = LOCAL_USER
        return None
    if request.endpoint in OPEN_ENDPOINTS:
        return None
    try:
        user = header_user() if mode == "header" else account_user()
    except SQLAlchemyError as error:
        g.users_unreachable = True  # the answer renders as anonymous, without asking the database again
        db.session.rollback()
        if is_outage(error):
            return error_response(503, "Database unavailable", USERS_DOWN)
        raise  # tables missing or a bug: the database error handler answers it
    if user is None:
        return refuse_anonymous(mode)
    if user.disabled:
        # A session the CLI's sign-out did not reach (a request writing it meanwhile): it ends now.
        sign_out(user)
        return refuse_anonymous(mode, "Your account is disabled: ask an administrator.")
    g.user = user
    g.user_name = g.log_user = user.email
    use_workspace(user)
    return None


def account_user() -> User | None:
    """The user Flask-Login found in the session, if signed in (disabled or not: the guard decides)."""
    # Not ``is_authenticated``: Flask-Login makes it follow ``is_active``, so a disabled user would
    # look anonymous and keep their session rather than be signed out.
    return None if current_user.is_anonymous else current_user._get_current_object()


def header_user() -> User | None:
    """The user a trusted proxy named, if this request came through one with the header."""
    if not request.environ.get(TRUSTED_ENVIRON_KEY):
        return None
    name = (request.headers.get(current_app.config["AUTH_HEADER"]) or "").strip()
    if not name:
        return None
    user = proxy_user(name)
    if session.get("proxy_user") != user.email:
        # Another person behind the same browser: their predecessor's conversations must not show.
        if session.get("proxy_user") is not None:
            sign_out(find_user(session["proxy_user"]))
        session["proxy_user"] = user.email
        current_app.session_interface.regenerate(session)
        remember_signed_in(user)
    return user


def refuse_anonymous(mode: str, reason: str | None = None):
    """Redirect a browser to the login page (accounts), or refuse (header: only the proxy signs in)."""
    if mode == "accounts":
        reason = reason or "Sign in to continue."
        if wants_json():
            return jsonify(error=reason), 401
        target = request.full_path if request.method == "GET" else None
        return redirect(url_for("auth.login", next=target.rstrip("?") if target else None), 303)
    reason = reason or "Sign-in is handled by the reverse proxy, and this request did not come through it."
    if wants_json():
        return jsonify(error=reason), 401
    return render_template("auth/refused.html", reason=reason), 401


def signed_in_user() -> User | None:
    """The user this request's session is signed in as (accounts or header mode), if any."""
    if current_app.config["AUTH_MODE"] == "accounts":
        return account_user()
    if current_app.config["AUTH_MODE"] == "header" and session.get("proxy_user"):
        return find_user(session["proxy_user"])
    return None


def sign_out(user: User | None = None) -> None:
    """End the session: close its sockets, delete its own data (blob, CSRF token, who is signed in).

    The user's workspace (conversations, settings, Compare, Replay) stays, with its replies, for their
    next sign-in and their other browsers. ``user`` is whom the session was signed in as (default: as
    found in the session).
    """
    user = user or signed_in_user()
    stop_session(session.own_store_id, session.own_playgrounds())
    if user is not None:
        forget_session(user.id, session.own_store_id)
    if current_app.config["AUTH_MODE"] == "accounts":
        logout_user()
    current_app.session_interface.end(session)


def socket_user_id() -> int | None:
    """The id of the user an admitted socket's session is signed in as; None without sign-in."""
    if current_app.config["AUTH_MODE"] == "none":
        return None
    try:
        user = signed_in_user()
    except SQLAlchemyError:
        db.session.rollback()
        return None  # counted with its session only, until the database answers again
    return None if user is None else user.id


def socket_user_allowed() -> bool:
    """Whether the session behind a Socket.IO handshake may listen: signed in as its pages require."""
    mode = current_app.config["AUTH_MODE"]
    if mode == "none":
        return True
    if mode == "accounts":
        try:
            user = account_user()
        except SQLAlchemyError:
            db.session.rollback()
            return False  # the database is down: refused now, the page's script connects again later
        return user is not None and not user.disabled
    # header: the handshake came through the trusted proxy, for the user this session belongs to.
    name = (request.headers.get(current_app.config["AUTH_HEADER"]) or "").strip().lower()
    return bool(request.environ.get(TRUSTED_ENVIRON_KEY) and name and session.get("proxy_user") == name)
