"""Error pages in one place: HTML for people, JSON for the page's script; never a traceback.

Refusals (``domain.refusals.Refused``: a status and a sentence) are answered here too, by one
handler: JSON for the page's script, else the page the form came from, re-rendered by the view's
own ``refusal page`` (``@refusals_shown_by``) with the sentence and what the user typed.
"""

import functools
from collections.abc import Callable

from flask import Blueprint, g, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from redis.exceptions import RedisError
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.http import HTTP_STATUS_CODES

from ..domain.refusals import Refused

bp = Blueprint("errors", __name__)

STORE_DOWN = "The session store (Redis) is not reachable right now. Nothing was changed; try again in a moment."

EXPLANATIONS = {
    400: "The request could not be understood.",
    404: "There is nothing at this address.",
    405: "This address does not accept that kind of request.",
    413: "That was too large to accept. Shorten the message or the system prompt and send it again.",
    415: "This address does not accept that kind of content.",
    503: STORE_DOWN,
}


# The page's script (static/requests.js) asks with this request header for a 4xx JSON answer as a
# 200 carrying its status in REFUSED_STATUS: Chromium logs every 4xx a fetch receives as a console
# error ("Failed to load resource"), and an expected refusal with its sentence is none.
QUIET_REFUSALS = "Prompt-Tracker-Refusals"
REFUSED_STATUS = "Prompt-Tracker-Status"


def wants_json() -> bool:
    """True when the client (the page's script) asked for JSON rather than a page or a redirect."""
    return request.accept_mimetypes.best == "application/json"


def error_response(status: int, title: str, detail: str):
    """Render an error as a page, or as JSON when the client asked for JSON."""
    if wants_json():
        return jsonify(error=detail), status
    return render_template("errors/error.html", status=status, title=title, detail=detail), status


RefusalPage = Callable[[Refused], object]  # a view's page for a refusal: re-rendered (typed text kept) or redirected


def refusals_shown_by(page: RefusalPage):
    """Decorate a view: a refusal it raises is shown, to a form without script, by ``page(refusal)``."""

    def decorate(view):
        @functools.wraps(view)
        def showing_refusals(*args, **kwargs):
            g.refusal_page = page
            return view(*args, **kwargs)

        return showing_refusals

    return decorate


def answer_refusal(refusal: Refused, page: RefusalPage | None = None):
    """JSON (``refusal.json()``) with the refusal's status for the page's script; else the view's page for it.

    ``page`` defaults to the one the view declared; a view without one answers with the error page.
    """
    g.refusal = refusal  # what was refused counts nothing against the send rate (``rate_limits``)
    if wants_json():
        return jsonify(refusal.json()), refusal.status
    page = page or g.get("refusal_page")
    if page is None:
        title = HTTP_STATUS_CODES.get(refusal.status, "Not done")
        return render_template("errors/error.html", status=refusal.status, title=title, detail=refusal.sentence), (
            refusal.status
        )
    return page(refusal)


@bp.after_app_request
def quiet_refusal(response):
    """A 4xx JSON answer to a script that asked (``QUIET_REFUSALS``) as a 200 with the status in a header."""
    if 400 <= response.status_code < 500 and response.is_json and request.headers.get(QUIET_REFUSALS) == "200":
        response.headers[REFUSED_STATUS] = str(response.status_code)
        response.status_code = 200
    return response


@bp.app_errorhandler(Refused)
def refused(refusal):
    return answer_refusal(refusal)


@bp.app_errorhandler(CSRFError)
def csrf_error(error):
    return error_response(
        400,
        "Form expired",
        "This form was not sent by the current page (missing or stale security token). "
        "Nothing was changed: reload the page and try again.",
    )


@bp.app_errorhandler(RedisError)
def redis_error(error):
    return error_response(503, "Service unavailable", STORE_DOWN)


@bp.app_errorhandler(HTTPException)
def http_error(error):
    if isinstance(error, InternalServerError):
        return internal_error(error)
    if error.response is not None:  # a view's own answer, carried by the exception (rate limits)
        return error.response
    # A description given with abort() says more than ours; Werkzeug's stock ones say less.
    custom = error.description and error.description != type(error).description
    detail = error.description if custom else EXPLANATIONS.get(error.code) or error.description
    return error_response(error.code, error.name, detail)


def internal_error(error):
    """A 500; one caused by Redis (even in session saving) is reported as the 503 it is."""
    original = getattr(error, "original_exception", None)
    if isinstance(original, RedisError):
        return redis_error(original)
    return error_response(
        500, "Something went wrong", "An unexpected error happened. Nothing you typed was lost; try again."
    )
