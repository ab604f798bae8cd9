"""The signed-in user's own account: /account (change the password; API tokens at /account/tokens)."""

from flask import Blueprint

bp = Blueprint("account", __name__, url_prefix="/account", template_folder="templates")

from . import routes  # noqa: E402,F401  (registers the views)
