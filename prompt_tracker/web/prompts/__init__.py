"""The prompt library's pages: list, show, edit, diff and import/export of prompts."""

from flask import Blueprint

bp = Blueprint("prompts", __name__, url_prefix="/prompts", template_folder="templates")

from . import errors, routes  # noqa: E402,F401  (registers the views and the database error pages)
