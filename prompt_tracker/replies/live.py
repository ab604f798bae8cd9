"""Live events of a session, sent to every open tab of it over Socket.IO.

Each browser joins a room named by an HMAC of its session's store id, so events reach only the
session they belong to and a room name reveals nothing. The worker emits through the Redis message
queue (DB 1); every web process forwards to its own sockets.

Events and their payloads (what ``static/live.js`` and the pages' scripts read):

- ``message.appended``  ``{"playground", "ids": [...]}``  messages were added (a send)
- ``message.started``   ``{"id"}``                        a worker began writing the reply
- ``message.delta``     ``{"id", "attempt", "text", "offset"}``  more text of that reply
- ``message.tool_calls`` ``{"id", "attempt", "calls": [{"name", "arguments", "more"}]}``  the tool calls
  that reply is making, as they assemble: every call so far, its arguments' JSON text so far (capped:
  ``more`` says it goes on); the whole calls come with the reply's end
- ``message.done`` / ``message.stopped`` / ``message.failed``  ``{"id", ...}``  the reply ended
- ``message.changed``   ``{"playground", "id"}``           a message changed in place (an attempt chosen, an edit)
- ``message.compared``  ``{"playground", "id"}``           a replay's reply has its stored difference
- ``replay.paced``      ``{"playground", "id", "at"}``     a replay's next turn waits for the send rate until ``at``
- ``conversation.reset`` ``{"playground"}``                the conversation was deleted
- ``settings.saved``    ``{"playground", "digest"}``       settings were saved (``settings_digest``)

An event is a hint, never the record: after any (re)connect the page fetches the open messages.
"""

import hashlib
import hmac
import time

import msgspec
from flask import current_app

from ..domain.keys import sockets_key, user_sockets_key
from ..extensions import services, socketio


def room_for(store_id: str) -> str:
    """Socket.IO room of a session: HMAC-SHA256 of its store id with the app's secret key."""
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, f"room:{store_id}".encode(), hashlib.sha256).hexdigest()


def publish(store_id: str, event: str, payload: dict) -> None:
    """Send one event to the open tabs of session ``store_id``; a failure here never fails the action."""
    try:
        socketio.emit(event, payload, to=room_for(store_id))
    except Exception as error:  # the data is stored either way; the page catches up on reconnect
        current_app.logger.warning("could not emit %s: %s", event, error)


def settings_digest(settings: msgspec.Struct) -> str:
    """A short fingerprint of saved settings, so a tab can tell that its form shows older ones."""
    return hashlib.sha256(msgspec.msgpack.encode(settings)).hexdigest()[:16]


def admit_socket(store_id: str, socket_id: str, user_id: int | None, limit: int) -> list[str]:
    """Record an admitted socket of session ``store_id`` (and of user ``user_id`` when signed in), and
    close that user's (that session's, without sign-in) oldest sockets past ``limit``; return their ids.

    One transaction adds the socket and takes the oldest ones out, so two sockets connecting at once
    never leave more than ``limit`` counted. They are closed through the Socket.IO server: via the
    message queue when another web process holds them.
    """
    now = time.time()
    lifetime = int(current_app.permanent_session_lifetime.total_seconds())
    session_key = sockets_key(store_id)
    capped_key = session_key if user_id is None else user_sockets_key(user_id)
    with services.jobs_redis.pipeline(transaction=True) as pipe:
        for key in dict.fromkeys((session_key, capped_key)):
            pipe.zadd(key, {socket_id: now})
            pipe.expire(key, lifetime)
        pipe.zrange(capped_key, 0, -(limit + 1))
        pipe.zremrangebyrank(capped_key, 0, -(limit + 1))
        oldest = pipe.execute()[-2]
    closed = [member.decode() for member in oldest]
    close_sockets(closed)
    return closed


def forget_socket(store_id: str, socket_id: str, user_id: int | None) -> None:
    """Drop a closed socket from its session's set and its user's."""
    with services.jobs_redis.pipeline(transaction=False) as pipe:
        pipe.zrem(sockets_key(store_id), socket_id)
        if user_id is not None:
            pipe.zrem(user_sockets_key(user_id), socket_id)
        pipe.execute()


def close_sockets(socket_ids: list[str]) -> None:
    """Disconnect these sockets, in whichever web process holds them (the server then closes their transport)."""
    server = getattr(socketio, "server", None)
    if server is None:
        return
    for socket_id in socket_ids:
        server.disconnect(socket_id, namespace="/")  # via the message queue when another process has it


def disconnect_sockets(store_id: str) -> int:
    """Disconnect every socket of session ``store``, in whichever web process holds it; return how many."""
    key = sockets_key(store_id)
    socket_ids = [member.decode() for member in services.jobs_redis.zrange(key, 0, -1)]
    services.jobs_redis.delete(key)
    close_sockets(socket_ids)
    return len(socket_ids)
