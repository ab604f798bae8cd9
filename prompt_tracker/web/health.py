"""``/healthz``: each Redis use's state, the database's and the live RQ workers, within about a second whatever hangs.

``down`` names what is down; 503 when pages cannot be served: a Redis use down, or the database
when pages need it for their user (with sign-in). The database alone down without sign-in is
``degraded`` and 200, as the playground keeps working then (only the prompt pages are 503).

The checks run in parallel threads and the answer waits at most ``CHECK_SECONDS`` for them: a
stopped or paused Redis is reported as down instead of holding the load balancer's request.
"""

from concurrent.futures import ThreadPoolExecutor, wait
from datetime import UTC, datetime, timedelta

import redis
from flask import Blueprint, current_app, jsonify
from rq.utils import utcparse
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


def live_workers(client, within_seconds: float) -> int | None:
    """RQ workers whose last heartbeat is at most ``within_seconds`` old; None if unknown.

    Not whether their registration exists: RQ keeps a worker's key until its TTL runs out, which for
    one killed mid-reply is the job's timeout + 60 s (minutes of a dead worker counted as live).
    """
    try:
        names = client.smembers("rq:workers")
        with client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hget(name, "last_heartbeat")
            beats = pipe.execute()
    except redis.RedisError:
        return None
    oldest = datetime.now(UTC) - timedelta(seconds=within_seconds)
    return sum(1 for beat in beats if beat and _as_utc(utcparse(beat.decode())) >= oldest)


def _as_utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@bp.get("/healthz")
def healthz():
    clients = {"sessions": services.session_redis, "jobs": services.jobs_redis, "socketio": _socketio_redis()}
    futures = {name: _checks.submit(check, client) for name, client in clients.items() if client is not None}
    database = _checks.submit(check_database, db.engine)
    workers = _checks.submit(live_workers, services.jobs_redis, current_app.config["WORKER_TTL"])
    wait([*futures.values(), database, workers], timeout=CHECK_SECONDS)

    def state(future) -> str:
        return future.result() if future.done() else f"down: no answer within {CHECK_SECONDS} s"

    states = {name: state(future) for name, future in futures.items()}
    database_state = state(database)
    down = [name for name, value in states.items() if value != "ok"]
    if database_state != "ok":
        down.append("database")
    # As the pages answer: without sign-in only the prompt pages need the database (the playground
    # works), so its outage alone is "degraded", 200; with sign-in every page loads its user there.
    serving = not down or (down == ["database"] and current_app.config["AUTH_MODE"] == "none")
    return jsonify(
        status="ok" if not down else "degraded" if serving else "unavailable",
        down=down,
        redis=states,
        database=database_state,
        workers=workers.result() if workers.done() else None,
    ), 200 if serving else 503
