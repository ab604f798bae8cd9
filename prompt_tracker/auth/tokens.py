"""API tokens: a user's bearer tokens for the read API, shown once and stored only as their SHA-256.

A token is ``pt_`` and 43 URL-safe characters (256 random bits). The table holds its SHA-256 hex digest,
so neither the database nor a backup holds a token anyone could present; a lookup is one query on the
digest's unique index. A revoked token, or one whose user is disabled, stops working at once.
"""

import functools
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ForeignKey, Index, String, bindparam, select, update
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..audit import record_event
from ..domain.refusals import Refused
from ..extensions import db
from .accounts import AccountError, find_user, normalise_email
from .models import User, utcnow

TOKEN_PREFIX = "pt_"
MAX_TOKEN_NAME_CHARS = 100
# last_used_at is written at most this often per token: a busy service's fetches are not each a write.
LAST_USED_PRECISION = timedelta(seconds=60)


class ApiToken(db.Model):
    """A bearer token of a user for the read API (only its SHA-256 is kept)."""

    __tablename__ = "api_tokens"
    __table_args__ = (Index("ix_api_tokens_user_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(MAX_TOKEN_NAME_CHARS))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)

    user: Mapped[User] = relationship()

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def __repr__(self) -> str:
        return f"<ApiToken {self.id} {self.name!r}>"


class TokenRefused(Refused):
    """A request to the API with no token, an unknown or revoked one, or one of a disabled user."""

    status = 401


@dataclass(frozen=True)
class NewToken:
    """A token just created: the row, and the token itself, which is never shown again."""

    record: ApiToken
    token: str


def token_digest(token: str) -> str:
    """The SHA-256 hex digest a token is stored and looked up by."""
    return hashlib.sha256(token.encode()).hexdigest()


def check_token_name(name: str) -> str:
    """The name cleaned, or AccountError saying why it cannot be one."""
    name = (name or "").strip()
    if not name:
        raise AccountError("Give the token a name (what uses it, e.g. “billing service”).")
    if len(name) > MAX_TOKEN_NAME_CHARS:
        raise AccountError(f"Token names are limited to {MAX_TOKEN_NAME_CHARS} characters; this one has {len(name)}.")
    return name


def create_token(user: User, name: str, actor=None) -> NewToken:
    """Create a token for ``user`` named ``name`` (an audit event by ``actor``, default the user); the answer
    holds the token (shown once)."""
    name = check_token_name(name)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    record = ApiToken(user_id=user.id, name=name, token_sha256=token_digest(token))
    db.session.add(record)
    db.session.flush()
    record_event("token.created", actor or user, subject=user.email, user_id=user.id, token_id=record.id, name=name)
    db.session.commit()
    return NewToken(record, token)


def create_token_for(email: str, name: str, actor=None) -> NewToken:
    """Create a token for the user with ``email`` (the CLI); AccountError if there is none."""
    user = find_user(email)
    if user is None:
        raise AccountError(f"There is no user {normalise_email(email)}.")
    return create_token(user, name, actor=actor)


def user_tokens(user: User) -> list[ApiToken]:
    """The user's tokens, newest first, revoked ones included."""
    return list(db.session.scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id.desc())))


def all_tokens() -> list[ApiToken]:
    """Every token with its user, by id."""
    return list(db.session.scalars(select(ApiToken).order_by(ApiToken.id)))


def revoke_token(token_id: int, user: User | None = None, actor=None) -> ApiToken:
    """Revoke token ``token_id`` (only the user's own when ``user`` is given; an audit event by ``actor``,
    default that user); AccountError if there is none."""
    record = db.session.get(ApiToken, token_id)
    if record is None or (user is not None and record.user_id != user.id):
        raise AccountError(f"There is no token {token_id}" + (" of yours." if user is not None else "."))
    if record.revoked_at is None:
        record.revoked_at = utcnow()
        record_event(
            "token.revoked",
            actor or user,
            subject=record.user.email,
            user_id=record.user_id,
            token_id=record.id,
            name=record.name,
        )
        db.session.commit()
    return record


@functools.cache
def _token_statement():
    """The token's lookup, built once (building it costs more than running it)."""
    return (
        select(ApiToken.id, ApiToken.last_used_at, ApiToken.revoked_at, User)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_sha256 == bindparam("digest"))
    )


def authenticate_token(token: str | None) -> User:
    """The enabled user whose live token this is; TokenRefused (401, or 403 for a disabled user) otherwise.

    One query on the digest's unique index; last_used_at is written at most once a minute per token.
    """
    if not token:
        raise TokenRefused("Send an API token: Authorization: Bearer <token> (create one at /account/tokens).")
    row = db.session.execute(_token_statement(), {"digest": token_digest(token)}).first()
    if row is None or row.revoked_at is not None:
        raise TokenRefused("This API token is not valid: it is unknown or was revoked.")
    user = row.User
    if user.disabled:
        raise TokenRefused("The account this API token belongs to is disabled.", status=403)
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_PRECISION:
        db.session.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now))
        db.session.commit()
    return user
