"""Which sessions a signed-in user has: a Redis set of store ids per user (DB 0), kept at sign-in and
sign-out, so that disabling the user ends every one of their sessions at once."""

from collections.abc import Callable

from ..domain.keys import user_sessions_key
from .services import services


def remember_session(user_id: int, store: str, stored: Callable[[str], bool], replaces: str | None = None) -> None:
    """Record session ``store`` as the user's (and drop ``replaces``, its id before a rotation).

    The set has no expiry, since a session in use slides for ever: each sign-in drops the members
    whose session is gone (``stored(store_id)`` False), so the set stays as small as the user's sessions.
    """
    key = user_sessions_key(user_id)
    redis = services.jobs_redis
    gone = [member for member in (_text(m) for m in redis.smembers(key)) if member != store and not stored(member)]
    with redis.pipeline(transaction=False) as pipe:
        pipe.sadd(key, store)
        for member in [*gone, *([replaces] if replaces and replaces != store else [])]:
            pipe.srem(key, member)
        pipe.execute()


def forget_session(user_id: int, store: str) -> None:
    """Drop session ``store`` from the user's set (it signed out)."""
    services.jobs_redis.srem(user_sessions_key(user_id), store)


def user_sessions(user_id: int) -> list[str]:
    """The store ids of the user's sessions."""
    return sorted(_text(member) for member in services.jobs_redis.smembers(user_sessions_key(user_id)))


def take_user_sessions(user_id: int, keep: str | None = None) -> list[str]:
    """The store ids of the user's sessions but ``keep``, emptying the set of them (they are about to be ended)."""
    key = user_sessions_key(user_id)
    with services.jobs_redis.pipeline() as pipe:  # MULTI: a sign-in meanwhile lands before or after, whole
        pipe.smembers(key)
        pipe.delete(key)
        if keep:
            pipe.sadd(key, keep)
        members = pipe.execute()[0]
    return sorted(member for member in (_text(m) for m in members) if member != keep)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else value
