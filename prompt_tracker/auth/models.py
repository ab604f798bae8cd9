"""Users: who may sign in (accounts mode), or who the proxy named (header mode)."""

from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from ..domain.times import utcnow
from ..extensions import db

MAX_EMAIL_CHARS = 254


class User(UserMixin, db.Model):
    """A person who uses the workbench; a disabled user is signed out at their next request."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    # An email in accounts mode; the proxy's user name in header mode. Stored lower-cased.
    email: Mapped[str] = mapped_column(String(MAX_EMAIL_CHARS), unique=True)
    # Empty for header-mode users, who never hold a password here.
    password_hash: Mapped[str] = mapped_column(String(255), default="")
    is_admin: Mapped[bool] = mapped_column(default=False)
    disabled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(default=None)

    @property
    def is_active(self) -> bool:
        """Flask-Login's notion: a disabled user is not active and cannot stay signed in."""
        return not self.disabled

    def __repr__(self) -> str:
        return f"<User {self.email}>"
