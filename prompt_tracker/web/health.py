"""``/healthz``: each Redis use's state, the database's and the live RQ workers, within about a second whatever hangs.

The checks run in parallel threads and the answer waits at most ``CHECK_SECONDS`` for them: a
stopped or paused Redis is reported as down instead of holding the load balancer's request.
"""

from concurrent.futures import ThreadPoolExecutor, wait

import redis
from flask import Blueprint, current_app, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from ..extensions import db, services
from ..store.services import connect

bp = Blueprint("health", __name__)

CHECK_SECONDS = 0.8
# Shared by all requests: a check stuck on a paused Redis holds a thread for at most its 1 s timeout.
_checks = ThreadPoolExecutor(max_workers=8, thread_name_prefix="healthz")


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


def check_database(engine) -> str:
    """Return "ok", or the error that a ``SELECT 1`` raised (prompts and users live there)."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return "ok"
    except SQLAlchemyError as error:
        return f"down: {error.__class__.__name__}"


def live_workers(client) -> int | None:
    """RQ workers whose registration has not expired (RQ's set keeps dead ones until it cleans up); None if unknown."""
    try:
        names = client.smembers("rq:workers")
        with client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.exists(name)
            return sum(pipe.execute())
    except redis.RedisError:
        return None


@bp.get("/healthz")
def healthz():
    clients = {"sessions": services.session_redis, "jobs": services.jobs_redis, "socketio": _socketio_redis()}
    futures = {name: _checks.submit(check, client) for name, client in clients.items() if client is not None}
    database = _checks.submit(check_database, db.engine)
    workers = _checks.submit(live_workers, services.jobs_redis)
    wait([*futures.values(), database, workers], timeout=CHECK_SECONDS)

    def state(future) -> str:
        return future.result() if future.done() else f"down: no answer within {CHECK_SECONDS} s"

    states = {name: state(future) for name, future in futures.items()}
    database_state = state(database)
    healthy = database_state == "ok" and all(value == "ok" for value in states.values())
    return jsonify(
        status="ok" if healthy else "unavailable",
        redis=states,
        database=database_state,
        workers=workers.result() if workers.done() else None,
    ), 200 if healthy else 503
