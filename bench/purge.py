"""Purge speed: seed many sessions straight into Redis, then delete them all three ways.

1. ``flask sessions purge --yes``, invoked in-process through the app's CLI runner;
2. the same work through ``session_admin``'s plain functions, timed per phase (plan = SCAN and
   measure every key; execute = UNLINK), to show where the time goes;
3. the floor: a raw loop of SCAN (COUNT 1000) and one UNLINK per batch.

Each deletes the same freshly seeded data (a blob and one small conversation list per session)
and must leave no session key behind.
"""

import secrets
import time
from dataclasses import asdict, dataclass

import msgspec
import redis
from flask import Flask

from prompt_tracker.domain.keys import conversation_key, session_key
from prompt_tracker.domain.messages import encode_message, user_message
from prompt_tracker.domain.settings import STANDALONE
from prompt_tracker.store import admin as session_admin

SEED_BATCH = 1000  # sessions per pipeline
SCAN_COUNT = 1000


@dataclass
class PurgeTiming:
    """How long one way of purging took for the seeded keys."""

    method: str
    keys: int
    seconds: float
    detail: str = ""

    @property
    def keys_per_second(self) -> float:
        """Deleted keys per second."""
        return self.keys / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict:
        """Plain data for results.json."""
        return {**asdict(self), "seconds": round(self.seconds, 3), "keys_per_second": round(self.keys_per_second)}


def seed_sessions(client: redis.Redis, prefix: str, count: int, ttl: int) -> int:
    """Write ``count`` sessions (blob + a one-message conversation list each), pipelined; return the keys written."""
    blob = msgspec.msgpack.encode({"_permanent": True, "csrf_token": "0" * 40, "conversations": {STANDALONE: 1}})
    record = encode_message(user_message("hello"))
    for first in range(0, count, SEED_BATCH):
        with client.pipeline(transaction=False) as pipe:
            for _ in range(min(SEED_BATCH, count - first)):
                sid = secrets.token_urlsafe(32)
                pipe.set(session_key(prefix, sid), blob, ex=ttl)
                pipe.rpush(conversation_key(prefix, sid, STANDALONE), record)
                pipe.expire(conversation_key(prefix, sid, STANDALONE), ttl)
            pipe.execute()
    return 2 * count


def purge_with_cli(app: Flask) -> tuple[float, str]:
    """Run ``flask sessions purge --yes`` through the app's CLI runner; return its seconds and summary line."""
    started = time.perf_counter()
    result = app.test_cli_runner().invoke(args=["sessions", "purge", "--yes"])
    seconds = time.perf_counter() - started
    if result.exit_code != 0:
        raise RuntimeError(f"flask sessions purge failed ({result.exit_code}): {result.output}{result.exception!r}")
    return seconds, result.output.strip().splitlines()[-1]


def purge_with_functions(app: Flask) -> tuple[float, str]:
    """Run ``session_admin.plan_purge`` then ``execute_purge`` (what the command calls); time each phase."""
    with app.app_context():
        keyspace = session_admin.open_keyspace()
        started = time.perf_counter()
        plan = session_admin.plan_purge(keyspace)
        planned = time.perf_counter()
        session_admin.execute_purge(keyspace, plan)
        finished = time.perf_counter()
    return (
        finished - started,
        f"plan (SCAN + measure each key) {planned - started:.2f} s, execute (UNLINK) {finished - planned:.2f} s",
    )


def purge_raw(client: redis.Redis, prefix: str) -> tuple[float, str]:
    """The floor: SCAN MATCH prefix* COUNT 1000 and one UNLINK per non-empty batch; return seconds and round trips."""
    cursor = round_trips = 0
    started = time.perf_counter()
    while True:
        cursor, keys = client.scan(cursor, match=prefix + "*", count=SCAN_COUNT)
        round_trips += 1
        if keys:
            client.unlink(*keys)
            round_trips += 1
        if cursor == 0:
            break
    return time.perf_counter() - started, f"{round_trips} round trips"


def run(app: Flask, client: redis.Redis, sessions: int) -> list[PurgeTiming]:
    """Seed ``sessions`` sessions before each way of purging, time it, check that no key is left."""
    prefix = app.config["SESSION_KEY_PREFIX"]
    ttl = int(app.permanent_session_lifetime.total_seconds())
    methods = [
        ("flask sessions purge --yes", lambda: purge_with_cli(app)),
        ("session_admin plan_purge + execute_purge", lambda: purge_with_functions(app)),
        ("raw SCAN COUNT 1000 + UNLINK", lambda: purge_raw(client, prefix)),
    ]
    timings = []
    for method, purge in methods:
        client.flushdb()
        seeded = seed_sessions(client, prefix, sessions, ttl)
        seconds, detail = purge()
        left = sum(1 for _ in client.scan_iter(match=prefix + "*", count=SCAN_COUNT))
        if left:
            raise RuntimeError(f"{method} left {left} of {seeded} keys behind")
        timings.append(PurgeTiming(method, seeded, seconds, detail))
    return timings
