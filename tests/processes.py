"""The real processes integration tests run: web servers and workers, started and always stopped."""

import contextlib
import json
import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import psutil

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


def kill(process: subprocess.Popen) -> None:
    """Kill a process and every process under it at once: no warm shutdown to wait out.

    For a `flask worker` that matters: SIGTERM lets its resident child finish the reply it is writing.
    The process is stopped (SIGSTOP) first, so that it forks no new child while its children die.
    """
    if process.poll() is None:
        with contextlib.suppress(psutil.NoSuchProcess):
            parent = psutil.Process(process.pid)
            parent.suspend()
            for child in parent.children(recursive=True):
                with contextlib.suppress(psutil.NoSuchProcess):
                    child.kill()
            parent.kill()
    process.wait(10)


def spawn(command: list[str], env: dict, log_path) -> "subprocess.Popen | Forked":
    """Start ``command`` in the checkout with ``env``, its output going to ``log_path``.

    A `python -m flask ...` is forked from this test process's zygote (``tests/zygote.py``: the app's
    libraries imported once), anything else is executed.
    """
    flask = [sys.executable, "-m", "flask"]
    if command[:3] == flask:
        return Zygote.of_this_process().fork(command[3:], env, log_path)
    with open(log_path, "wb") as log:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


class Zygote:
    """This test process's ``tests/zygote.py``: it forks the `flask` processes the tests start."""

    _current: "Zygote | None" = None

    @classmethod
    def of_this_process(cls) -> "Zygote":
        if cls._current is None or cls._current.process.poll() is not None:
            cls._current = cls()
        return cls._current

    def __init__(self):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.zygote"], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        self.lock = threading.Lock()
        self.exited: dict[int, int] = {}
        self.changed = threading.Condition()
        self.started: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, name="zygote", daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            message = json.loads(line)
            if "exit" in message:
                with self.changed:
                    self.exited[message["exit"]] = message["code"]
                    self.changed.notify_all()
            else:  # a new child: an exit recorded under its pid was an earlier process's
                with self.changed:
                    self.exited.pop(message["pid"], None)
                self.started.put(message["pid"])
        self.started.put(None)  # the zygote is gone

    def fork(self, args: list[str], env: dict, log_path, err_path=None, stdin_path=None) -> "Forked":
        """``python -m flask *args`` in ``env``, output to ``log_path`` (stderr to ``err_path`` if given)."""
        request = {"args": args, "env": dict(env), "cwd": str(ROOT), "log": str(log_path)}
        request.update(err=str(err_path or ""), stdin=str(stdin_path or ""))
        with self.lock:
            self.process.stdin.write(json.dumps(request).encode() + b"\n")
            self.process.stdin.flush()
            pid = self.started.get(timeout=30)
        if pid is None:
            raise RuntimeError("the zygote process exited")
        return Forked(self, pid, [sys.executable, "-m", "flask", *args])

    def wait(self, pid: int, timeout: float | None) -> int | None:
        """The exit code of child ``pid`` once it exits; None if it is still running after ``timeout`` s."""
        with self.changed:
            self.changed.wait_for(lambda: pid in self.exited, timeout)
            return self.exited.get(pid)


def run_flask(
    args: list[str], env: dict, timeout: float = 120, input: str | None = None
) -> subprocess.CompletedProcess:
    """``python -m flask *args`` to its end, as ``subprocess.run(..., capture_output=True, text=True)``
    would run it, forked from the zygote."""
    with tempfile.TemporaryDirectory() as directory:
        files = {name: Path(directory) / name for name in ("out", "err", "in")}
        files["in"].write_text(input or "")
        process = Zygote.of_this_process().fork(args, env, files["out"], files["err"], files["in"])
        try:
            code = process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
            raise
        out, err = (files[name].read_text(errors="replace") for name in ("out", "err"))
    return subprocess.CompletedProcess(process.args, code, out, err)


class Forked:
    """A process forked by the zygote, used as a ``subprocess.Popen`` is (the zygote reaps it)."""

    def __init__(self, zygote: Zygote, pid: int, args: list[str]):
        self.zygote, self.pid, self.args = zygote, pid, args
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self.zygote.wait(self.pid, 0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            self.returncode = self.zygote.wait(self.pid, timeout)
        if self.returncode is None:
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:  # never a pid the zygote has reaped (it may be another process's now)
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


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
        kill(process)


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


def start_web(env: dict, log_path, kind: str = "flask", port: int | None = None) -> tuple[subprocess.Popen, str]:
    """Start a web process (``flask run``, threaded; or ``production``: the Procfile's) on ``port`` or a free
    one and wait until it answers; return it and its URL."""
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
    except BaseException:
        kill(process)
        raise
    return process, url


@contextmanager
def web_process(env: dict, log_path, kind: str = "flask", port: int | None = None):
    """A web process (see ``start_web``) for the block; yields its URL."""
    process, url = start_web(env, log_path, kind, port)
    try:
        yield url
    finally:
        kill(process)


# --- processes shared by the tests of a run ----------------------------------------------------


def env_key(env: dict) -> tuple:
    """What tells two environments apart (pytest's own per-test variable left out)."""
    return tuple(sorted((name, value) for name, value in env.items() if name != "PYTEST_CURRENT_TEST"))


class WebPool:
    """Web servers shared by the tests of a run, one per environment.

    Starting one costs seconds; between requests it holds nothing of a test (sessions, jobs and
    events live in Redis, which each test empties first), so every test of that environment uses it.
    """

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.running: dict[tuple, tuple[subprocess.Popen, str]] = {}

    def url(self, env: dict, kind: str = "flask") -> str:
        """The URL of the running web server for ``env``, started on first use."""
        key = (kind, env_key(env))
        process, url = self.running.get(key, (None, None))
        if process is None or process.poll() is not None:
            log_path = self.log_dir / f"web-{len(self.running)}.log"
            process, url = start_web(dict(key[1]), log_path, kind)
            self.running[key] = (process, url)
        return url

    def close(self) -> None:
        for process, _ in self.running.values():
            kill(process)
        self.running.clear()


class WorkerPool:
    """`flask worker` processes shared by the tests of a run, kept per environment.

    Starting one costs seconds (imports, the app, the SDK clients); the resident child it forks costs
    milliseconds. So when a test ends its workers are parked: the supervisor stopped (SIGSTOP), its child
    killed. Nothing of the test lives on (a reply half written, connections, RQ's state in the child), and
    a parked worker takes no job of a later test that did not ask for one. Taken again, the supervisor
    continues, finds its child dead (unknown to Redis, emptied since) and forks a fresh one, which
    registers as a new worker does.
    """

    def __init__(self, limit: int = 8):
        self.limit = limit  # parked supervisors kept (about 150 MB each); the oldest go first
        self.parked: list[tuple[tuple, subprocess.Popen]] = []

    def take(self, env: dict, log_path) -> subprocess.Popen:
        """A parked worker of ``env``, continued, or a new one (its output to ``log_path``)."""
        key = env_key(env)
        for index, (parked_key, process) in enumerate(self.parked):
            if parked_key == key and process.poll() is None:
                del self.parked[index]
                psutil.Process(process.pid).resume()
                break
        else:
            process = spawn_worker(dict(key), log_path)
        process.pool_key = key
        return process

    def park(self, process: subprocess.Popen) -> None:
        """Stop ``process`` and kill its child, to be taken again; kill it if it is not a plain idle worker."""
        if process.poll() is not None:
            return
        supervisor = psutil.Process(process.pid)
        supervisor.suspend()
        children = supervisor.children(recursive=True)
        if len(children) != 1:  # stopping (a test's SIGTERM) or between two children: not worth keeping
            kill(process)
            return
        children[0].kill()
        # Dead (a zombie its stopped parent has not reaped): it writes nothing more to Redis.
        wait_for(lambda: _gone(children[0]), timeout=10, interval=0.01)
        self.parked.append((process.pool_key, process))
        while len(self.parked) > self.limit:
            kill(self.parked.pop(0)[1])

    def close(self) -> None:
        for _, process in self.parked:
            kill(process)
        self.parked.clear()


def _gone(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
