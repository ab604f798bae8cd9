"""The read API (``/api/v1``: JSON, bearer tokens, no session, no CSRF) and its pages: a user's tokens
(``/account/tokens``) and the webhook deliveries (``/admin/webhooks``)."""

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1")
pages_bp = Blueprint("api_pages", __name__, template_folder="templates")

from . import pages, routes  # noqa: E402,F401  (registers the views)
