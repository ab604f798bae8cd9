"""``/healthz``: each Redis database's state, cheap enough for a load balancer to poll."""

import redis
from flask import Blueprint, current_app, jsonify

from ..extensions import services
from ..services import connect

bp = Blueprint("health", __name__)


def _socketio_redis():
    url = current_app.config.get("SOCKETIO_MESSAGE_QUEUE")
    if not url:
        return None
    client = current_app.extensions.get("prompt_tracker.socketio_redis")
    if client is None:
        client = current_app.extensions["prompt_tracker.socketio_redis"] = connect(url, "socketio")
    return client


def check(client) -> str:
    """Return "ok", or the error that PING raised."""
    try:
        client.ping()
        return "ok"
    except redis.RedisError as error:
        return f"down: {error.__class__.__name__}"


@bp.get("/healthz")
def healthz():
    states = {"sessions": check(services.session_redis), "jobs": check(services.jobs_redis)}
    socketio_redis = _socketio_redis()
    if socketio_redis is not None:
        states["socketio"] = check(socketio_redis)
    healthy = all(state == "ok" for state in states.values())
    return jsonify(status="ok" if healthy else "unavailable", redis=states), 200 if healthy else 503
