"""Inspect and purge the stored sessions: plain functions that ``flask sessions`` and the tests call.

A session is every key that carries its store id (SHA-256 of the cookie's id, which the CLI
prints and accepts; ``show`` and ``purge --sid`` take a cookie's id too): the Flask-Session blob
and its conversation lists (see ``domain.keys``). Conversation lists whose blob is gone still count as a session, so a purge
leaves nothing behind. Keys are found with SCAN (never KEYS) and measured and deleted in pipelined
batches, so the work is one round trip per thousand keys and never blocks Redis.

A signed-in user's **workspace** (store id ``ws-…``, see ``domain.keys.workspace_id``) has the same
keys and shows here too, marked by its ``kind``; its lifetime is ``USER_WORKSPACE_LIFETIME``.

Idle time is what the TTLs tell: every request pushes the expiry of all the session's keys back to
the full lifetime, so idle = lifetime - TTL of the session's longest-lived key. A session that was
never used (its blob alone, with no more than the idle lifetime left) is counted against the idle
lifetime; a used session that old expires within that hour anyway.
"""

import heapq
import re
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property

import msgspec
from flask import current_app
from redis.exceptions import ResponseError

from ..domain.keys import is_valid_sid, is_workspace_id, parse_key, session_key, store_id
from ..domain.messages import Message, decode_message
from .services import services
from .session_interface import SessionDataError

SCAN_COUNT = 1000  # keys asked of each SCAN call
BATCH_KEYS = 1000  # keys measured or deleted per pipeline
STORE_ID_PREFIX_PATTERN = re.compile(r"^[A-Za-z0-9_-]+$")
_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_GLOB_SPECIAL = re.compile(r"([\\*?\[\]])")

Progress = Callable[[int], None] | None


class SessionAdminError(Exception):
    """A request the session tools cannot carry out; the text says what to do instead."""


class SessionNotFound(SessionAdminError, LookupError):
    """No stored session has the given id (or id prefix)."""


@dataclass(slots=True)
class KeyInfo:
    """One stored key of a session, as measured: seconds to live (None: no expiry), messages, bytes."""

    key: str
    store_id: str
    playground: str | None  # None for the session blob, "" for its other keys (see parse_key)
    ttl: float | None
    messages: int
    size: int


@dataclass
class SessionInfo:
    """A session (named by its store id): its keys and what they add up to."""

    store_id: str
    lifetime: float
    idle_lifetime: float = 0.0  # what a never-used session gets (SESSION_IDLE_LIFETIME)
    keys: dict[str, KeyInfo] = field(default_factory=dict)

    @property
    def short_id(self) -> str:
        """The first 8 characters of the store id (after ``ws-``), enough to tell sessions apart on screen."""
        return self.store_id[: 11 if self.is_workspace else 8] + "…"

    @property
    def is_workspace(self) -> bool:
        """Whether this is a signed-in user's workspace (shared by their browsers), not a browser's session."""
        return is_workspace_id(self.store_id)

    @property
    def kind(self) -> str:
        """``workspace`` (a signed-in user's work) or ``session`` (one browser's)."""
        return "workspace" if self.is_workspace else "session"

    @property
    def has_blob(self) -> bool:
        """False when only conversation lists are left (their blob expired or was deleted)."""
        return any(info.playground is None for info in self.keys.values())

    @property
    def expires_in(self) -> float | None:
        """Seconds until the longest-lived key expires; None if one of them never expires."""
        ttls = [info.ttl for info in self.keys.values()]
        return None if None in ttls else max(ttls, default=0.0)

    @property
    def idle(self) -> float:
        """Seconds since the last request that used the session (0 if a key has no expiry)."""
        expires_in = self.expires_in
        if expires_in is None:
            return 0.0
        lifetime = self.lifetime
        if expires_in <= self.idle_lifetime and all(info.playground is None for info in self.keys.values()):
            lifetime = self.idle_lifetime
        return max(0.0, lifetime - expires_in)

    @property
    def messages(self) -> int:
        """Messages in all the session's conversations."""
        return sum(info.messages for info in self.keys.values())

    @property
    def size(self) -> int:
        """Bytes of all the session's keys (see ``Keyspace.size_label`` for what is counted)."""
        return sum(info.size for info in self.keys.values())


# --- where the keys live: Redis, or (unit tests) cachelib for the blob -------------------------


class RedisKeyspace:
    """The sessions' keys in one Redis (development, production): blobs and lists side by side."""

    def __init__(self, client, prefix: str, decode_blob: Callable[[bytes], dict]):
        self.client = client
        self.prefix = prefix
        self.decode_blob = decode_blob

    @cached_property
    def memory_usage(self) -> bool:
        """Whether the server answers MEMORY USAGE (real Redis does; fakeredis does not)."""
        try:
            self.client.memory_usage(self.prefix + "probe")
        except ResponseError:
            return False
        return True

    @property
    def size_label(self) -> str:
        """What ``KeyInfo.size`` counts, for headers."""
        return "MEMORY USAGE" if self.memory_usage else "payload"

    def estimate_keys(self) -> int:
        """About how many keys a full scan will visit (for a progress bar)."""
        return self.client.dbsize()

    def scan(self, store_id_prefix: str = "") -> Iterator[list[str]]:
        """Yield batches of the session keys (of store ids starting with ``store_id_prefix``), with SCAN."""
        match = _GLOB_SPECIAL.sub(r"\\\1", self.prefix) + ("{" + store_id_prefix if store_id_prefix else "") + "*"
        # scan_iter walks every master of a Redis Cluster, and the one server otherwise.
        batch = []
        for key in map(_text, self.client.scan_iter(match=match, count=SCAN_COUNT)):
            if key is not None:
                batch.append(key)
            if len(batch) >= SCAN_COUNT:
                yield batch
                batch = []
        if batch:
            yield batch

    def inspect(self, keys: Iterable[str], sizes: bool = True) -> list[KeyInfo]:
        """Measure session keys in one pipeline (TTL, and with ``sizes`` LLEN and bytes); keys gone are left out."""
        parsed = [(key, *found) for key in keys if (found := parse_key(self.prefix, key))]
        if not parsed:
            return []
        with self.client.pipeline(transaction=False) as pipe:
            for key, _store_id, playground in parsed:
                pipe.pttl(key)
                if not sizes:
                    continue
                if playground is not None:
                    pipe.llen(key)
                if self.memory_usage:
                    pipe.memory_usage(key)
                elif playground is None:
                    pipe.strlen(key)
                else:
                    pipe.lrange(key, 0, -1)  # fakeredis only: no cheaper way to size a list there
            # A key of an unexpected type answers WRONGTYPE: measured as 0 rather than failing the run.
            results = iter(pipe.execute(raise_on_error=False))
        infos = []
        for key, found_store_id, playground in parsed:
            pttl = _number(next(results))
            messages = _number(next(results)) if sizes and playground is not None else 0
            size = _size(next(results)) if sizes else 0
            if pttl == -2:
                continue
            infos.append(KeyInfo(key, found_store_id, playground, None if pttl < 0 else pttl / 1000, messages, size))
        return infos

    def unlink(self, sessions: Iterable[list[str]]) -> int:
        """Delete the keys of these sessions with one UNLINK (one round trip); return how many went.

        One command for the whole batch on a single Redis; a Redis Cluster client splits it into
        one UNLINK per hash slot (a session's keys share one).
        """
        keys = [key for session_keys in sessions for key in session_keys]
        return self.client.unlink(*keys) if keys else 0

    def read_blob(self, store_id: str) -> dict | None:
        """The session's stored data, or None if there is no blob (SessionDataError if unreadable)."""
        raw = self.client.get(session_key(self.prefix, store_id))
        return None if raw is None else self.decode_blob(raw)

    def tail(self, key: str, count: int) -> list[bytes]:
        """The last ``count`` records of a conversation list."""
        return self.client.lrange(key, -count, -1) if count > 0 else []


class CacheLibKeyspace(RedisKeyspace):
    """The test config: blobs in a cachelib SimpleCache, conversation lists in (fake) Redis."""

    def __init__(self, client, prefix: str, cache):
        super().__init__(client, prefix, decode_blob=dict)
        self.cache = cache

    # SimpleCache has no API to list or time its entries, so we read its private dict
    # (key -> (expires_at, pickled value)); this backend exists for unit tests only.
    def _entries(self) -> dict:
        return self.cache._cache

    @property
    def memory_usage(self) -> bool:
        """Blobs are sized by their pickled length, so lists are sized by payload too, to match."""
        return False

    def estimate_keys(self) -> int:
        """About how many keys a full scan will visit."""
        return super().estimate_keys() + len(self._entries())

    def scan(self, store_id_prefix: str = "") -> Iterator[list[str]]:
        """Yield batches of the conversation lists from Redis, then of the blobs from the cache."""
        yield from super().scan(store_id_prefix)
        start = self.prefix + "{" + store_id_prefix
        blobs = [key for key in list(self._entries()) if key.startswith(start)]
        for first in range(0, len(blobs), SCAN_COUNT):
            yield blobs[first : first + SCAN_COUNT]

    def inspect(self, keys: Iterable[str], sizes: bool = True) -> list[KeyInfo]:
        """Measure the lists in Redis and the blobs in the cache (expired entries count as gone)."""
        blobs, lists = _split_blobs(self.prefix, keys)
        infos = super().inspect(lists, sizes)
        now = time.time()
        for key, blob_store_id in blobs:
            entry = self._entries().get(key)
            if entry is None:
                continue
            expires_at, pickled = entry
            if expires_at and expires_at <= now:
                continue
            infos.append(
                KeyInfo(
                    key, blob_store_id, None, expires_at - now if expires_at else None, 0, len(pickled) if sizes else 0
                )
            )
        return infos

    def unlink(self, sessions: Iterable[list[str]]) -> int:
        """Delete the blobs from the cache and the lists from Redis; return how many keys went."""
        deleted = 0
        lists_per_session = []
        for keys in sessions:
            blobs, lists = _split_blobs(self.prefix, keys)
            deleted += sum(bool(self.cache.delete(key)) for key, _store_id in blobs)
            lists_per_session.append(lists)
        return deleted + super().unlink(lists_per_session)

    def read_blob(self, store_id: str) -> dict | None:
        """The session's stored data, or None if there is no blob."""
        data = self.cache.get(session_key(self.prefix, store_id))
        return data if isinstance(data, dict) else None


def open_keyspace() -> RedisKeyspace:
    """The keyspace of the current app's sessions, whichever backend holds the blobs."""
    interface = current_app.session_interface
    prefix = current_app.config["SESSION_KEY_PREFIX"]
    cache = getattr(interface, "cache", None)
    if cache is None:
        return RedisKeyspace(services.session_redis, prefix, interface.serializer.decode)
    from cachelib import SimpleCache

    if not isinstance(cache, SimpleCache):
        raise SessionAdminError(
            f"The session tools read Redis or cachelib's SimpleCache, not {type(cache).__name__}; "
            "set SESSION_TYPE to redis."
        )
    return CacheLibKeyspace(services.session_redis, prefix, cache)


# --- the work ----------------------------------------------------------------------------------


def collect_sessions(
    keyspace: RedisKeyspace, store_id_prefix: str = "", progress: Progress = None, sizes: bool = True
) -> dict[str, SessionInfo]:
    """Scan and measure every session (whose store id starts with ``store_id_prefix``), keyed by store id."""
    lifetimes = _lifetimes()
    sessions: dict[str, SessionInfo] = {}
    pending: list[str] = []

    def measure() -> None:
        for info in keyspace.inspect(pending, sizes):
            session = sessions.get(info.store_id)
            if session is None:
                session = sessions[info.store_id] = new_info(info.store_id, lifetimes)
            session.keys[info.key] = info  # SCAN may return a key twice: keyed, it counts once
        if progress:
            progress(len(pending))
        pending.clear()

    for batch in keyspace.scan(store_id_prefix):
        pending.extend(batch)
        if len(pending) >= BATCH_KEYS:
            measure()
    if pending:
        measure()
    return sessions


def group_sessions(keyspace: RedisKeyspace, progress: Progress = None) -> dict[str, SessionInfo]:
    """Scan the session keys and group them by store id, measuring nothing (all a full purge needs)."""
    lifetimes = _lifetimes()
    sessions: dict[str, SessionInfo] = {}
    for batch in keyspace.scan():
        for key in batch:
            found = parse_key(keyspace.prefix, key)
            if found is None:
                continue
            found_store_id, playground = found
            session = sessions.get(found_store_id) or sessions.setdefault(
                found_store_id, new_info(found_store_id, lifetimes)
            )
            session.keys[key] = KeyInfo(key, found_store_id, playground, None, 0, 0)
        if progress:
            progress(len(batch))
    return sessions


def resolve_session(keyspace: RedisKeyspace, store_id_or_sid: str) -> SessionInfo:
    """The one session whose store id is ``store_id_or_sid``, starts with it, or is the SHA-256 of this cookie's
    session id; SessionNotFound or SessionAdminError if not one."""
    wanted = store_id_or_sid.strip().rstrip("…")
    if is_valid_sid(wanted) and not is_workspace_id(wanted):
        wanted = store_id(wanted)  # a cookie's session id: its keys carry the SHA-256 of it
    if not STORE_ID_PREFIX_PATTERN.match(wanted):
        raise SessionAdminError(
            f"{wanted!r} is not a session id: ids are made of letters, digits, '-' and '_'; "
            "run `flask sessions list` to see them."
        )
    sessions = collect_sessions(keyspace, store_id_prefix=wanted)
    if wanted in sessions:
        return sessions[wanted]
    if not sessions:
        raise SessionNotFound(f"No session has an id starting with {wanted!r}; run `flask sessions list` to see them.")
    if len(sessions) > 1:
        raise SessionAdminError(
            f"{len(sessions)} sessions have an id starting with {wanted!r}; give more characters of the id."
        )
    return next(iter(sessions.values()))


def list_sessions(keyspace: RedisKeyspace, limit: int = 50, progress: Progress = None) -> tuple[list[SessionInfo], int]:
    """The ``limit`` most recently active sessions (least idle first) and how many there are in all."""
    sessions = collect_sessions(keyspace, progress=progress).values()
    return heapq.nsmallest(limit, sessions, key=lambda session: (session.idle, session.store_id)), len(sessions)


@dataclass
class SessionStats:
    """Totals over every stored session."""

    sessions: int
    keys: int
    messages: int
    size: int
    without_blob: int
    largest: SessionInfo | None
    workspaces: int = 0  # of ``sessions``, how many are signed-in users' workspaces


def session_stats(keyspace: RedisKeyspace, progress: Progress = None) -> SessionStats:
    """Count the sessions, their keys, messages and bytes, and find the largest session."""
    sessions = list(collect_sessions(keyspace, progress=progress).values())
    return SessionStats(
        sessions=len(sessions),
        keys=sum(len(session.keys) for session in sessions),
        messages=sum(session.messages for session in sessions),
        size=sum(session.size for session in sessions),
        without_blob=sum(not session.has_blob for session in sessions),
        largest=max(sessions, key=lambda session: (session.size, session.store_id), default=None),
        workspaces=sum(session.is_workspace for session in sessions),
    )


@dataclass
class ConversationDetails:
    """One conversation list and its latest messages (None stands for an unreadable record)."""

    key: KeyInfo
    first_index: int
    latest: list[Message | None]


@dataclass
class SessionDetails:
    """What ``show`` prints: the session, its blob (or why it cannot be read), its conversations."""

    session: SessionInfo
    blob: dict | None
    blob_error: str | None
    conversations: list[ConversationDetails]


def session_details(keyspace: RedisKeyspace, store_id_or_sid: str, last: int = 5) -> SessionDetails:
    """Read one session (see ``resolve_session``): its blob and the ``last`` messages of each conversation."""
    session = resolve_session(keyspace, store_id_or_sid)
    blob = blob_error = None
    try:
        blob = keyspace.read_blob(session.store_id)
    except SessionDataError as error:
        blob_error = str(error)
    conversations = []
    for info in sorted(session.keys.values(), key=lambda info: info.playground or ""):
        if not info.playground:
            continue  # the blob, or a key of an open reply
        records = keyspace.tail(info.key, last)
        conversations.append(
            ConversationDetails(info, max(0, info.messages - len(records)), [_decode(raw) for raw in records])
        )
    return SessionDetails(session, blob, blob_error, conversations)


@dataclass
class PurgePlan:
    """The sessions a purge will delete, as found by the scan."""

    sessions: list[SessionInfo]
    idle_for: float | None
    seconds: float

    @property
    def keys(self) -> int:
        """Keys the purge will delete."""
        return sum(len(session.keys) for session in self.sessions)


@dataclass
class PurgeResult:
    """What a purge deleted; ``kept`` sessions became active between the scan and the delete."""

    sessions: int
    keys: int
    kept: int
    seconds: float


def plan_purge(
    keyspace: RedisKeyspace,
    idle_for: float | None = None,
    store_id_or_sid: str | None = None,
    progress: Progress = None,
    kind: str | None = None,
) -> PurgePlan:
    """Find the sessions to delete: all, those idle at least ``idle_for`` seconds, and/or the one
    ``store_id_or_sid`` names (see ``resolve_session``); with ``kind``, only sessions or only workspaces."""
    started = time.monotonic()
    if store_id_or_sid is not None:
        candidates = [resolve_session(keyspace, store_id_or_sid)]
    elif idle_for is None:
        candidates = list(group_sessions(keyspace, progress).values())
    else:
        candidates = list(collect_sessions(keyspace, progress=progress, sizes=False).values())
    if idle_for is not None:
        candidates = [session for session in candidates if session.idle >= idle_for]
    if kind is not None:
        candidates = [session for session in candidates if session.kind == kind]
    return PurgePlan(candidates, idle_for, time.monotonic() - started)


def purge_all(keyspace: RedisKeyspace, progress: Progress = None) -> PurgeResult:
    """Delete every session as the scan finds it, batch by batch (no plan held in memory, no measuring)."""
    started = time.monotonic()
    store_ids: set[str] = set()
    keys = 0
    for batch in keyspace.scan():
        ours = []
        for key in batch:
            found = parse_key(keyspace.prefix, key)
            if found is not None:  # leave alone keys under the prefix that are not a session's
                store_ids.add(found[0])
                ours.append(key)
        keys += keyspace.unlink([ours])
        if progress:
            progress(len(batch))
    return PurgeResult(len(store_ids), keys, 0, time.monotonic() - started)


def execute_purge(keyspace: RedisKeyspace, plan: PurgePlan, progress: Progress = None) -> PurgeResult:
    """Delete the planned sessions in pipelined batches; with ``idle_for``, spare those used since the scan."""
    started = time.monotonic()
    sessions = keys = kept = 0
    for batch in _session_batches(plan.sessions):
        planned_keys = sum(len(session.keys) for session in batch)
        if plan.idle_for is not None:
            # The confirmation may have waited a while: re-measure, so a session in use is not deleted.
            fresh = _regroup(
                keyspace.inspect((key for session in batch for key in session.keys), sizes=False), _lifetimes()
            )
            kept += sum(1 for session in fresh if session.idle < plan.idle_for)
            batch = [session for session in fresh if session.idle >= plan.idle_for]
        keys += keyspace.unlink(list(session.keys) for session in batch)
        sessions += len(batch)
        if progress:
            progress(planned_keys)
    return PurgeResult(sessions, keys, kept, time.monotonic() - started)


# --- parsing and formatting --------------------------------------------------------------------


def parse_duration(text: str) -> int:
    """Seconds in a duration like ``90s``, ``30m``, ``2h``, ``1d`` or ``1h30m``; ValueError otherwise."""
    match = _DURATION.fullmatch(text.strip().lower())
    if not match or not any(match.groups()):
        raise ValueError(
            f"{text!r} is not a duration: write a number and a unit (d, h, m, s), like 90s, 30m, 2h, 1d or 1h30m."
        )
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def format_duration(seconds: float | None) -> str:
    """A duration in the two largest units, like ``2h05m``; ``never`` for None."""
    if seconds is None:
        return "never"
    seconds = int(seconds)
    minutes, secs = divmod(seconds, 60)
    hours, mins = divmod(minutes, 60)
    days, hrs = divmod(hours, 24)
    if days:
        return f"{days}d{hrs:02d}h"
    if hours:
        return f"{hours}h{mins:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def format_size(size: int) -> str:
    """Bytes in decimal units, like ``1.2 MB``."""
    if size < 1000:
        return f"{size} B"
    for unit in ("KB", "MB", "GB"):
        size /= 1000
        if size < 1000:
            break
    return f"{size:.1f} {unit}"


def plural(count: int, noun: str) -> str:
    """``1 session``, ``2 sessions``, with thousands separators."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def preview(text: str, width: int = 80) -> str:
    """The first ``width`` characters of ``text`` on one line, with an ellipsis if it was cut."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= width else flat[:width] + "…"


def format_table(headers: list[str], rows: list[list[str]], right: Collection[int] = ()) -> list[str]:
    """Lines of a plain-text table; columns whose index is in ``right`` are right-aligned."""
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows)]

    def line(cells):
        return "  ".join(
            cell.rjust(width) if index in right else cell.ljust(width)
            for index, (cell, width) in enumerate(zip(cells, widths))
        ).rstrip()

    return [line(headers), *(line(row) for row in rows)]


# --- helpers -----------------------------------------------------------------------------------


def _text(key) -> str | None:
    if isinstance(key, str):
        return key
    try:
        return key.decode()
    except UnicodeDecodeError:
        return None  # not one of ours: our keys are ASCII


def _number(result) -> int:
    return result if isinstance(result, int) else 0


def _size(result) -> int:
    if isinstance(result, int):
        return result
    if isinstance(result, list):
        return sum(len(item) for item in result)
    return 0


def _split_blobs(prefix: str, keys: Iterable[str]) -> tuple[list[tuple[str, str]], list[str]]:
    blobs, lists = [], []
    for key in keys:
        parsed = parse_key(prefix, key)
        if parsed and parsed[1] is None:
            blobs.append((key, parsed[0]))
        else:
            lists.append(key)
    return blobs, lists


def _session_batches(sessions: list[SessionInfo]) -> Iterator[list[SessionInfo]]:
    batch, size = [], 0
    for session in sessions:
        batch.append(session)
        size += len(session.keys)
        if size >= BATCH_KEYS:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _regroup(infos: Iterable[KeyInfo], lifetimes: tuple[float, float, float]) -> list[SessionInfo]:
    sessions: dict[str, SessionInfo] = {}
    for info in infos:
        sessions.setdefault(info.store_id, new_info(info.store_id, lifetimes)).keys[info.key] = info
    return list(sessions.values())


def _lifetimes() -> tuple[float, float, float]:
    """The full lifetime of a session, the idle one of a session never used, and a workspace's, in seconds."""
    config = current_app.config
    full = current_app.permanent_session_lifetime.total_seconds()
    return (
        full,
        min(full, config["SESSION_IDLE_LIFETIME"].total_seconds()),
        config["USER_WORKSPACE_LIFETIME"].total_seconds(),
    )


def new_info(found_store_id: str, lifetimes: tuple[float, float, float]) -> SessionInfo:
    """An empty SessionInfo for ``found_store_id``, with the lifetime of its kind (session or workspace)."""
    full, idle, workspace = lifetimes
    if is_workspace_id(found_store_id):
        return SessionInfo(found_store_id, workspace, workspace)
    return SessionInfo(found_store_id, full, idle)


def _decode(raw: bytes) -> Message | None:
    try:
        return decode_message(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
