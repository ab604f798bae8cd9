"""The login form's CSRF token without a session: a signed double-submit cookie.

Flask-WTF keeps its token in the session, so every anonymous view of the login page (a crawler's, a
scanner's) would store a session in Redis. Instead the browser gets a random value in a cookie of its
own (path /login, HttpOnly), and the form's token is that value signed with SECRET_KEY: a POST is
accepted only with a token this app signed for the value that browser's cookie holds. The session is
created when someone signs in, not before.
"""

import hmac
import re
import secrets

from flask import current_app, g, request
from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE = "_prompt_tracker_login"
COOKIE_PATH = "/login"
SALT = "login-form"
NONCE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{43}$")  # secrets.token_urlsafe(32)


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt=SALT)


def _cookie_nonce() -> str | None:
    nonce = request.cookies.get(COOKIE, "")
    return nonce if NONCE_PATTERN.match(nonce) else None


def login_token() -> str:
    """The token for this browser's login form (a new random value for its cookie if it has none)."""
    if "login_nonce" not in g:
        g.login_nonce = _cookie_nonce() or secrets.token_urlsafe(32)
    return _serializer().dumps(g.login_nonce)


def set_login_cookie(response):
    """Give the browser the random value its form's token signs (when the page rendered one it lacks)."""
    nonce = g.get("login_nonce")
    if nonce and nonce != _cookie_nonce():
        response.set_cookie(
            COOKIE,
            nonce,
            max_age=int(current_app.permanent_session_lifetime.total_seconds()),
            path=COOKIE_PATH,
            httponly=True,
            secure=current_app.config["SESSION_COOKIE_SECURE"],
            samesite=current_app.config["SESSION_COOKIE_SAMESITE"],
        )
    return response


def drop_login_cookie(response):
    """Delete the cookie once signed in: the session's own CSRF token takes over."""
    response.delete_cookie(COOKIE, path=COOKIE_PATH)
    return response


def valid_login_token(token: str | None) -> bool:
    """Whether ``token`` is this app's signature of the value in this browser's cookie, and not too old."""
    nonce = _cookie_nonce()
    if not token or nonce is None:
        return False
    try:
        signed = _serializer().loads(token, max_age=int(current_app.permanent_session_lifetime.total_seconds()))
    except BadSignature:
        return False
    return isinstance(signed, str) and hmac.compare_digest(signed, nonce)
