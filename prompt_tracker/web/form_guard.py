"""A guard on request bodies: the app's POSTs take UTF-8 forms and nothing else."""

import io
from urllib.parse import parse_qsl

from flask import abort, current_app, request

# Endpoints that take a file, up to MAX_IMPORT_BYTES (the playground blueprint is registered twice).
LARGE_UPLOADS = {"playground.import_conversation", "prompt_playground.import_conversation", "evals.import_cases_file"}
# Blueprints that take JSON bodies and read them themselves (the read API).
JSON_BLUEPRINTS = {"api"}
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
FORM_NOT_UTF8 = "The form was not sent as UTF-8 text, so it could not be read. Nothing was changed: reload the page and send it again."
NO_FILES = "This form takes text fields only, not a file. Nothing was changed: reload the page and send it again."
NOT_A_FORM = "This address takes a form (application/x-www-form-urlencoded or multipart/form-data), not {type}. Nothing was changed."


def refuse_unreadable_forms():
    """Refuse a request body that is not a UTF-8 form with a clear 415 or 400, before anything reads it.

    Register with ``app.before_request`` before ``csrf.init_app``, so that such a body is named for what
    it is rather than reported as a missing token. Without it Werkzeug drops an undecodable
    urlencoded body silently, keeps ``%FF`` as the text "%FF" and turns bad bytes of multipart fields
    into U+FFFD; and Flask-WTF takes a JSON body as the form (a 500 when it is not an object).
    The app's forms have no file fields, so a whole multipart body must be UTF-8 too.
    """
    if request.method not in ("POST", "PUT", "PATCH") or not (request.content_length or request.mimetype):
        return None
    if request.blueprint in JSON_BLUEPRINTS:
        return None
    if request.endpoint in LARGE_UPLOADS:
        limit = current_app.config["MAX_IMPORT_BYTES"]
        if (request.content_length or 0) > limit:
            abort(413, f"The file is larger than {limit // (1024 * 1024)} MB, so nothing was imported.")
        request.max_content_length = limit
        if request.mimetype == FORM_TYPES[1]:
            return None  # the file's bytes are the view's to check (it names a non-UTF-8 file as such)
    if request.mimetype not in FORM_TYPES:
        abort(415, NOT_A_FORM.format(type=request.mimetype or "a body without a content type"))
    if request.content_length is None and "wsgi.input_terminated" in request.environ:
        measure_chunked_body()
    body = request.get_data(cache=True)  # the form parser reads these cached bytes afterwards
    try:
        text = body.decode("utf-8")
        if request.mimetype == FORM_TYPES[0]:
            parse_qsl(text, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        abort(400, FORM_NOT_UTF8)
    if request.mimetype == FORM_TYPES[1] and request.files:
        abort(400, NO_FILES)
    return None


def measure_chunked_body() -> None:
    """Read a body sent without Content-Length (chunked) up to the limit: 413 past it.

    Werkzeug cuts such a body at MAX_CONTENT_LENGTH without a word, so an oversized message
    was parsed truncated (and usually failed as a 400). Read here, it is handed on with its length.
    """
    limit = request.max_content_length
    data = request.environ["wsgi.input"].read(limit + 1)
    if len(data) > limit:
        abort(413)
    request.environ["wsgi.input"] = io.BytesIO(data)
    request.environ["CONTENT_LENGTH"] = str(len(data))
