"""A process that imports the app's libraries once and forks each `python -m flask ...` a test process starts.

A run starts about eighty `flask worker` and `flask run` processes; each spent 1.3 s of CPU importing
the same modules before doing anything (a fifth of the run's CPU). Forked from here, a process starts
with them imported, as gunicorn's ``preload_app`` or RQ's work horse do, then runs the real command:
the `flask` CLI with its arguments, in its own environment, from the checkout, its output to a file.
Nothing here imports ``wsgi`` or creates an app: that happens in the child, from its environment.

Protocol (one JSON object a line): a request ``{"args", "env", "cwd", "log"}`` (and optionally ``"err"``:
stderr's own file, ``"stdin"``: a file to read) on stdin is answered
``{"pid": N}`` on stdout; when a child exits, ``{"exit": N, "code": C}`` (C as subprocess's returncode:
negative for a signal). End of stdin (the test process is gone): every child still running is killed.
Driven by ``tests.processes.Zygote``.
"""

import json
import os
import select
import signal
import sys
import threading
import traceback


def preload() -> None:
    """Import what every `flask --app wsgi ...` process imports (not ``wsgi``: it builds the app)."""
    import flask.cli  # noqa: F401
    import flask_migrate  # noqa: F401  (the `flask db` plugin the CLI loads)

    import prompt_tracker  # noqa: F401
    import prompt_tracker.replies.worker_cli  # noqa: F401


def run_child(request: dict, inherited: list[int]) -> None:
    """In the fork: become the requested command and exit with its status (never returns)."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for fd in inherited:
            os.close(fd)
        written = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        log = os.open(request["log"], written, 0o644)
        err = os.open(request["err"], written, 0o644) if request.get("err") else os.dup(log)
        given = os.open(request.get("stdin") or os.devnull, os.O_RDONLY)
        for fd, target in ((given, 0), (log, 1), (err, 2)):
            os.dup2(fd, target)
            os.close(fd)
        sys.stdin = open(0, closefd=False)  # noqa: SIM115
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = ["flask", *request["args"]]
        import runpy

        runpy.run_module("flask", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exit_:
        if exit_.code is None or isinstance(exit_.code, int):
            code = exit_.code or 0
        else:
            print(exit_.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001 - exiting anyway
                pass
        os._exit(code)


def main() -> None:
    preload()
    assert threading.active_count() == 1, "a process with threads must not fork"
    woken, wake = os.pipe()
    os.set_blocking(woken, False)
    os.set_blocking(wake, False)
    signal.set_wakeup_fd(wake)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # only to wake select (through the wakeup fd)
    requests = sys.stdin.fileno()  # read unbuffered: select sees what is not read yet
    pending = b""
    answers = sys.stdout
    children: set[int] = set()

    def answer(message: dict) -> None:
        answers.write(json.dumps(message) + "\n")
        answers.flush()

    def reap() -> None:
        while children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                return
            children.discard(pid)
            answer({"exit": pid, "code": os.waitstatus_to_exitcode(status)})

    while True:
        try:
            readable, _, _ = select.select([requests, woken], [], [])
        except InterruptedError:
            continue
        if woken in readable:
            while True:
                try:
                    if not os.read(woken, 512):
                        break
                except BlockingIOError:
                    break
            reap()
        if requests in readable:
            chunk = os.read(requests, 65536)
            if not chunk:  # the test process is gone: so is everything it started
                for pid in children:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                return
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                pid = os.fork()
                if pid == 0:
                    run_child(json.loads(line), [woken, wake])
                children.add(pid)
                answer({"pid": pid})


if __name__ == "__main__":
    main()
