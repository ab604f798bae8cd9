"""``make run`` (scripts/dev_run.py): Redis if none answers, the worker and the web server; Ctrl-C stops all."""

import http.cookiejar
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import psutil
import pytest
import redis

from .conftest import CSRF_RE, ROOT
from .redis_server import RedisServer, free_port

pytestmark = pytest.mark.integration

STOP_WITHIN = 15  # seconds dev_run may take to stop everything
URL_DBS = {"SESSION_REDIS_URL": 2, "RQ_REDIS_URL": 0, "SOCKETIO_MESSAGE_QUEUE": 1}


def port_open(port: int) -> bool:
    """True if something accepts TCP connections on 127.0.0.1:``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def redis_answers(port: int) -> bool:
    """True if a Redis on 127.0.0.1:``port`` answers PING."""
    client = redis.Redis(port=port, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


class DevRun:
    """``python scripts/dev_run.py`` as a subprocess, with a browser-like client for its web server."""

    def __init__(self, redis_port: int | None, log_path, urls: dict | None = None, workers: int | None = None):
        self.redis_port = redis_port
        self.workers = workers  # WORKERS (dev_run's default if None): each one is a process to start
        self.urls = urls or {
            "SESSION_REDIS_URL": f"redis://127.0.0.1:{redis_port}/2",
            "RQ_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "SOCKETIO_MESSAGE_QUEUE": f"redis://127.0.0.1:{redis_port}/1",
        }
        self.web_port = free_port()
        self.log_path = log_path
        self.base = f"http://127.0.0.1:{self.web_port}"
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        self.process = None
        self.descendants = []

    def start(self) -> "DevRun":
        """Start dev_run with the three Redis URLs (on ``redis_port`` unless given) and PORT on a free port."""
        env = dict(os.environ)
        # Its workers import the SDKs when a job needs them, as the other tests' do (tests/conftest.py).
        env.update(PROMPT_TRACKER_ENV="development", PORT=str(self.web_port), PRELOAD_PROVIDER_SDKS="0", **self.urls)
        if self.workers is not None:
            env["WORKERS"] = str(self.workers)
        with open(self.log_path, "wb") as log:  # a file, not a pipe: a full pipe would block the children
            self.process = subprocess.Popen(
                [sys.executable, "scripts/dev_run.py"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def log(self) -> str:
        """Everything dev_run and its children printed so far."""
        return self.log_path.read_text(errors="replace")

    def get(self, path: str) -> tuple[int, str]:
        """GET ``path`` with the cookie jar; the status and the body."""
        with self.opener.open(self.base + path, timeout=10) as response:
            return response.status, response.read().decode()

    def post(self, path: str, fields: dict) -> int:
        """POST a form to ``path`` with the cookie jar (redirects followed); the final status."""
        data = urllib.parse.urlencode(fields).encode()
        with self.opener.open(self.base + path, data=data, timeout=10) as response:
            response.read()
            return response.status

    def wait_ready(self, timeout: float = 60) -> None:
        """Wait until /playground answers 200; then remember every descendant process of dev_run."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"dev_run exited early with {self.process.returncode}:\n{self.log()}")
            try:
                if self.get("/playground")[0] == 200:
                    break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"/playground did not answer within {timeout} s:\n{self.log()}")
            time.sleep(0.2)
        self.descendants = psutil.Process(self.process.pid).children(recursive=True)

    def wait_exit(self, timeout: float = STOP_WITHIN) -> int:
        """Wait for dev_run to exit; its exit code."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"dev_run still running {timeout} s after being asked to stop:\n{self.log()}")

    def cleanup(self) -> None:
        """Stop dev_run and anything it left behind, whatever happened in the test."""
        if self.process is None:
            return
        if self.process.poll() is None:
            try:
                self.descendants += psutil.Process(self.process.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                pass
            self.process.terminate()
            try:
                self.process.wait(STOP_WITHIN)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for child in self.descendants:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass


def running(processes) -> list:
    """The processes of ``processes`` still alive (zombies count as gone)."""
    alive = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
        except psutil.NoSuchProcess:
            pass
    return alive


@pytest.fixture
def dev_run(tmp_path, monkeypatch):
    """Factory: ``dev_run(redis_port[, urls])`` starts a DevRun; all of it is stopped after the test.

    Its database is a file of the test's (never the checkout's instance/prompt_tracker.sqlite3).
    """
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/dev.sqlite3")
    started = []

    def start(redis_port: int | None, urls: dict | None = None, workers: int | None = None) -> DevRun:
        run = DevRun(redis_port, tmp_path / f"dev_run-{len(started)}.log", urls, workers)
        started.append(run)
        return run.start()

    yield start
    for run in started:
        run.cleanup()
        for leftover in ROOT.glob(f"instance/redis/*-{run.redis_port}.*") if run.redis_port else ():  # embedded Redis
            leftover.unlink()


def test_starts_embedded_redis_worker_and_web_then_ctrl_c_stops_everything(dev_run):
    redis_port = free_port()
    assert not redis_answers(redis_port)
    run = dev_run(redis_port)
    run.wait_ready()
    assert "started an embedded redis-server" in run.log()
    # dev_run prints the URL once it sees the port open, which may be just after our first 200
    deadline = time.monotonic() + 10
    while f"http://127.0.0.1:{run.web_port}/" not in run.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert f"http://127.0.0.1:{run.web_port}/" in run.log()
    assert redis_answers(redis_port)
    assert any("redis-server" in child.name() for child in run.descendants)
    # Three workers (several replies at once), each registered with RQ.
    # (Each `flask worker` forks its resident child when it is ready: dev_run's own children are counted.)
    workers = [child for child in run.descendants if child.cmdline()[-1:] == ["worker"]]
    assert len([worker for worker in workers if worker.ppid() == run.process.pid]) == 3
    deadline = time.monotonic() + 60
    while json.loads(run.get("/healthz")[1])["workers"] != 3:
        assert time.monotonic() < deadline, run.log()
        time.sleep(0.2)

    # A real turn: the reply can only appear if the worker picked the job up.
    _, html = run.get("/playground")
    token = CSRF_RE.search(html).group(1)
    assert run.post("/playground/messages", {"content": "hello from make run", "csrf_token": token}) == 200
    deadline = time.monotonic() + 20
    while "You said: hello from make run" not in run.get("/playground")[1]:
        assert time.monotonic() < deadline, f"no reply from the worker:\n{run.log()}"
        time.sleep(0.2)

    run.process.send_signal(signal.SIGINT)
    assert run.wait_exit() == 0, run.log()
    assert running(run.descendants) == []
    assert not port_open(run.web_port)
    assert not redis_answers(redis_port)


def test_uses_the_redis_already_listening_migrates_and_prompts_survive_a_restart(dev_run):
    """Redis already running is used and left running; `flask db upgrade` runs first, once; prompts outlive a restart."""
    server = RedisServer().start()
    try:
        first = dev_run(server.port, workers=1)  # what is tested is Redis's and the database's fate, not the workers'
        first.wait_ready()
        assert f"using the server already running at 127.0.0.1:{server.port}" in first.log()
        assert not any("redis-server" in child.name() for child in first.descendants)
        token = CSRF_RE.search(first.get("/prompts")[1]).group(1)
        assert (
            first.post("/prompts", {"name": "Kept", "system_prompt": "Survives {{ restarts }}", "csrf_token": token})
            == 200
        )

        first.process.send_signal(signal.SIGTERM)
        assert first.wait_exit() == 0, first.log()
        assert running(first.descendants) == []
        assert server.process.poll() is None
        assert server.client(0).ping()

        second = dev_run(server.port, workers=1)
        second.wait_ready()
        status, html = second.get("/prompts/kept")
        assert status == 200 and "Survives {{ restarts }}" in html
        assert "Running upgrade" in first.log() and "Running upgrade" not in second.log()
    finally:
        server.stop()


def test_a_child_that_dies_stops_the_others_and_is_named(dev_run):
    redis_port = free_port()
    run = dev_run(redis_port, workers=2)  # the others: a worker, the web server and Redis
    run.wait_ready()
    worker = next(child for child in run.descendants if "worker" in child.cmdline())
    worker.kill()

    assert run.wait_exit() == 1
    assert re.search(r"the worker \d exited unexpectedly", run.log())
    assert running(run.descendants) == []
    assert not port_open(run.web_port)
    assert not redis_answers(redis_port)


def send_and_wait_for_reply(run: DevRun, text: str) -> None:
    """One turn through dev_run's web server; returns once the worker's reply is on the page."""
    _, html = run.get("/playground")
    token = CSRF_RE.search(html).group(1)
    assert run.post("/playground/messages", {"content": text, "csrf_token": token}) == 200
    deadline = time.monotonic() + 30
    while f"You said: {text}" not in run.get("/playground")[1]:
        assert time.monotonic() < deadline, f"no reply from the worker:\n{run.log()}"
        time.sleep(0.2)
