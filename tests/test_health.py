"""``/healthz``: live workers only, and what is down named, with the status that pages have."""

from datetime import UTC, datetime, timedelta

import pytest
from rq import Worker
from rq.serializers import JSONSerializer
from rq.utils import utcformat

from prompt_tracker import create_app
from prompt_tracker.extensions import services

from .redis_server import free_port


def register_worker(app, name: str, heartbeat_age: float, key_ttl: int) -> None:
    """An RQ worker as RQ registers it, whose last heartbeat is ``heartbeat_age`` seconds old."""
    with app.app_context():
        worker = Worker(["prompt_tracker"], connection=services.jobs_redis, name=name, serializer=JSONSerializer)
        worker.register_birth()
        beat = datetime.now(UTC) - timedelta(seconds=heartbeat_age)
        services.jobs_redis.hset(worker.key, "last_heartbeat", utcformat(beat))
        services.jobs_redis.expire(worker.key, key_ttl)


def test_healthz_counts_only_workers_whose_heartbeat_is_recent(app):
    """A worker killed with SIGKILL mid-reply stays in RQ's registry until its key's TTL (the job's
    timeout + 60 s): it is not counted once its heartbeat is older than the worker TTL."""
    register_worker(app, "alive", heartbeat_age=2, key_ttl=80)
    register_worker(app, "killed", heartbeat_age=60, key_ttl=360)
    health = app.test_client().get("/healthz")
    assert health.status_code == 200
    assert health.get_json()["workers"] == 1


def unreachable_database() -> str:
    return f"postgresql://nobody@127.0.0.1:{free_port()}/none"  # nothing listens there


def test_healthz_with_only_the_database_down_answers_as_the_pages_do_without_sign_in():
    """AUTH_MODE=none: the playground works without the database (only prompt pages are 503), so
    /healthz stays 200, says "degraded" and names the database."""
    app = create_app("test", overrides={"SQLALCHEMY_DATABASE_URI": unreachable_database()})
    health = app.test_client().get("/healthz")
    assert health.status_code == 200
    body = health.get_json()
    assert (body["status"], body["down"], body["database"]) == ("degraded", ["database"], "down: OperationalError")


@pytest.mark.parametrize("mode", ["accounts", "header"])
def test_healthz_with_the_database_down_is_503_when_every_page_needs_it(mode):
    """With sign-in, every page loads its user from the database: down, they are 503 and so is /healthz."""
    overrides = {"SQLALCHEMY_DATABASE_URI": unreachable_database(), "AUTH_MODE": mode}
    if mode == "header":
        overrides["TRUSTED_PROXIES"] = ["10.0.0.0/8"]
    health = create_app("test", overrides=overrides).test_client().get("/healthz")
    assert health.status_code == 503
    assert (health.get_json()["status"], health.get_json()["down"]) == ("unavailable", ["database"])
