"""The read API: ``GET /api/v1/prompts``, ``GET /api/v1/prompts/<slug>`` and ``POST /api/v1/prompts/<slug>/render``.

Signed in by ``Authorization: Bearer <token>`` only: the session is never opened (a browser's cookie
alone gets a 401, and no cookie is ever set), so there is no CSRF token to send either. Every error
is JSON, ``{"error": "<sentence>"}``. Requests are limited per token (RATE_LIMIT_API).
"""

from flask import current_app, g, jsonify, make_response, request
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException

from ...auth.tokens import authenticate_token, token_digest
from ...domain.refusals import Refused
from ...extensions import csrf, db, limiter
from ...limits import limit_sentence
from ...prompts.api import BadRequest, etag_of, find, list_json, parse_selector, render_json, version_json
from ...prompts.db_errors import is_outage
from . import bp

csrf.exempt(bp)  # no session, so no CSRF token: a bearer token is not sent by a browser on its own


def bearer_token() -> str | None:
    """The token of the request's ``Authorization: Bearer`` header, if any."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


def token_key() -> str:
    """Rate-limit key: the token's digest (what the table holds), so each token has its own rate."""
    token = bearer_token()
    return "api:" + (token_digest(token) if token else f"ip:{request.remote_addr}")


def api_limit() -> str:
    return current_app.config["RATE_LIMIT_API"]


def too_many_requests(limit):
    response = jsonify(error=limit_sentence("API requests", limit))
    response.status_code = 429
    return response


# One counter per token for every endpoint of the API (a per-route limit would multiply it).
limiter.shared_limit(api_limit, scope="api", key_func=token_key, on_breach=too_many_requests)(bp)


@bp.before_request
def authenticate():
    """Sign the request in by its bearer token (TokenRefused: 401, or 403 for a disabled user)."""
    user = authenticate_token(bearer_token())
    g.api_user = user
    g.user_name = g.log_user = user.email


@bp.errorhandler(Refused)
def refused(refusal: Refused):
    return jsonify(refusal.json()), refusal.status


@bp.errorhandler(HTTPException)
def http_error(error: HTTPException):
    if error.response is not None:  # the rate limit's own answer
        return error.response
    return jsonify(error=error.description), error.code


@bp.errorhandler(SQLAlchemyError)
def database_error(error: SQLAlchemyError):
    db.session.rollback()
    if is_outage(error):
        return jsonify(error="The prompt database is not reachable right now; try again in a moment."), 503
    raise error


@bp.get("/prompts")
def prompts():
    return jsonify(prompts=list_json())


@bp.get("/prompts/<slug>")
def prompt(slug: str):
    """One version (``?label=`` or ``?version=``; default latest) with an ETag; 304 for ``If-None-Match``."""
    label, number = parse_selector(request.args.get("label"), request.args.get("version"))
    answer = version_json(*find(slug, label, number))
    response = jsonify(answer)
    response.set_etag(etag_of(answer))
    return response.make_conditional(request)


@bp.post("/prompts/<slug>/render")
def render(slug: str):
    """The version's request for its provider's SDK, with the system prompt rendered from ``variables``."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest('Send a JSON object: {"label" or "version", "variables": {...}, "messages": [...]}.')
    label, number = parse_selector(body.get("label"), body.get("version"))
    config = current_app.config
    answer = render_json(
        *find(slug, label, number),
        body.get("variables"),
        body.get("messages"),
        max_messages=config["MAX_CONVERSATION_MESSAGES"],
        max_chars=config["MAX_MESSAGE_CHARS"],
    )
    return make_response(jsonify(answer))


@bp.route("/<path:anything>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def no_such_endpoint(anything: str):
    """Any other address under /api/v1 is a JSON 404 too (a client of the API never gets a page)."""
    return jsonify(error=f"There is no API endpoint /api/v1/{anything}."), 404
