"""Flask-Session's Redis (and, for unit tests, cachelib) session interfaces, adapted to the playground.

What the stock 0.8 interfaces do and we change:
- every request reads the blob, a static file or a 404 included: ours loads it lazily, on the
  first use of ``session``, so requests that never touch the session never reach Redis;
- every request rewrites the whole blob (SESSION_REFRESH_EACH_REQUEST): ours rewrites it only when it
  changed, and otherwise just pushes the expiry;
- a rewrite replaces what another request wrote meanwhile (two tabs overwrite each other): ours
  writes only the keys this request changed, merged into the stored blob under WATCH;
- the blob has a TTL but its conversation lists do not: ours pushes the expiry of the blob and of
  every conversation list of the session together, in one round trip;
- the serializer falls back to pickle: ours decodes msgpack or JSON only, anything else is no session;
- any cookie value is looked up: ours ignores values that are not the shape of an id we issue;
- keys carry the raw session id: ours carry its SHA-256 (the store id), so Redis holds no cookie;
- ``regenerate()`` loses the data (the merge sees no change) and leaves the conversations behind:
  ours writes the data under the new id, moves the conversations and deletes the old keys;
- every session gets the full lifetime, so each cookie-less page view (a crawler's) is stored for
  24 h: ours gives a session that holds nothing of the user's (only bookkeeping: a CSRF token,
  flashes, the sign-in's keys) the short ``SESSION_IDLE_LIFETIME``; using it extends it;
- a request still in flight when another one ends the session (sign-out) wrote the blob back or sent
  the old id again: ours writes nothing and sets no cookie when the blob it loaded is gone at save.

Signed in, a session holds only the browser's own keys (``BROWSER_KEYS``: the CSRF token, flashes,
who is signed in); everything else (settings, the conversations' names, Compare, Replay) lives in the
user's **workspace** (``Workspace``), a blob of the same layout under the user's workspace id with
its conversation lists beside it, shared by every browser of the user and kept for
``USER_WORKSPACE_LIFETIME``. The session routes those keys to it and names it as its ``store_id``, so
the views, the pipeline and the worker use one code path with or without sign-in.

The Redis and cachelib interfaces differ only in how they get, set, delete and touch the blob.
"""

import copy
from collections.abc import Iterable, Sequence
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import msgspec
from flask import Flask, Request, Response
from flask_session.base import MsgSpecSerializer, ServerSideSession, ServerSideSessionInterface
from flask_session.cachelib import CacheLibSessionInterface
from flask_session.redis import RedisSessionInterface

from ..domain.keys import (
    conversation_key,
    is_valid_sid,
    session_key,
    store_id,
    workspace_id,
)
from .conversations import ConversationStore, Window
from .tickets import move_open_replies
from .workspaces import LoadedOnUse, Workspace, adopt

_MISSING = object()
MAX_FLASHES = 5  # flashed messages kept in a session until a page shows them
# What a session holds that is not the user's own: Flask's and Flask-WTF's bookkeeping, flashed
# notices and Flask-Login's bookkeeping. Any other key is the user's and keeps the full lifetime, so
# a value stored by new code is never cut to the idle lifetime by being forgotten in a list. Who is
# signed in (``_user_id``, the proxy's ``proxy_user``) is the user's: a sign-in gives the full lifetime.
BOOKKEEPING_KEYS = frozenset(
    {
        "_permanent",
        "csrf_token",
        "_flashes",
        "_fresh",
        "_id",
        "_remember",
        "_remember_seconds",
    }
)


# What stays with the browser when its session is signed in: the bookkeeping and who is signed in
# (Flask-Login's ``_user_id``, the proxy's ``proxy_user``). Every other key is the user's work.
BROWSER_KEYS = BOOKKEEPING_KEYS | {"_user_id", "proxy_user"}


def in_use(data) -> bool:
    """Whether session data holds something of the user's (else it is an idle visitor's)."""
    return any(value for key, value in data.items() if key not in BOOKKEEPING_KEYS)


class SessionDataError(Exception):
    """The stored blob is neither msgpack nor JSON: treated as no session."""


class StrictSerializer(MsgSpecSerializer):
    """msgpack (JSON accepted on read), never pickle."""

    def decode(self, serialized_data: bytes) -> dict:
        """Deserialize a blob; raise SessionDataError rather than fall back to pickle."""
        for decoder in (self.decoder, self.alternate_decoder):
            with suppress(msgspec.DecodeError):
                data = decoder.decode(serialized_data)
                if isinstance(data, dict):
                    return data
        raise SessionDataError("session blob is not msgpack or JSON")


def merge_changes(original: dict, current: dict, stored: dict) -> dict:
    """Three-way merge: apply to ``stored`` only what changed from ``original`` to ``current``.

    Nested dicts merge key by key, so two tabs saving settings of different playgrounds, or one
    saving settings while the other flashes a message, both keep their change.
    """
    merged = dict(stored)
    for key in original.keys() | current.keys():
        before, after = original.get(key, _MISSING), current.get(key, _MISSING)
        if before == after:
            continue
        if after is _MISSING:
            merged.pop(key, None)
        elif isinstance(before, dict) and isinstance(after, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_changes(before, after, merged[key])
        else:
            merged[key] = after
    return merged


class PlaygroundSession(LoadedOnUse, ServerSideSession):
    """A server-side session loaded on first use, that knows its conversations.

    ``loader`` returns the stored data (or None for no session); it runs at the first read or
    write, so a request that never uses the session costs no Redis command. Signed in, a
    ``workspace`` is attached: the work's keys go there, and ``store_id`` names it.
    """

    def __init__(self, initial=None, sid=None, permanent=None, loader=None, on_missing=None, permanent_default=True):
        self._loader = None  # set after the base class has stored the id
        self.workspace: Workspace | None = None
        self._refreshed = False
        self._sid = sid
        self._on_missing = on_missing
        self.permanent_default = permanent_default  # for a session that turns out not to be stored
        self.original: dict = {}
        self.stored = False  # whether a blob existed when the session was loaded
        super().__init__(initial, sid, permanent)
        self._loader = loader

    @property
    def sid(self) -> str:
        """The session id, only once the stored session is loaded (a forged cookie's id is never handed out)."""
        self.ensure_loaded()
        return self._sid

    @sid.setter
    def sid(self, value: str) -> None:
        self._sid = value

    @property
    def store_id(self) -> str:
        """The id the work's Redis keys carry: the workspace's when signed in, else SHA-256 hex of the session id."""
        if self.workspace is not None:
            return self.workspace.store_id
        return self.own_store_id

    @property
    def own_store_id(self) -> str:
        """The id of this browser session's own keys (its blob, its sockets): SHA-256 hex of the session id."""
        return store_id(self.sid)

    @property
    def work(self) -> "PlaygroundSession | Workspace":
        """Where the work is kept: the workspace when signed in, else the session itself."""
        return self.workspace if self.workspace is not None else self

    @property
    def expiry_refreshed(self) -> bool:
        """Whether a Redis call of this request already pushed the expiry of the work's keys."""
        return self.workspace.expiry_refreshed if self.workspace is not None else self._refreshed

    @expiry_refreshed.setter
    def expiry_refreshed(self, value: bool) -> None:
        if self.workspace is not None:
            self.workspace.expiry_refreshed = value
        else:
            self._refreshed = value

    @property
    def loaded(self) -> bool:
        """Whether the stored data has been read (or there was nothing to read)."""
        return self._loader is None

    def ensure_loaded(self) -> None:
        """Read the stored data now, if not done yet."""
        if self._loader is None:
            return
        loader, self._loader = self._loader, None
        data = loader()
        if data is None:
            self.sid = self._on_missing()
            if self.permanent_default:
                dict.__setitem__(self, "_permanent", True)
            return
        self.stored = True
        self.original = copy.deepcopy(data)
        dict.update(self, data)

    def elsewhere(self, key):
        return self.workspace if self.workspace is not None and key not in BROWSER_KEYS else None

    def own_playgrounds(self) -> list[str]:
        """The playgrounds whose conversation is this session's own (not its workspace's)."""
        self.ensure_loaded()
        return list(dict.get(self, "conversations", {}))

    def drop_own_work(self) -> None:
        """Forget what this session holds itself of the work (it joined the workspace)."""
        for key in self.own_work():
            dict.pop(self, key, None)
        self.modified = True

    def own_work(self) -> dict:
        """What this session holds itself of the user's work (a visitor's, before signing in)."""
        self.ensure_loaded()
        return {key: value for key, value in dict.items(self) if key not in BROWSER_KEYS}


class Blob(NamedTuple):
    """A session blob as read: its data, and the version a conditional write compares with."""

    data: dict | None  # None: no blob, or one that is not msgpack/JSON (then ``unreadable``)
    version: object = None  # Redis: the bytes read (None: no blob); cachelib: unused
    unreadable: bool = False


# Write a blob unless it changed since it was read, and push the expiry of the session's conversations.
# KEYS: the blob, then the conversation lists (same hash tag). ARGV: blob, its seconds, the lists'
# seconds, and for a conditional write the blob as read ('' for none).
_SET_BLOB = """
if ARGV[4] and (redis.call('GET', KEYS[1]) or '') ~= ARGV[4] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
for i = 2, #KEYS do redis.call('EXPIRE', KEYS[i], ARGV[3]) end
return 1
"""


class PlaygroundSessionMixin:
    """The session logic of both interfaces: lazy load, merged writes, regenerate, sign-out, expiry,
    and a signed-in user's workspace (attached, adopted into at sign-in, saved with the session).

    A backend subclass provides only how a blob is read, written, deleted and touched (``_blob_get``,
    ``_blob_set``, ``_blob_delete``, ``_blob_touch``).
    """

    session_class = PlaygroundSession
    conversations: ConversationStore
    idle_seconds = 3600  # SESSION_IDLE_LIFETIME
    workspace_secret = ""  # SECRET_KEY: the workspace ids are HMACs of it
    # Whether the blob lives in the Redis that the page's window read refreshes in passing.
    blob_in_store_redis = True
    # Path prefixes whose requests have no session (the read API, signed in by a token): a cookie sent along
    # is not read, and none is set, since Flask saves nothing for a null session. (By path: Flask opens the
    # session before it matches the URL.)
    sessionless_paths: tuple[str, ...] = ()

    def _blob_key(self, sid: str) -> str:
        """Key of the blob of session ``sid`` (named by its store id, never the id itself)."""
        return session_key(self.key_prefix, store_id(sid))

    _get_store_id = _blob_key  # Flask-Session's name for the blob's key, should its own code ask

    def _new_sid(self) -> str:
        return self._generate_sid(self.sid_length)

    def _new_session(self) -> PlaygroundSession:
        return self.session_class(sid=self._new_sid(), permanent=self.permanent)

    # --- the workspace of a signed-in user ------------------------------------------------------

    def workspace_id(self, user_id: int) -> str:
        """The store id of user ``user_id``'s workspace (``domain.keys.workspace_id``)."""
        return workspace_id(self.workspace_secret, user_id)

    def attach_workspace(self, session: PlaygroundSession, user_id: int, adopt_own_work: bool = True) -> list[str]:
        """Keep this signed-in session's work in its user's workspace from now on (loaded on first use).

        Work the session still holds itself (a visitor's, made before signing in) joins the workspace
        (``store.workspaces.adopt``), unless ``adopt_own_work`` is False (a socket's handshake, which saves
        no session: the next page view adopts it); returns the playgrounds whose conversation was kept as
        an earlier copy.
        """
        wanted = self.workspace_id(user_id)
        if session.workspace is not None and session.workspace.store_id == wanted:
            return []
        key = session_key(self.key_prefix, wanted)
        session.workspace = Workspace(wanted, lambda: self._load_workspace(session, key))
        return adopt(self.conversations, session) if adopt_own_work and session.own_work() else []

    def _load_workspace(self, session: PlaygroundSession, key: str) -> dict | None:
        """Read the workspace's blob; in the same round trip, push the expiry of the browser's own blob
        (what its save would otherwise do in one more)."""
        if not self.blob_in_store_redis or session._refreshed or not session.stored:
            return self._blob_get(key).data
        blob, pushed = self._blob_get_and_expire(key, self._blob_key(session.sid), self._lifetime(session))
        session._refreshed = pushed  # not pushed: the blob is gone (signed out meanwhile); the save sees it
        return blob.data

    # --- keys and expiry ------------------------------------------------------------------------

    def keys_of(self, record: "PlaygroundSession | Workspace") -> list[str]:
        """Every Redis key of the work of ``record`` (a session: its workspace's when signed in): the
        blob, then each conversation list. What a write to the work refreshes (one hash slot)."""
        if isinstance(record, PlaygroundSession):
            if record.workspace is None:
                return self.own_keys(record)
            record = record.workspace
        return [session_key(self.key_prefix, record.store_id)] + [
            conversation_key(self.key_prefix, record.store_id, playground) for playground in record.playgrounds()
        ]

    def own_keys(self, session: PlaygroundSession) -> list[str]:
        """The session's own keys: its blob, then each of its own conversation lists."""
        own = session.own_store_id
        return [self._blob_key(session.sid)] + [
            conversation_key(self.key_prefix, own, playground) for playground in session.own_playgrounds()
        ]

    def slide_keys(self, session: PlaygroundSession) -> list[str]:
        """Keys a Redis call made by a view may push to the full lifetime in passing (then it sets
        ``expiry_refreshed``): all of the work in use (a workspace's always), none of an idle session's,
        whose save gives it the short lifetime instead."""
        if session.workspace is not None:
            return self.keys_of(session.workspace)
        return self.keys_of(session) if in_use(session) else []

    def read_window(
        self, session: PlaygroundSession, playground: str, limit: int, end: int | None = None, max_bytes: int = 0
    ) -> Window:
        """A page's window of one of the work's conversations (``ConversationStore.window``), read in the
        same round trip that slides the work's expiry (``slide_keys``), so its save need not.

        Signed in, that round trip also slides the browser's own blob (pipelined: another hash slot) and,
        when nothing read the workspace yet, reads its blob: a signed-in page view costs what one without
        sign-in does, two round trips (the browser's blob, then this).
        """
        workspace = session.workspace
        also, read_blob = {}, False
        refresh_keys = None
        if workspace is not None and self.blob_in_store_redis:
            if not session._refreshed:
                also = {self._blob_key(session.sid): self._lifetime(session)}
            if not workspace.loaded:
                read_blob = True
                refresh_keys = [session_key(self.key_prefix, workspace.store_id)]  # its lists: named in it
        window = self.conversations.window(
            session.store_id,
            playground,
            limit=limit,
            end=end,
            refresh_keys=self.slide_keys(session) if refresh_keys is None else refresh_keys,
            max_bytes=max_bytes,
            also_expire=also,
            read_blob=read_blob,
        )
        if read_blob:
            try:
                data = self.serializer.decode(window.blob) if window.blob else None
            except SessionDataError:
                data = None
            workspace.accessed = True
            workspace.set_loaded(data)
        # Unless its blob was gone (ended by another request meanwhile): then the save looks again.
        session.expiry_refreshed = window.first_refreshed
        if also:
            session._refreshed = window.also_refreshed
        return window

    def get_expiration_time(self, app: Flask, session: PlaygroundSession):
        """The cookie lasts as long as the stored session: the idle lifetime until the session is used."""
        if not session.permanent:
            return None
        return datetime.now(UTC) + timedelta(seconds=self._lifetime(session))

    # --- sign-in and sign-out -------------------------------------------------------------------

    def regenerate(self, session: PlaygroundSession) -> None:
        """Give the session a new id (after a login), keeping its data and own conversations; the old keys go.

        The workspace, if one is attached, is the user's: it stays as it is (attach the new user's after).
        """
        session.ensure_loaded()
        old_sid, new_sid = session.sid, self._new_sid()
        data = dict(session.items())
        playgrounds = session.own_playgrounds()
        self._blob_set(self._blob_key(new_sid), data, self._lifetime(data))
        # Replies being written follow the session.
        move_open_replies(store_id(old_sid), store_id(new_sid))
        self.conversations.move_session(store_id(old_sid), store_id(new_sid), playgrounds)
        self._blob_delete(self._blob_key(old_sid))
        session.sid = new_sid
        session.original = copy.deepcopy(data)
        session.stored = True
        session.modified = True  # so the response sets the new cookie

    def end(self, session: PlaygroundSession) -> None:
        """Sign-out: delete the session's own keys (its blob: CSRF token, flashes, who is signed in) and
        give it a new id, so that nothing the id named survives and what this request still writes (a
        flashed notice) starts a new session. The user's workspace stays, for their next sign-in.

        Call after the session's own replies were stopped (``replies.control.reset_conversation``).
        """
        session.ensure_loaded()
        self.delete_stored(session.own_store_id, session.own_playgrounds())
        session.workspace = None
        session.clear()
        session.sid = self._new_sid()
        session.original = {}
        session.stored = False  # the new id has no blob yet: a write here creates it
        session.modified = True  # saved if something is written after; else the cookie is deleted

    def stored_data(self, store_id: str) -> dict | None:
        """The data of the session stored as ``store`` (a store id, not a session id), or None if none."""
        return self._blob_get(session_key(self.key_prefix, store_id)).data

    def is_stored(self, store_id: str) -> bool:
        """Whether a session is stored as ``store`` (a store id)."""
        return self.stored_data(store_id) is not None

    def delete_stored(self, store_id: str, playgrounds: Iterable[str]) -> None:
        """Delete every key of the session stored as ``store``: its blob, the conversations of
        ``playgrounds``, its open replies and recent submissions (a sign-out, here or by the CLI).

        Call after the conversations' replies were stopped (``replies.control.reset_conversation``).
        """
        self._blob_delete(session_key(self.key_prefix, store_id))
        conversations = self.conversations
        keys = [conversation_key(self.key_prefix, store_id, playground) for playground in playgrounds]
        conversations.redis.unlink(*keys, conversations.open_key(store_id), conversations.submissions_key(store_id))

    # --- a request's session --------------------------------------------------------------------

    def open_session(self, app: Flask, request: Request) -> PlaygroundSession:
        """Return the session named by the cookie, to be read from the store on first use."""
        if self.sessionless_paths and request.path.startswith(self.sessionless_paths):
            return self.make_null_session(app)
        sid = request.cookies.get(self.get_cookie_name(app))
        if not sid or not is_valid_sid(sid):
            return self._new_session()

        def load():
            blob = self._blob_get(self._blob_key(sid))
            if blob.unreadable:
                app.logger.warning("ignored a session blob that is not msgpack/JSON")
            return blob.data

        return self.session_class(sid=sid, loader=load, on_missing=self._new_sid, permanent_default=self.permanent)

    def save_session(self, app: Flask, session: PlaygroundSession, response: Response) -> None:
        """Write what changed (merged), or else push the expiry of all the session's keys; the same for
        its workspace, if one is attached."""
        if not session.loaded:
            return  # never used in this request: nothing to read, write or refresh
        if session.workspace is not None and session.workspace.loaded:
            self._save_workspace(session.workspace)
        name = self.get_cookie_name(app)
        domain = self.get_cookie_domain(app)
        path = self.get_cookie_path(app)
        if session.accessed:
            response.vary.add("Cookie")
        if not session:
            if session.modified and session.stored:
                self._blob_delete(self._blob_key(session.sid))
                response.delete_cookie(name, domain=domain, path=path)
            return
        still_stored = True
        if session.modified:
            flashes = session.get("_flashes")
            if flashes and len(flashes) > MAX_FLASHES:
                # Messages flashed by requests whose page was never shown (scripts, retries) pile up.
                session["_flashes"] = flashes[-MAX_FLASHES:]
            still_stored = self._write_merged(session)
        elif session.accessed and not (session._refreshed and self.blob_in_store_redis and in_use(session)):
            blob_key, *conversation_keys = self.own_keys(session)
            touched = self._blob_touch(blob_key, self._lifetime(session), conversation_keys)
            still_stored = touched or not session.stored
        # A blob loaded by this request and gone now was ended by another (a sign-out): sending its id
        # again would put the old cookie back over the sign-out's.
        if still_stored and (session.modified or session.accessed):
            response.set_cookie(
                name,
                session.sid,
                expires=self.get_expiration_time(app, session),
                httponly=self.get_cookie_httponly(app),
                domain=domain,
                path=path,
                secure=self.get_cookie_secure(app),
                samesite=self.get_cookie_samesite(app),
            )

    def _write_merged(self, session: PlaygroundSession) -> bool:
        """Write what this request changed, merged into the stored blob, and push the expiry of every key.

        Optimistic: read, merge, write unless another request wrote the blob in between, else again.
        Returns False, writing nothing, when the blob this request loaded is gone (the session was ended).
        """
        blob_key, *conversation_keys = self.own_keys(session)
        current = dict(session.items())
        while True:
            blob = self._blob_get(blob_key)
            if session.stored and blob.data is None:
                return False
            merged = merge_changes(session.original, current, blob.data or {})
            if self._blob_set(blob_key, merged, self._lifetime(merged), conversation_keys, expected=blob):
                return True

    def _save_workspace(self, workspace: Workspace) -> None:
        """Write what this request changed of the workspace (merged, as a session's), or push its expiry.

        A workspace is kept whole for its lifetime from its last use, and written again if it was purged
        meanwhile: it is the user's, not one browser's.
        """
        seconds = self.conversations.ttl_for(workspace.store_id)
        blob_key, *conversation_keys = self.keys_of(workspace)
        if workspace.modified:
            current = dict(workspace.items())
            while True:
                blob = self._blob_get(blob_key)
                merged = merge_changes(workspace.original, current, blob.data or {})
                if self._blob_set(blob_key, merged, seconds, conversation_keys, expected=blob, list_seconds=seconds):
                    return
        # Nothing stored (a user with no work yet): nothing to keep alive.
        if workspace.stored and workspace.accessed and not (workspace.expiry_refreshed and self.blob_in_store_redis):
            self._blob_touch(blob_key, seconds, conversation_keys, list_seconds=seconds)

    def _lifetime(self, data) -> int:
        """Seconds the blob of a session holding ``data`` is kept: full when in use, else the idle lifetime."""
        if in_use(data):
            return self.conversations.ttl_seconds
        return min(self.conversations.ttl_seconds, self.idle_seconds)

    def _retrieve_session_data(self, key: str) -> dict | None:
        """The data of the blob at ``key``, or None (Flask-Session's name for the read)."""
        return self._blob_get(key).data

    # The storage primitives: all a backend provides.

    def _blob_get(self, key: str) -> Blob:
        """Read the blob."""
        raise NotImplementedError

    def _blob_set(
        self,
        key: str,
        data: dict,
        seconds: int,
        conversation_keys: Sequence[str] = (),
        expected: Blob | None = None,
        list_seconds: int | None = None,
    ) -> bool:
        """Write the blob whole for ``seconds`` and push the expiry of the conversations to ``list_seconds``
        (default: a session's full lifetime).

        With ``expected`` (the blob as read), write only if the blob is still that one; False if not.
        """
        raise NotImplementedError

    def _blob_delete(self, key: str) -> None:
        """Delete the blob."""
        raise NotImplementedError

    def _blob_touch(
        self, key: str, seconds: int, conversation_keys: list[str], list_seconds: int | None = None
    ) -> bool:
        """Push the expiry of the blob (to ``seconds``) and of the conversations (to ``list_seconds``,
        default a session's full lifetime); False if there was no blob."""
        raise NotImplementedError


class RedisPlaygroundSessionInterface(PlaygroundSessionMixin, RedisSessionInterface):
    """Sessions in Redis DB 2: the blob and the conversation lists, one TTL for all."""

    def __init__(self, app: Flask, client, conversations: ConversationStore, **options):
        # Flask-Session only accepts a redis.Redis; a RedisCluster client serves as well (every
        # key of a session shares one hash slot), so skip its check and keep the client we got.
        ServerSideSessionInterface.__init__(self, app, **options)
        self.client = client
        self.serializer = StrictSerializer(app, options.get("serialization_format", "msgpack"))
        self.conversations = conversations
        self._set_blob = client.register_script(_SET_BLOB)

    def _blob_get(self, key: str) -> Blob:
        raw = self.client.get(key)
        try:
            return Blob(self.serializer.decode(raw) if raw else None, raw)
        except SessionDataError:
            return Blob(None, raw, unreadable=True)

    def _blob_set(
        self, key: str, data: dict, seconds: int, conversation_keys=(), expected: Blob | None = None, list_seconds=None
    ) -> bool:
        args = [self.serializer.encoder.encode(data), seconds, list_seconds or self.conversations.ttl_seconds]
        if expected is not None:
            args.append(expected.version or b"")
        return bool(self._set_blob(keys=[key, *conversation_keys], args=args))

    def _blob_delete(self, key: str) -> None:
        self.client.delete(key)

    def _blob_get_and_expire(self, key: str, other: str, seconds: int) -> tuple[Blob, bool]:
        """Read the blob at ``key`` and push the expiry of ``other`` (a key of another hash slot), in one
        round trip; return the blob and whether ``other`` still existed."""
        with self.client.pipeline(transaction=False) as pipe:
            pipe.get(key)
            pipe.expire(other, seconds)
            raw, pushed = pipe.execute()
        try:
            return Blob(self.serializer.decode(raw) if raw else None, raw), bool(pushed)
        except SessionDataError:
            return Blob(None, raw, unreadable=True), bool(pushed)

    def _blob_touch(self, key: str, seconds: int, conversation_keys: list[str], list_seconds=None) -> bool:
        with self.client.pipeline(transaction=False) as pipe:  # one round trip for all
            pipe.expire(key, seconds)
            for conversation in conversation_keys:
                pipe.expire(conversation, list_seconds or self.conversations.ttl_seconds)
            return bool(pipe.execute()[0])


class CacheLibPlaygroundSessionInterface(PlaygroundSessionMixin, CacheLibSessionInterface):
    """Unit-test twin: the blob in a cachelib cache, conversations in (fake) Redis."""

    blob_in_store_redis = False

    def __init__(self, app: Flask, client, conversations: ConversationStore, **options):
        super().__init__(app, client=client, **options)
        self.conversations = conversations

    def _blob_get(self, key: str) -> Blob:
        data = self.cache.get(key)
        if data is None or isinstance(data, dict):
            return Blob(data)
        return Blob(None, unreadable=True)

    def _blob_set(
        self, key: str, data: dict, seconds: int, conversation_keys=(), expected: Blob | None = None, list_seconds=None
    ) -> bool:
        # cachelib has no compare-and-set; the unit tests' one process has no concurrent writer to lose.
        self.cache.set(key, data, timeout=seconds)
        self.conversations.refresh(conversation_keys, seconds=list_seconds)
        return True

    def _blob_delete(self, key: str) -> None:
        self.cache.delete(key)

    def _blob_touch(self, key: str, seconds: int, conversation_keys: list[str], list_seconds=None) -> bool:
        # cachelib has no "touch": setting the blob again is how its timeout slides.
        data = self._blob_get(key).data
        if data is not None:
            self.cache.set(key, data, timeout=seconds)
        self.conversations.refresh(conversation_keys, seconds=list_seconds)
        return data is not None


def make_session_interface(app: Flask, session_redis, conversations: ConversationStore):
    """Build the configured session interface (``SESSION_TYPE`` redis or cachelib)."""
    options = dict(
        key_prefix=app.config["SESSION_KEY_PREFIX"],
        permanent=app.config["SESSION_PERMANENT"],
        serialization_format=app.config["SESSION_SERIALIZATION_FORMAT"],
    )
    if app.config["SESSION_TYPE"] == "cachelib":
        from cachelib import SimpleCache

        cache = app.config.get("SESSION_CACHELIB") or SimpleCache(threshold=10_000)
        interface = CacheLibPlaygroundSessionInterface(app, cache, conversations, **options)
    else:
        interface = RedisPlaygroundSessionInterface(app, session_redis, conversations, **options)
    interface.idle_seconds = int(app.config["SESSION_IDLE_LIFETIME"].total_seconds())
    interface.workspace_secret = app.config["SECRET_KEY"]
    return interface
