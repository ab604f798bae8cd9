"""Names of every Redis key the app uses (DB 2 sessions, DB 0 reply tickets and heartbeats).

Session keys hold the **store id**, the SHA-256 hex digest of the cookie's session id (as Rails
stores its sessions since CVE-2019-16782): nothing in Redis is a cookie someone could present.
The ``{store id}`` braces are a Redis Cluster hash tag: every key of one session lands on one slot,
so multi-key operations on a session stay atomic on a cluster too. Every session key contains
``session``.

A signed-in user's work (conversations, settings, Compare, Replay) is stored under a **workspace id**
instead: ``ws-`` and the HMAC-SHA256 of the app's secret and the user id, in the same layout. Every
browser of the user reads and writes it; no cookie names it, and nobody can compute it without the secret.
"""

import hashlib
import hmac
import re

# Flask-Session ids are secrets.token_urlsafe(32): 43 URL-safe characters.
SID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{43}$")
CLIENT_TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


def is_valid_sid(sid: str) -> bool:
    """Tell whether a cookie value has the shape of a session id we issue."""
    return bool(sid) and SID_PATTERN.match(sid) is not None


def store_id(sid: str) -> str:
    """The id a session is stored under: SHA-256 hex of the cookie's session id."""
    return hashlib.sha256(sid.encode()).hexdigest()


WORKSPACE_PREFIX = "ws-"  # how a workspace id tells itself apart from a session's store id (64 hex digits)


def workspace_id(secret: str, user_id: int) -> str:
    """The store id of user ``user_id``'s workspace: ``ws-`` and HMAC-SHA256(secret, user id) in hex."""
    digest = hmac.new(secret.encode(), f"workspace:{user_id}".encode(), hashlib.sha256).hexdigest()
    return WORKSPACE_PREFIX + digest


def is_workspace_id(store_id: str) -> bool:
    """Whether ``store_id`` names a user's workspace (else it is one browser session's store id)."""
    return store_id.startswith(WORKSPACE_PREFIX)


def session_key(prefix: str, store_id: str) -> str:
    """Key of the Flask-Session blob of the session stored as ``store_id``."""
    return f"{prefix}{{{store_id}}}"


def conversation_key(prefix: str, store_id: str, playground: str) -> str:
    """Key of the Redis list that holds the conversation of ``playground``."""
    return f"{prefix}{{{store_id}}}:conversation:{playground}"


# A playground's companion conversations (Compare, Replay) are conversations of their own, named
# after it: "standalone~replay". "~" never occurs in a playground name, so the pair cannot clash.
def companion_playground(playground: str, kind: str) -> str:
    """The playground name of ``playground``'s companion conversation ``kind`` (compare or replay)."""
    return f"{playground}~{kind}"


def partial_key(prefix: str, store_id: str, message_id: str) -> str:
    """Key of the text a reply has streamed so far (APPEND per flush; gone when the reply ends)."""
    return f"{prefix}{{{store_id}}}:partial:{message_id}"


def stop_key(prefix: str, store_id: str, message_id: str, attempt: int | None = None) -> str:
    """Key that asks the worker writing ``message_id`` to stop: whichever attempt it writes, or with
    ``attempt`` only that one (set when a Retry supersedes it, so its worker stops and writes nothing more).

    Beside the partial (not in DB 0) so that a flush checks it, the conversation's existence and
    appends the text in one round trip.
    """
    key = f"{prefix}{{{store_id}}}:stop:{message_id}"
    return key if attempt is None else f"{key}:{attempt}"


def submissions_key(prefix: str, store_id: str) -> str:
    """Sorted set of the session's recent composer submissions (``client_token``, scored by when they
    are forgotten), so the same submission arriving twice is sent once. One key, deleted with the session."""
    return f"{prefix}{{{store_id}}}:sent"


def open_replies_key(prefix: str, store_id: str) -> str:
    """Sorted set of the session's open replies (``<playground>:<message id>``, scored by deadline)."""
    return f"{prefix}{{{store_id}}}:open"


# --- DB 0: beside RQ's own keys ----------------------------------------------------------------


def ticket_key(message_id: str) -> str:
    """The reply's ticket: which session and playground it belongs to and its settings snapshot."""
    return f"prompt_tracker:reply:{message_id}"


def alive_key(message_id: str) -> str:
    """Key that exists while a worker is writing ``message_id`` (its heartbeat)."""
    return f"prompt_tracker:alive:{message_id}"


def usage_key(day: str) -> str:
    """Hash of one UTC day's spend per user (budgets and ``flask usage``)."""
    return f"prompt_tracker:limit:usage:{day}"


def held_key(user: str) -> str:
    """Hash of a user's holds: the replies queued or being written, and what each may cost."""
    return f"prompt_tracker:limit:held:{user}"


def sockets_key(store_id: str) -> str:
    """Sorted set of the Socket.IO ids of a session's open sockets, scored by connect time (disconnected
    when it signs out; without sign-in, the oldest past ``MAX_SOCKETS_PER_USER`` is closed)."""
    return f"prompt_tracker:sockets:{store_id}"


def user_sockets_key(user_id: int) -> str:
    """Sorted set of the Socket.IO ids of a signed-in user's open sockets in all their sessions, scored
    by connect time: the oldest past ``MAX_SOCKETS_PER_USER`` is closed."""
    return f"prompt_tracker:user:{user_id}:sockets"


def user_sessions_key(user_id: int) -> str:
    """Set of the store ids of a signed-in user's sessions (added at sign-in, removed at sign-out), so
    disabling the user can end every one of them at once."""
    return f"prompt_tracker:user:{user_id}:sessions"


def paced_key(message_id: str) -> str:
    """DB 0 key of a paced replay: the ticket of its reply ``message_id``, whose next turn waits for the send rate."""
    return f"prompt_tracker:paced:{message_id}"


def reply_job_id(message_id: str, attempt: int) -> str:
    """RQ job id of one attempt of a reply (RQ allows only letters, digits, ``-`` and ``_``)."""
    return f"reply-{message_id}-{attempt}"


_KEY_RE_CACHE: dict[str, re.Pattern] = {}


def parse_key(prefix: str, key: str) -> tuple[str, str | None] | None:
    """Split a session key into (store id, playground); None if it is not a key of a session.

    The playground is None for the blob and "" for the session's other keys (open replies,
    partials, stop requests, sent submissions): they are purged with the session, hold no messages.
    """
    pattern = _KEY_RE_CACHE.get(prefix)
    if pattern is None:
        pattern = re.compile(
            re.escape(prefix) + r"\{([A-Za-z0-9_-]+)\}(?::conversation:(.+)|:(open|sent|(?:partial|stop):.+))?$"
        )
        _KEY_RE_CACHE[prefix] = pattern
    match = pattern.match(key)
    if not match:
        return None
    found_store_id, playground, other = match.groups()
    return found_store_id, playground if playground is not None else ("" if other else None)


def eval_backlog_key(run_id: int) -> str:
    """LIST of a test run's result ids waiting for a job (queued results not yet handed to the workers)."""
    return f"prompt_tracker:eval:{run_id}:backlog"


def eval_inflight_key(run_id: int) -> str:
    """ZSET of a test run's result ids handed to the workers, scored by when their slot lapses (a lost job's)."""
    return f"prompt_tracker:eval:{run_id}:inflight"


def eval_start_key(owner: str, token: str) -> str:
    """STRING: the run a Start form's submission (its token, per user) created, "" while it is being created."""
    digest = hashlib.sha256(f"{owner}\0{token}".encode()).hexdigest()[:32]
    return f"prompt_tracker:eval:start:{digest}"


def eval_job_id(result_id: int, attempt: int) -> str:
    """RQ job id of one attempt of a test run's result."""
    return f"eval-{result_id}-{attempt}"
