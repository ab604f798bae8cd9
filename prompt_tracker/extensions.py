"""Every extension, created unbound here and bound to the app in ``create_app``.

``services`` (the app's Redis clients, conversation store and queue) is created in ``store.services``,
which uses it, and handed out here with the others."""

from flask_limiter import Limiter
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_socketio import SocketIO
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy.orm import DeclarativeBase

from .store.services import services

csrf = CSRFProtect()
# The session is Flask-Session's (server-side), so Socket.IO must not keep its own copy.
socketio = SocketIO(manage_session=False)


class Base(DeclarativeBase):
    """Declarative base of every model (prompts and versions; users later)."""


# Durable data (prompts and versions) lives in a relational database: SQLite in development,
# PostgreSQL in production. Schema changes go through Alembic revisions in migrations/.
db = SQLAlchemy(model_class=Base)
migrate = Migrate()

# Sign-in (AUTH_MODE accounts) and the per-user rate limits (storage bound in the factory).
login = LoginManager()
LIMIT_PREFIX = "prompt_tracker:limit"  # Flask-Limiter's keys: the worker counts a replay's turns under the same
limiter = Limiter(key_func=lambda: "global", key_prefix=LIMIT_PREFIX)

__all__ = ["Base", "csrf", "db", "limiter", "login", "migrate", "services", "socketio"]
