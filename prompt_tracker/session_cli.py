"""``flask sessions``: inspect and purge the sessions stored in Redis."""

from flask.cli import AppGroup

sessions_cli = AppGroup("sessions", help="Inspect and purge playground sessions stored in Redis.")
