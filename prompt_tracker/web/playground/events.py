"""Socket.IO handlers of the playground: a socket joins its own session's room, or is refused and closed."""

import socket

from flask import request, session
from flask_socketio import ConnectionRefusedError, join_room
from redis.exceptions import RedisError

from ...extensions import socketio
from ...replies.live import forget_socket, remember_socket, room_for
from ..identity import socket_user_allowed

NAMESPACE = "/"
REFUSAL_FLUSH_SECONDS = 1.0
CLOSE_GRACE_SECONDS = 1.0


@socketio.on("connect")
def connect(auth=None):
    """Admit a socket only with a stored session (its cookie), into that session's room."""
    try:
        known = bool(session)
    except RedisError:
        refuse("the session store is unreachable")
    if not known:
        refuse("no session: load the playground page first")
    if not socket_user_allowed():
        refuse("not signed in")
    join_room(room_for(session.store_id))
    remember_socket(session.store_id, request.sid)


@socketio.on("disconnect")
def disconnect(reason=None):
    """Forget a closed socket (sign-out disconnects the ones still remembered)."""
    try:
        forget_socket(session.store_id, request.sid)
    except (RedisError, RuntimeError):
        pass  # the set expires with the session anyway


def refuse(reason: str):
    """Refuse this socket and close its connection once the refusal is sent.

    python-socketio answers a refusal with a CONNECT_ERROR packet but keeps the Engine.IO transport
    open, so each refused client would hold a socket until it leaves; the server closes it instead.
    """
    eio_sid = socketio.server.manager.eio_sid_from_sid(request.sid, NAMESPACE)
    connection = request.environ.get("gunicorn.socket") or request.environ.get("werkzeug.socket")
    socketio.start_background_task(close_after_refusal, request.sid, eio_sid, connection)
    raise ConnectionRefusedError(reason)


def close_after_refusal(socket_id: str, eio_sid: str, connection: socket.socket | None) -> None:
    """Close the transport of a refused socket after its CONNECT_ERROR packet was queued, then its TCP connection."""
    manager = socketio.server.manager
    waited = 0.0
    # The refusal packet is queued before python-socketio forgets the socket id: once it is forgotten,
    # closing queues the Engine.IO CLOSE packet behind the refusal, so the client reads the reason.
    while manager.sid_from_eio_sid(eio_sid, NAMESPACE) == socket_id and waited < REFUSAL_FLUSH_SECONDS:
        socketio.sleep(0.01)
        waited += 0.01
    socketio.server.eio.disconnect(eio_sid)  # an Engine.IO CLOSE packet, then a WebSocket close frame
    # A client that does not answer the close frame (simple-websocket would wait for it forever) is cut off.
    socketio.sleep(CLOSE_GRACE_SECONDS)
    if connection is not None:
        try:
            connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed: the client answered the close frame
