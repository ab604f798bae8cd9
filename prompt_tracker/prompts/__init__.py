"""The prompt library: named prompts with immutable, numbered versions, in the database."""

from flask import Blueprint

bp = Blueprint("prompts", __name__, url_prefix="/prompts", template_folder="templates")

from . import routes  # noqa: E402,F401  (registers the views)
