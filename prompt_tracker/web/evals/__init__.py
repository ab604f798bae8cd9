"""Test cases and runs of a prompt: /prompts/<slug>/tests (cases) and /prompts/<slug>/runs (runs)."""

from flask import Blueprint

bp = Blueprint("evals", __name__, url_prefix="/prompts", template_folder="templates")

from . import cases, run_events, runs  # noqa: E402,F401  (registers the views and the socket handlers)
