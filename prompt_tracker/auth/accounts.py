"""Users as plain functions: create, find, check or change a password, disable, make admin (the CLI and
views call these). Every change is an audit event, by the ``actor`` given (a user or a name)."""

from functools import cache

from blinker import Namespace
from flask import current_app
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from ..audit import record_event
from ..domain.refusals import Refused
from ..extensions import db
from .models import MAX_EMAIL_CHARS, User, utcnow

MIN_PASSWORD_CHARS = 12

# Sent with ``user=`` when a user is disabled: the web layer ends their sessions, sockets and replies
# (it lives above this one), and answers how many sessions it ended.
signals = Namespace()
user_disabled = signals.signal("user-disabled")
# Sent with ``user=`` and ``keep=`` (a session store id, or None) when a password changes: the web layer
# ends every session of the user but ``keep`` (the one that changed it), and answers how many it ended.
password_changed = signals.signal("password-changed")


@cache
def _dummy_hash(method: str) -> str:
    """Checked when the email is unknown, so a wrong email costs the same time as a wrong password."""
    return generate_password_hash("not a password of anyone", method=method)


def _hash_method() -> str:
    """Werkzeug's scrypt in every deployment; the unit tests' config names a cheap one (PASSWORD_HASH_METHOD)."""
    return current_app.config.get("PASSWORD_HASH_METHOD", "scrypt")


class AccountError(ValueError):
    """A user cannot be created or changed as asked (the message says why)."""


class WrongPassword(AccountError):
    """The current password given to change it is not right."""


class UnusableProxyUser(Refused):
    """The trusted proxy named a user that cannot be one here (too long, control characters): a bad request."""

    status = 400


def normalise_email(email: str) -> str:
    """The form an email or user name is stored and looked up in."""
    return (email or "").strip().lower()


def find_user(email: str) -> User | None:
    """The user with this email (or proxy user name), if any."""
    return db.session.scalar(db.select(User).where(User.email == normalise_email(email)))


def check_new_password(password: str | None) -> str:
    """Return the password if it is long enough, else raise AccountError saying so."""
    if password is None or len(password) < MIN_PASSWORD_CHARS:
        raise AccountError(f"The password must have at least {MIN_PASSWORD_CHARS} characters.")
    if len(password) > 1024:
        raise AccountError("The password is limited to 1,024 characters.")
    return password


def create_user(email: str, password: str | None, admin: bool = False, actor=None) -> User:
    """Create a user; ``password`` None is for header-mode users (the proxy signs them in)."""
    email = normalise_email(email)
    if not email or len(email) > MAX_EMAIL_CHARS:
        raise AccountError(f"Give an email of 1 to {MAX_EMAIL_CHARS} characters.")
    if password is not None:
        check_new_password(password)
    user = User(
        email=email,
        is_admin=admin,
        password_hash=generate_password_hash(password, method=_hash_method()) if password else "",
    )
    db.session.add(user)
    try:
        db.session.flush()
        record_event("user.created", actor, subject=email, user_id=user.id, admin=admin, password=password is not None)
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise AccountError(f"There is already a user {email}.") from None
    return user


def authenticate(email: str, password: str) -> User | None:
    """The user if the email and password match an enabled account, else None (never says which failed)."""
    user = find_user(email)
    if user is None or not user.password_hash:
        check_password_hash(_dummy_hash(_hash_method()), password or "")
        return None
    if not check_password_hash(user.password_hash, password or "") or user.disabled:
        return None
    user.last_login_at = utcnow()
    db.session.commit()
    return user


def proxy_user(name: str, actor: str = "proxy") -> User:
    """The user a trusted proxy named, created on first sight (so an admin can disable them);
    UnusableProxyUser if the name cannot be a user's. ``actor``: who the audit log says created it."""
    name = normalise_email(name)
    if len(name) > MAX_EMAIL_CHARS or any(ord(character) < 32 or ord(character) == 127 for character in name):
        raise UnusableProxyUser(
            f"The reverse proxy named a user this app cannot take: a user name has at most {MAX_EMAIL_CHARS} "
            "characters and no control characters. Ask your administrator to check the proxy's user header."
        )
    user = find_user(name)
    if user is not None:
        return user
    try:
        return create_user(name, None, actor=actor)
    except AccountError:
        # Two first requests at once: the other one created the row.
        user = find_user(name)
        if user is None:
            raise
        return user


def existing_user(email: str) -> User:
    """The user with this email, or AccountError saying there is none."""
    user = find_user(email)
    if user is None:
        raise AccountError(f"There is no user {normalise_email(email)}.")
    return user


def set_disabled(email: str, disabled: bool = True, actor=None) -> tuple[User, int]:
    """Disable (or enable again) a user; a disabled user is signed out of every session at once.

    Returns the user and how many sessions were ended. Enabling revives none of them: the user signs in again.
    """
    user = existing_user(email)
    if user.disabled != disabled:
        user.disabled = disabled
        record_event("user.disabled" if disabled else "user.enabled", actor, subject=user.email, user_id=user.id)
    db.session.commit()
    current_app.logger.info("user %s %s", user.id, "disabled" if disabled else "enabled")
    ended = 0
    if disabled:
        answers = user_disabled.send(current_app._get_current_object(), user=user)
        ended = sum(result or 0 for _receiver, result in answers)
    return user, ended


def set_admin(email: str, admin: bool = True, actor=None) -> User:
    """Make a user an admin (or not): admins move protected labels and manage users."""
    user = existing_user(email)
    if user.is_admin != admin:
        user.is_admin = admin
        record_event(
            "user.admin_granted" if admin else "user.admin_revoked", actor, subject=user.email, user_id=user.id
        )
        db.session.commit()
    return user


def set_password(user: User, password: str, actor=None, keep_session: str | None = None) -> int:
    """Give ``user`` a new password; every session of theirs but ``keep_session`` ends. Returns how many ended."""
    check_new_password(password)
    user.password_hash = generate_password_hash(password, method=_hash_method())
    record_event("user.password_changed", actor, subject=user.email, user_id=user.id)
    db.session.commit()
    current_app.logger.info("user %s password changed", user.id)
    answers = password_changed.send(current_app._get_current_object(), user=user, keep=keep_session)
    return sum(result or 0 for _receiver, result in answers)


def change_own_password(user: User, current: str, new: str, keep_session: str | None) -> int:
    """A user changes their own password: ``current`` must be right; their other sessions end (how many)."""
    if not user.password_hash or not check_password_hash(user.password_hash, current or ""):
        raise WrongPassword("The current password is not right. Nothing was changed.")
    if new == current:
        raise AccountError("The new password is the same as the current one. Nothing was changed.")
    return set_password(user, new, actor=user, keep_session=keep_session)


def list_users() -> list[User]:
    """Every user, by email."""
    return list(db.session.scalars(db.select(User).order_by(User.email)))
