"""Live events of a reply (started, delta, done, failed, stopped), sent to the browser over Socket.IO.

Each browser joins a room named by an HMAC of its session id, never the raw id, so events can only
reach the session they belong to and a room name reveals nothing. The worker emits through the
Redis message queue (DB 1); web processes forward to their sockets.
"""

import hashlib
import hmac
import time

from flask import current_app

from ..extensions import socketio


def room_for(sid: str) -> str:
    """Socket.IO room of a session: HMAC-SHA256 of the sid with the app's secret key."""
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, f"room:{sid}".encode(), hashlib.sha256).hexdigest()


def publish(sid: str, event: str, payload: dict) -> None:
    """Send one event to the browsers of session ``sid``; a failure here never fails the reply."""
    try:
        socketio.emit(event, payload, to=room_for(sid))
    except Exception as error:  # the reply is stored either way; the page catches up on reload
        current_app.logger.warning("could not emit %s: %s", event, error)


class DeltaBuffer:
    """Coalesce text deltas so a fast stream costs one publish per ``interval``, not per token."""

    def __init__(self, sid: str, message_id: str, interval: float = 0.05):
        self.sid = sid
        self.message_id = message_id
        self.interval = interval
        self.pending: list[str] = []
        self.last_flush = 0.0

    def add(self, text: str) -> bool:
        """Buffer ``text``; return True when it was flushed (a good moment for other checks)."""
        self.pending.append(text)
        if time.monotonic() - self.last_flush >= self.interval:
            self.flush()
            return True
        return False

    def flush(self) -> None:
        """Publish what is buffered, if anything."""
        if self.pending:
            publish(self.sid, "message.delta", {"id": self.message_id, "text": "".join(self.pending)})
            self.pending = []
        self.last_flush = time.monotonic()
