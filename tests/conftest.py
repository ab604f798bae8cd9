"""Fixtures: the app on the test config, a client that knows the page's forms, and real services."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from prompt_tracker import create_app
from prompt_tracker.playground_settings import STANDALONE

from .redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
COOKIE = "_prompt_tracker_session"


@pytest.fixture
def app():
    """The app on the test config: cachelib sessions, fakeredis, jobs run inline."""
    return create_app("test")


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


class Playground:
    """Actions a person takes on the playground page, through the test client."""

    def __init__(self, client):
        self.client = client

    def page(self, **query):
        return self.client.get("/playground", query_string=query)

    def token(self) -> str:
        return CSRF_RE.search(self.page().get_data(as_text=True)).group(1)

    def send(self, content, **kwargs):
        return self.client.post("/playground/messages", data={"content": content, "csrf_token": self.token()}, **kwargs)

    def save_settings(self, **fields):
        data = {"system_prompt": "", "provider": "echo", "model": "echo-1", "temperature": "0.7", "max_tokens": "1024"}
        data.update({key: str(value) for key, value in fields.items()})
        return self.client.post("/playground/settings", data={**data, "csrf_token": self.token()})

    def reset(self):
        return self.client.post("/playground/reset", data={"csrf_token": self.token()})

    def retry(self, message_id):
        return self.client.post(f"/playground/messages/{message_id}/retry", data={"csrf_token": self.token()})

    def sid(self) -> str:
        cookie = self.client.get_cookie(COOKIE)
        return cookie.value if cookie else None

    def messages(self, app):
        with app.app_context():
            from prompt_tracker.extensions import services

            return services.store.all(self.sid(), STANDALONE)


@pytest.fixture
def playground(client):
    return Playground(client)


# --- integration: a real redis-server and real workers --------------------------------------


@pytest.fixture(scope="session")
def redis_server():
    """A private redis-server for the whole run, on a free port."""
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def real_redis(redis_server):
    """The private server, emptied before each test."""
    for db in (0, 1, 2):
        redis_server.client(db).flushdb()
    return redis_server


def service_env(server: RedisServer) -> dict:
    """Environment that points the app (and its worker) at ``server``'s DB 0/1/2."""
    env = dict(os.environ)
    env.update(
        PROMPT_TRACKER_ENV="development",
        SESSION_REDIS_URL=server.url(2),
        RQ_REDIS_URL=server.url(0),
        SOCKETIO_MESSAGE_QUEUE=server.url(1),
        PYTHONPATH=str(ROOT),
    )
    return env


@pytest.fixture
def live_app(real_redis, monkeypatch):
    """The development app on the private Redis (jobs queued for a real worker)."""
    for key, value in service_env(real_redis).items():
        monkeypatch.setenv(key, value)
    return create_app("development", overrides={"DEBUG": False})


@pytest.fixture
def live_client(live_app):
    return live_app.test_client()


@pytest.fixture
def live_playground(live_client):
    return Playground(live_client)


@pytest.fixture
def start_worker(real_redis, tmp_path):
    """Start real ``flask worker`` processes on the private Redis; all stopped after the test."""
    processes = []

    def start(extra_env=None):
        env = service_env(real_redis)
        env.update(extra_env or {})
        with open(tmp_path / f"worker-{len(processes)}.log", "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "flask", "--app", "wsgi", "worker"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            )
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


def wait_for(predicate, timeout=15.0, interval=0.05):
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")
