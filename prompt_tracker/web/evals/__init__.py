"""A prompt's test cases (and, beside them, its eval runs): pages under /prompts/<slug>/."""

from flask import Blueprint

bp = Blueprint("evals", __name__, url_prefix="/prompts/<slug>", template_folder="templates")

from . import cases  # noqa: E402,F401  (registers the views)
