"""Live events of a session, sent to every open tab of it over Socket.IO.

Each browser joins a room named by an HMAC of its session's store id, so events reach only the
session they belong to and a room name reveals nothing. The worker emits through the Redis message
queue (DB 1); every web process forwards to its own sockets.

Events and their payloads (what ``static/live.js`` and the pages' scripts read):

- ``message.appended``  ``{"playground", "ids": [...]}``  messages were added (a send)
- ``message.started``   ``{"id"}``                        a worker began writing the reply
- ``message.delta``     ``{"id", "text"}``                 more text of that reply
- ``message.done`` / ``message.stopped`` / ``message.failed``  ``{"id", ...}``  the reply ended
- ``conversation.reset`` ``{"playground"}``                the conversation was deleted
- ``settings.saved``    ``{"playground", "digest"}``       settings were saved (``settings_digest``)

An event is a hint, never the record: after any (re)connect the page fetches the open messages.
"""

import hashlib
import hmac

import msgspec
from flask import current_app

from ..domain.keys import sockets_key
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


def remember_socket(store_id: str, socket_id: str) -> None:
    """Record an admitted socket of session ``store`` (so signing out can disconnect it)."""
    key = sockets_key(store_id)
    with services.jobs_redis.pipeline(transaction=False) as pipe:
        pipe.sadd(key, socket_id)
        pipe.expire(key, int(current_app.permanent_session_lifetime.total_seconds()))
        pipe.execute()


def forget_socket(store_id: str, socket_id: str) -> None:
    """Drop a closed socket from its session's set."""
    services.jobs_redis.srem(sockets_key(store_id), socket_id)


def disconnect_sockets(store_id: str) -> int:
    """Disconnect every socket of session ``store``, in whichever web process holds it; return how many."""
    key = sockets_key(store_id)
    socket_ids = [member.decode() for member in services.jobs_redis.smembers(key)]
    services.jobs_redis.delete(key)
    server = getattr(socketio, "server", None)
    if server is None:
        return 0
    for socket_id in socket_ids:
        server.disconnect(socket_id, namespace="/")  # via the message queue when another process has it
    return len(socket_ids)
