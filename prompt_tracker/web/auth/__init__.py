"""Sign-in pages and who is asking: AUTH_MODE none (one local user), accounts (Flask-Login, users in
the database) or header (a trusted reverse proxy names the user)."""

from flask import Blueprint

bp = Blueprint("auth", __name__, template_folder="templates")

from . import routes  # noqa: E402,F401  (registers the views)
