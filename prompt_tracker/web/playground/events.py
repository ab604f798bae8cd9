"""Socket.IO handlers of the playground: a socket joins its work's room (its user's workspace when signed
in, so every tab of the user on any device hears the events; else its session's), or is refused and closed.

A user holds at most ``MAX_SOCKETS_PER_USER`` sockets (a session without sign-in, as many): one more
closes the oldest, whichever web process holds it. A socket the server disconnects (that one, or a
sign-out's) has its transport and TCP connection closed too, so a client that ignores the
disconnection holds nothing.
"""

import socket

from flask import current_app, request, session
from flask_socketio import ConnectionRefusedError, SocketIO, join_room
from redis.exceptions import RedisError

from ...extensions import socketio
from ...replies.live import admit_socket, forget_socket, room_for
from ..identity import socket_user_allowed, socket_user_id

NAMESPACE = "/"
REFUSAL_FLUSH_SECONDS = 1.0
CLOSE_GRACE_SECONDS = 1.0
# Where a socket's handshake environ (kept by the server for its every event) holds its user's id.
USER_ID_KEY = "prompt_tracker.socket_user_id"


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
    user_id = request.environ[USER_ID_KEY] = socket_user_id()
    if user_id is not None:
        current_app.session_interface.attach_workspace(session, user_id, adopt_own_work=False)
    join_room(room_for(session.store_id))
    # Counted with its browser session, which a sign-out disconnects.
    admit_socket(session.own_store_id, request.sid, user_id, current_app.config["MAX_SOCKETS_PER_USER"])


@socketio.on("disconnect")
def disconnect(reason=None):
    """Forget a closed socket; one the server disconnected (past the cap, or signed out) loses its transport too."""
    if reason == SocketIO.reason.SERVER_DISCONNECT:
        close_transport_later()
    try:
        forget_socket(session.own_store_id, request.sid, request.environ.get(USER_ID_KEY))
    except (RedisError, RuntimeError):
        pass  # the sets expire with the session anyway


def refuse(reason: str):
    """Refuse this socket and close its connection once the refusal is sent.

    python-socketio answers a refusal with a CONNECT_ERROR packet but keeps the Engine.IO transport
    open, so each refused client would hold a socket until it leaves; the server closes it instead.
    """
    close_transport_later()
    raise ConnectionRefusedError(reason)


def close_transport_later() -> None:
    """Have this request's socket closed down to its TCP connection once Socket.IO is done with it."""
    eio_sid = socketio.server.manager.eio_sid_from_sid(request.sid, NAMESPACE)
    connection = request.environ.get("gunicorn.socket") or request.environ.get("werkzeug.socket")
    socketio.start_background_task(close_transport, request.sid, eio_sid, connection)


def close_transport(socket_id: str, eio_sid: str, connection: socket.socket | None) -> None:
    """Close the transport of a refused or disconnected socket after its last packet was queued, then its TCP connection."""
    manager = socketio.server.manager
    waited = 0.0
    # The refusal (or DISCONNECT) packet is queued before python-socketio forgets the socket id: once it
    # is forgotten, closing queues the Engine.IO CLOSE packet behind it, so the client reads it.
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
