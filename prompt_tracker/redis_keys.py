"""Names of the Redis keys a session owns (DB 2); all of them contain ``session``.

The ``{sid}`` braces are a Redis Cluster hash tag: every key of one session lands on one slot,
so multi-key operations on a session stay atomic on a cluster too.
"""

import re

# Flask-Session ids are secrets.token_urlsafe(32): 43 URL-safe characters.
SID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{43}$")
PLAYGROUND_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def is_valid_sid(sid: str) -> bool:
    """Tell whether a cookie value has the shape of a session id we issue."""
    return bool(sid) and SID_PATTERN.match(sid) is not None


def session_key(prefix: str, sid: str) -> str:
    """Key of the Flask-Session blob of ``sid``."""
    return f"{prefix}{{{sid}}}"


def conversation_key(prefix: str, sid: str, playground: str) -> str:
    """Key of the Redis list that holds the conversation of ``playground`` in session ``sid``."""
    return f"{prefix}{{{sid}}}:conversation:{playground}"


_KEY_RE_CACHE: dict[str, re.Pattern] = {}


def parse_key(prefix: str, key: str) -> tuple[str, str | None] | None:
    """Split a session key into (sid, playground or None); None if it is not one of ours."""
    pattern = _KEY_RE_CACHE.get(prefix)
    if pattern is None:
        pattern = re.compile(re.escape(prefix) + r"\{([A-Za-z0-9_-]+)\}(?::conversation:(.+))?$")
        _KEY_RE_CACHE[prefix] = pattern
    match = pattern.match(key)
    if not match:
        return None
    return match.group(1), match.group(2)
