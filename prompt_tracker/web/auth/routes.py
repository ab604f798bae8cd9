"""Sign-in views: GET/POST /login (accounts mode) and POST /logout."""

import time
from urllib.parse import urlsplit

from flask import abort, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import login_user
from flask_wtf.csrf import CSRFError
from limits import parse
from redis.exceptions import RedisError

from ...auth.accounts import authenticate, normalise_email
from ...extensions import csrf, limiter
from ...limits import limit_sentence
from ..identity import remember_signed_in, sign_out
from ..rate_limits import client_ip, refuse
from . import bp
from .forms import LoginForm
from .login_token import drop_login_cookie, login_token, set_login_cookie, valid_login_token

WRONG_CREDENTIALS = "That email and password do not match an account."


def login_limit() -> str:
    return current_app.config["RATE_LIMIT_LOGINS"]


def login_limit_per_ip() -> str:
    return current_app.config["RATE_LIMIT_LOGINS_PER_IP"]


def login_account_from_address() -> str:
    """Rate-limit key of the account being tried from this address: failures here lock out no one else."""
    return f"login:{normalise_email(request.form.get('email', ''))}:{request.remote_addr}"


def failed(response) -> bool:
    """Only failed attempts count against the login limits."""
    return response.status_code == 401


def too_many_attempts(limit):
    return refuse(limit_sentence("failed sign-ins", limit), lambda sentence: _login_page(LoginForm(), sentence))


def _login_page(form, error=None):
    page = render_template("auth/login.html", form=form, error=error, login_token=login_token())
    return set_login_cookie(current_app.make_response(page))


def slow_down_if_attacked(email: str) -> None:
    """Past RATE_LIMIT_LOGINS_PER_ACCOUNT failures on the account from anywhere, wait before checking.

    Slows a guesser spread over many addresses, yet never refuses the right password, so nobody can
    lock an account's owner out by failing on purpose.
    """
    try:
        attacked = not limiter.limiter.test(_account_limit(), "login-account", email)
    except RedisError:
        return  # the counters are down: the per-address limits still hold
    if attacked:
        time.sleep(current_app.config["LOGIN_SLOWDOWN_SECONDS"])


def count_account_failure(email: str) -> None:
    """Count a failed sign-in against the account, whatever the address."""
    try:
        limiter.limiter.hit(_account_limit(), "login-account", email)
    except RedisError:
        pass


def _account_limit():
    return parse(current_app.config["RATE_LIMIT_LOGINS_PER_ACCOUNT"])


def safe_next(target: str | None) -> str:
    """``next`` when it is a path on this site, else the start page (no open redirect)."""
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and target.startswith("/") and not target.startswith("//"):
            return target
    return url_for("index")


@bp.route("/login", methods=["GET", "POST"])
@csrf.exempt  # the form's token lives in a cookie of its own (login_token), not in a session
@limiter.limit(
    login_limit_per_ip, key_func=client_ip, methods=["POST"], deduct_when=failed, on_breach=too_many_attempts
)
@limiter.limit(
    login_limit, key_func=login_account_from_address, methods=["POST"], deduct_when=failed, on_breach=too_many_attempts
)
def login():
    if current_app.config["AUTH_MODE"] != "accounts":
        abort(
            404,
            "There is no login page: sign-in is "
            + ("off (AUTH_MODE=none)." if current_app.config["AUTH_MODE"] == "none" else "done by the reverse proxy."),
        )
    form = LoginForm()
    if request.method == "GET":
        return _login_page(form)
    if not valid_login_token(request.form.get("csrf_token")):
        raise CSRFError("The CSRF token is missing or invalid.")
    email = normalise_email(form.email.data or "")
    slow_down_if_attacked(email)
    user = authenticate(form.email.data, form.password.data) if form.validate() else None
    if user is None:
        count_account_failure(email)
        response = _login_page(form, WRONG_CREDENTIALS)
        response.status_code = 401
        return response
    login_user(user)
    # A new id for the signed-in session: the one used before signing in stops working at once.
    before = session.own_store_id
    current_app.session_interface.regenerate(session)
    remember_signed_in(user, replaces=before)
    return drop_login_cookie(redirect(safe_next(request.args.get("next")), 303))


@bp.post("/logout")
def logout():
    sign_out()
    if current_app.config["AUTH_MODE"] == "none":
        flash("You are signed out.", "info")
    else:  # the user's workspace stays (``web.identity.sign_out``)
        flash("You are signed out. Your conversations and settings are kept for your next sign-in.", "info")
    if current_app.config["AUTH_MODE"] == "accounts":
        return redirect(url_for("auth.login"), 303)
    return redirect(url_for("index"), 303)
