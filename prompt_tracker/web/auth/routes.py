"""Sign-in views: GET/POST /login (accounts mode) and POST /logout."""

from urllib.parse import urlsplit

from flask import abort, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import login_user

from ...auth.accounts import authenticate, normalise_email
from ...extensions import limiter
from ...limits import limit_sentence
from ..identity import sign_out
from ..rate_limits import client_ip, refuse
from . import bp
from .forms import LoginForm

WRONG_CREDENTIALS = "That email and password do not match an account."


def login_limit() -> str:
    return current_app.config["RATE_LIMIT_LOGINS"]


def login_limit_per_ip() -> str:
    return current_app.config["RATE_LIMIT_LOGINS_PER_IP"]


def login_account() -> str:
    """Rate-limit key of the account being tried (failed attempts per account)."""
    return "login:" + normalise_email(request.form.get("email", ""))


def failed(response) -> bool:
    """Only failed attempts count against the login limits."""
    return response.status_code == 401


def too_many_attempts(limit):
    return refuse(limit_sentence("failed sign-ins", limit), lambda sentence: _login_page(LoginForm(), sentence))


def _login_page(form, error=None):
    return current_app.make_response(render_template("auth/login.html", form=form, error=error))


def safe_next(target: str | None) -> str:
    """``next`` when it is a path on this site, else the start page (no open redirect)."""
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and target.startswith("/") and not target.startswith("//"):
            return target
    return url_for("index")


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(
    login_limit_per_ip, key_func=client_ip, methods=["POST"], deduct_when=failed, on_breach=too_many_attempts
)
@limiter.limit(login_limit, key_func=login_account, methods=["POST"], deduct_when=failed, on_breach=too_many_attempts)
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
    user = authenticate(form.email.data, form.password.data) if form.validate_on_submit() else None
    if user is None:
        response = _login_page(form, WRONG_CREDENTIALS)
        response.status_code = 401
        return response
    login_user(user)
    # A new id for the signed-in session: the one used before signing in stops working at once.
    current_app.session_interface.regenerate(session)
    return redirect(safe_next(request.args.get("next")), 303)


@bp.post("/logout")
def logout():
    sign_out()
    flash("You are signed out.", "info")
    if current_app.config["AUTH_MODE"] == "accounts":
        return redirect(url_for("auth.login"), 303)
    return redirect(url_for("index"), 303)
