"""The real processes integration tests run: web servers and workers, started and always stopped."""

import os
import re
import shlex
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from .redis_server import free_port

ROOT = Path(__file__).resolve().parent.parent


def wait_for(predicate, timeout=15.0, interval=0.05):
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def stop(process: subprocess.Popen) -> None:
    """Terminate a process, and kill it if it does not exit within 10 s."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def spawn(command: list[str], env: dict, log_path) -> subprocess.Popen:
    """Start ``command`` in the checkout with ``env``, its output going to ``log_path``."""
    with open(log_path, "wb") as log:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def spawn_worker(env: dict, log_path) -> subprocess.Popen:
    """A real `flask worker` process with ``env``."""
    return spawn([sys.executable, "-m", "flask", "--app", "wsgi", "worker"], env, log_path)


@contextmanager
def worker_process(env: dict, log_path):
    """A real `flask worker`, stopped when the block ends."""
    process = spawn_worker(env, log_path)
    try:
        yield process
    finally:
        stop(process)


# What a Procfile's shell expands: $NAME, ${NAME} and ${NAME:-default}.
SHELL_VARIABLE = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}|\$(\w+)")


def procfile_command(name: str, port: int, env: dict | None = None) -> list[str]:
    """The Procfile's command of process ``name``, on ``port``, its variables read from ``env`` (default:
    this process's environment) as honcho's shell would, run with this venv's Python."""
    env = {**(os.environ if env is None else env), "PORT": str(port)}
    lines = (ROOT / "Procfile").read_text().splitlines()
    line = next(line for line in lines if line.startswith(f"{name}:"))

    def value(match: re.Match) -> str:
        return env.get(match[1] or match[3]) or match[2] or ""

    program, *args = shlex.split(SHELL_VARIABLE.sub(value, line.split(":", 1)[1]))
    return [sys.executable, "-m", program, *args]


@contextmanager
def web_process(env: dict, log_path, kind: str = "flask", port: int | None = None):
    """A web process (``flask run``, threaded; or ``production``: the Procfile's) on ``port`` or a free one; yields its URL."""
    port = port or free_port()
    if kind == "flask":
        command = [
            sys.executable,
            "-m",
            "flask",
            "--app",
            "wsgi",
            "run",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-reload",
        ]
    else:
        command = procfile_command("web", port, env)
    process = spawn(command, env, log_path)
    url = f"http://127.0.0.1:{port}"

    def up():
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    try:
        wait_for(up, timeout=20, interval=0.1)
        yield url
    finally:
        stop(process)
