"""Admins' pages: /admin/users (disable, enable, make or unmake admins) and /audit (the whole audit log)."""

from flask import Blueprint

bp = Blueprint("admin", __name__, template_folder="templates")

from . import routes  # noqa: E402,F401  (registers the views)
