"""Flask-Session's Redis (and, for unit tests, cachelib) session interfaces, adapted to the playground.

What the stock 0.8 interfaces do and we change:
- the serializer falls back to pickle: ours decodes msgpack or JSON only, anything else is no session;
- any cookie value is looked up: ours ignores values that are not the shape of an id we issue;
- every request rewrites the whole blob (SESSION_REFRESH_EACH_REQUEST): ours rewrites it only when it
  changed, and otherwise just pushes the expiry; static files never reach Redis at all;
- the blob has a TTL but its conversation lists do not: ours pushes the expiry of the blob and of
  every conversation list of the session together, in one round trip;
- a Redis outage raises from ``open_session`` (a bare 500): ours marks the session unavailable so
  the app can answer 503.
"""

from contextlib import suppress

import msgspec
from flask import Flask, Request, Response
from flask_session.base import MsgSpecSerializer, ServerSideSession
from flask_session.cachelib import CacheLibSessionInterface
from flask_session.redis import RedisSessionInterface
from redis.exceptions import RedisError

from .conversation_store import ConversationStore
from .redis_keys import conversation_key, is_valid_sid, session_key


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


class PlaygroundSession(ServerSideSession):
    """A server-side session that knows its conversations and whether its expiry was pushed."""

    def __init__(self, initial=None, sid=None, permanent=None):
        super().__init__(initial, sid, permanent)
        self.expiry_refreshed = False
        self.unavailable = False

    def playgrounds(self) -> list[str]:
        """Names of the playgrounds that have a conversation in this session."""
        return list(super().get("conversations", ()))

    def add_playground(self, playground: str) -> None:
        """Record that ``playground`` has a conversation (marks the session modified once)."""
        if playground not in self.playgrounds():
            self["conversations"] = [*self.playgrounds(), playground]


class PlaygroundSessionMixin:
    """Behaviour shared by the Redis and cachelib interfaces; subclasses store the blob."""

    session_class = PlaygroundSession
    store: ConversationStore
    # Whether the blob lives in the Redis that the page's window read refreshes in passing.
    blob_in_store_redis = True

    def _get_store_id(self, sid: str) -> str:
        return session_key(self.key_prefix, sid)

    def _new_session(self) -> PlaygroundSession:
        return self.session_class(sid=self._generate_sid(self.sid_length), permanent=self.permanent)

    def keys_of(self, session: PlaygroundSession) -> list[str]:
        """Every Redis key of the session: the blob, then each conversation list."""
        return [self._get_store_id(session.sid)] + [
            conversation_key(self.key_prefix, session.sid, playground) for playground in session.playgrounds()
        ]

    def open_session(self, app: Flask, request: Request) -> PlaygroundSession:
        """Load the session named by the cookie, or start a new one (never for static files)."""
        if app.static_url_path and request.path.startswith(app.static_url_path + "/"):
            return self._new_session()
        sid = request.cookies.get(self.get_cookie_name(app))
        if not sid or not is_valid_sid(sid):
            return self._new_session()
        try:
            data = self._retrieve_session_data(self._get_store_id(sid))
        except SessionDataError:
            app.logger.warning("ignored a session blob that is not msgpack/JSON")
            data = None
        except RedisError as error:
            app.logger.error("session store unavailable: %s", error)
            session = self._new_session()
            session.unavailable = True
            return session
        if data is None:
            return self._new_session()
        return self.session_class(data, sid=sid)

    def save_session(self, app: Flask, session: PlaygroundSession, response: Response) -> None:
        """Write the blob only if it changed; otherwise push the expiry of all the session's keys."""
        if session.unavailable:
            return
        name = self.get_cookie_name(app)
        domain = self.get_cookie_domain(app)
        path = self.get_cookie_path(app)
        if session.accessed:
            response.vary.add("Cookie")
        if not session:
            if session.modified:
                self._delete_session(self._get_store_id(session.sid))
                response.delete_cookie(name, domain=domain, path=path)
            return
        if session.modified:
            self._persist(session, rewrite=True)
        elif session.accessed and not (session.expiry_refreshed and self.blob_in_store_redis):
            self._persist(session, rewrite=False)
        if self.should_set_cookie(app, session) and (session.modified or session.accessed):
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

    def _persist(self, session: PlaygroundSession, rewrite: bool) -> None:
        raise NotImplementedError

    def _ttl(self) -> int:
        return self.store.ttl_seconds


class RedisPlaygroundSessionInterface(PlaygroundSessionMixin, RedisSessionInterface):
    """Sessions in Redis DB 2: the blob and the conversation lists, one TTL for all."""

    def __init__(self, app: Flask, client, store: ConversationStore, **options):
        super().__init__(app, client=client, **options)
        self.serializer = StrictSerializer(app, options.get("serialization_format", "msgpack"))
        self.store = store

    def _retrieve_session_data(self, store_id: str) -> dict | None:
        raw = self.client.get(store_id)
        return self.serializer.decode(raw) if raw else None

    def _persist(self, session: PlaygroundSession, rewrite: bool) -> None:
        blob_key, *conversation_keys = self.keys_of(session)
        with self.client.pipeline(transaction=False) as pipe:
            if rewrite:
                pipe.set(blob_key, self.serializer.encode(session), ex=self._ttl())
            else:
                pipe.expire(blob_key, self._ttl())
            for key in conversation_keys:
                pipe.expire(key, self._ttl())
            pipe.execute()


class CacheLibPlaygroundSessionInterface(PlaygroundSessionMixin, CacheLibSessionInterface):
    """Unit-test twin: the blob in a cachelib cache, conversations in (fake) Redis."""

    blob_in_store_redis = False

    def __init__(self, app: Flask, client, store: ConversationStore, **options):
        super().__init__(app, client=client, **options)
        self.store = store

    def _retrieve_session_data(self, store_id: str) -> dict | None:
        data = self.cache.get(store_id)
        return data if isinstance(data, dict) else None

    def _persist(self, session: PlaygroundSession, rewrite: bool) -> None:
        blob_key, *conversation_keys = self.keys_of(session)
        # cachelib has no "touch": setting the same dict again is how its timeout slides.
        self.cache.set(blob_key, dict(session), timeout=self._ttl())
        self.store.refresh(conversation_keys)


def make_session_interface(app: Flask, session_redis, store: ConversationStore):
    """Build the configured session interface (``SESSION_TYPE`` redis or cachelib)."""
    options = dict(
        key_prefix=app.config["SESSION_KEY_PREFIX"],
        permanent=app.config["SESSION_PERMANENT"],
        serialization_format=app.config["SESSION_SERIALIZATION_FORMAT"],
    )
    if app.config["SESSION_TYPE"] == "cachelib":
        from cachelib import SimpleCache

        cache = app.config.get("SESSION_CACHELIB") or SimpleCache(threshold=10_000)
        return CacheLibPlaygroundSessionInterface(app, cache, store, **options)
    return RedisPlaygroundSessionInterface(app, session_redis, store, **options)
