"""Socket.IO handlers of the playground: a socket joins its own session's room, or is refused."""

from flask import session
from flask_socketio import ConnectionRefusedError, join_room
from redis.exceptions import RedisError

from ..extensions import socketio
from ..turns.live import room_for


@socketio.on("connect")
def connect(auth=None):
    """Admit a socket only with a stored session (its cookie), into that session's room."""
    try:
        known = bool(session)
    except RedisError:
        raise ConnectionRefusedError("the session store is unreachable") from None
    if not known:
        raise ConnectionRefusedError("no session: load the playground page first")
    join_room(room_for(session.sid))
