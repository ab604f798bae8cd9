"""Time to first token added by the app: POST a message → the first ``message.delta`` at a socket client.

    .venv/bin/python bench/first_token.py [--turns 30] [--rounds 3] [--plain]

Against a local OpenAI-compatible server that answers at once (the tests' fake server, no delay, in
a process of its own),
so what is measured is the app: the send (append, ticket and job), the worker picking the job up,
calling the provider through the ``openai`` SDK, the first flush (partial APPEND + publish) and the
Socket.IO fan-out through Redis to the web process and the client. Beside it, the same server
called directly with the SDK (the floor), and the same app with RQ's forking worker
(``ReplyWorker``: a work-horse forked per reply, SDKs imported before the fork: what ``flask worker``
ran before the resident worker). ``--plain`` adds a plain ``rq worker`` whose work-horse imports
the SDK for each job (slow: 2 s a reply). Each round runs every case once, in turn, so a busy
machine weighs on all of them alike; the ratio to the direct call of the same round is the fairest
figure.

Everything runs on this machine: a private redis-server, `flask run`, one worker, the official
python-socketio client (websocket transport, through websocket-client).
"""

import argparse
import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.parse
from contextlib import contextmanager
from pathlib import Path
from statistics import median, quantiles

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(ROOT)]

from tests.processes import stop, wait_for, web_process  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402

COOKIE = "_prompt_tracker_session"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
WORKERS = {
    "flask worker (resident worker, no fork per reply)": lambda env: [
        sys.executable,
        "-m",
        "flask",
        "--app",
        "wsgi",
        "worker",
    ],
    "rq worker --worker-class ReplyWorker (a work-horse forked per reply, SDKs preloaded)": lambda env: [
        str(Path(sys.executable).with_name("rq")),
        "worker",
        "prompt_tracker",
        "--url",
        env["RQ_REDIS_URL"],
        "--serializer",
        "rq.serializers.JSONSerializer",
        "--worker-class",
        "prompt_tracker.rq_worker.ReplyWorker",
    ],
}
PLAIN = {
    "plain rq worker (the work-horse imports the SDK per job)": lambda env: [
        str(Path(sys.executable).with_name("rq")),
        "worker",
        "prompt_tracker",
        "--url",
        env["RQ_REDIS_URL"],
        "--serializer",
        "rq.serializers.JSONSerializer",
    ],
}
DIRECT = "direct SDK call (floor)"


@contextmanager
def fake_openai_process(reply: str):
    """The tests' fake OpenAI server, in a process of its own; yields its base URL.

    Not in this process: here the socket client's threads would hold the interpreter lock while
    the server should answer the worker, and the app would pay for the bench's own work.
    """
    serve = (
        "import sys\n"
        "from tests.fake_llm_servers import FakeOpenAI\n"
        "fake = FakeOpenAI().start()\n"
        "fake.script.reply = sys.argv[1]\n"
        "print(fake.base_url, flush=True)\n"
        "sys.stdin.read()\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", serve, reply], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        yield process.stdout.readline().strip()
    finally:
        process.stdin.close()  # the server exits at the end of its input
        process.wait(10)


def percentiles(samples: list[float]) -> dict:
    """p50 / p95 / max in milliseconds."""
    cuts = quantiles(samples, n=20)
    return {
        "p50_ms": round(median(samples) * 1000, 1),
        "p95_ms": round(cuts[18] * 1000, 1),
        "max_ms": round(max(samples) * 1000, 1),
        "n": len(samples),
    }


def direct_sdk(base_url: str, turns: int) -> list[float]:
    """Seconds from the SDK call to its first content delta, straight to the server."""
    import openai

    client = openai.OpenAI(api_key="sk-bench", base_url=base_url, max_retries=0)
    samples = []
    for _ in range(turns):
        started = time.perf_counter()
        with client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
        ) as chunks:
            for chunk in chunks:
                if chunk.choices and chunk.choices[0].delta.content:
                    samples.append(time.perf_counter() - started)
                    break
    return samples


class Tab:
    """One browser tab: the session cookie and CSRF token from the page, a python-socketio client."""

    def __init__(self, url: str):
        import socketio

        parts = urllib.parse.urlsplit(url)
        self.host, self.port = parts.hostname, parts.port
        answer, headers = self.request("GET", "/playground")
        self.cookie = re.search(rf"{COOKIE}=([^;]+)", headers["Set-Cookie"]).group(1)
        self.token = CSRF.search(answer).group(1)
        self.first_delta: dict[str, float] = {}
        self.done: set[str] = set()
        self.arrived = threading.Condition()
        self.socket = socketio.Client()
        self.socket.on("message.delta", self._delta)
        self.socket.on("message.done", self._done)
        self.socket.connect(url, headers={"Cookie": f"{COOKIE}={self.cookie}"}, transports=["websocket"])

    def _delta(self, payload):
        with self.arrived:
            self.first_delta.setdefault(payload["message_id"], time.perf_counter())
            self.arrived.notify_all()

    def _done(self, payload):
        with self.arrived:
            self.done.add(payload["message_id"])
            self.arrived.notify_all()

    def request(self, method, path, fields=None, headers=None):
        connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        body = urllib.parse.urlencode(fields).encode() if fields else None
        headers = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
        if getattr(self, "cookie", None):
            headers["Cookie"] = f"{COOKIE}={self.cookie}"
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.read().decode(), response.headers

    def settings(self, **fields):
        self.request(
            "POST",
            "/playground/settings",
            {"csrf_token": self.token, "system_prompt": "", "temperature": "0.7", "max_tokens": "64", **fields},
        )

    def turn(self, text: str) -> float:
        """Seconds from the POST to the first delta of its reply at this tab's socket."""
        started = time.perf_counter()
        body, _ = self.request(
            "POST", "/playground/messages", {"content": text, "csrf_token": self.token}, {"Accept": "application/json"}
        )
        message_id = json.loads(body)["id"]
        with self.arrived:
            if not self.arrived.wait_for(lambda: message_id in self.first_delta, timeout=30):
                raise RuntimeError(f"no delta for {message_id}")
            # Like a person, send the next message once this reply is complete (the worker is free).
            if not self.arrived.wait_for(lambda: message_id in self.done, timeout=30):
                raise RuntimeError(f"{message_id} never finished")
        time.sleep(0.05)  # and the worker is back waiting for jobs
        return self.first_delta[message_id] - started

    def close(self):
        self.socket.disconnect()


def worker_side(server: RedisServer) -> float:
    """Median ``first_token_ms`` the worker recorded: from its claim of the reply to the first delta."""
    from prompt_tracker.domain.messages import decode_message

    client = server.client(2)
    key = next(key for key in client.scan_iter() if b":conversation:" in key)
    replies = [decode_message(raw) for raw in client.lrange(key, 0, -1)][3::2]  # after the warm-up turn
    problems = [(reply.status, reply.error) for reply in replies if reply.status != "done"]
    if problems:
        raise RuntimeError(f"replies that did not finish: {problems}")
    return median(reply.first_token_ms for reply in replies)


def through_the_app(
    server: RedisServer, env: dict, worker_command: list, turns: int, log_dir: Path, web: str = "flask"
):
    """Send ``turns`` messages one after the other; the time to each reply's first delta, and the worker's part."""
    for db in (0, 1, 2):
        server.client(db).flushdb()
    with web_process(env, log_dir / "web.log", kind=web) as url:
        worker = subprocess.Popen(
            worker_command, cwd=ROOT, env=env, stdout=open(log_dir / "worker.log", "wb"), stderr=subprocess.STDOUT
        )
        try:
            tab = Tab(url)
            tab.settings(provider="openai", model="gpt-4o-mini")
            wait_for(lambda: server.client(0).scard("rq:workers") > 0, timeout=60)
            tab.turn("warm-up")  # the first job pays for connections being opened
            samples = [tab.turn(f"turn {number}") for number in range(turns)]
            tab.close()
            return samples, worker_side(server)
        finally:
            stop(worker)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=30, help="timed turns per case and round")
    parser.add_argument("--rounds", type=int, default=3, help="times every case runs, in turn")
    parser.add_argument("--plain", action="store_true", help="also a plain rq worker (2 s a reply)")
    parser.add_argument(
        "--web",
        choices=("flask", "production"),
        default="flask",
        help="the web process: `flask run` (threads) or the Procfile's gunicorn with its gevent worker",
    )
    args = parser.parse_args()
    workers = {**WORKERS, **(PLAIN if args.plain else {})}
    server = RedisServer().start()
    log_dir = Path(os.environ.get("BENCH_LOGS") or "/tmp") / f"first-token-{os.getpid()}"
    log_dir.mkdir(parents=True, exist_ok=True)
    samples: dict[str, list[float]] = {DIRECT: [], **{f"app, {name}": [] for name in workers}}
    rounds: list[dict[str, float]] = []
    in_worker: dict[str, list[float]] = {}
    try:
        with fake_openai_process("Hello from a server that answers at once.") as base_url:
            env = {
                **os.environ,
                "PROMPT_TRACKER_ENV": "development",
                "FLASK_DEBUG": "0",
                "RATE_LIMIT_SENDS": "1000000/minute",  # 30 turns in a row, faster than a person may
                "PYTHONPATH": str(ROOT),
                "SESSION_REDIS_URL": server.url(2),
                "RQ_REDIS_URL": server.url(0),
                "SOCKETIO_MESSAGE_QUEUE": server.url(1),
                "OPENAI_API_KEY": "sk-bench",
                "OPENAI_BASE_URL": base_url,
            }
            for _ in range(args.rounds):
                this_round = {}
                direct = direct_sdk(base_url, args.turns)
                samples[DIRECT] += direct
                this_round[DIRECT] = median(direct) * 1000
                for name, command in workers.items():
                    taken, claim_to_delta = through_the_app(server, env, command(env), args.turns, log_dir, args.web)
                    samples[f"app, {name}"] += taken
                    this_round[f"app, {name}"] = median(taken) * 1000
                    in_worker.setdefault(f"app, {name}", []).append(claim_to_delta)
                rounds.append(this_round)
    finally:
        server.stop()
    results = {name: percentiles(taken) for name, taken in samples.items()}
    for name, figures in results.items():
        figures["round_p50_ms"] = [round(r[name], 1) for r in rounds]
        if name != DIRECT:
            figures["added_p50_ms"] = [round(r[name] - r[DIRECT], 1) for r in rounds]
            figures["claim_to_first_delta_p50_ms"] = in_worker[name]
    print(
        f"Time to first token, POST → first message.delta at a python-socketio client "
        f"({args.rounds} rounds × {args.turns} turns per case):"
    )
    for name, figures in results.items():
        added = "" if name == DIRECT else f"; app adds per round (p50 − direct p50) {figures['added_p50_ms']} ms"
        print(
            f"  {name}: p50 {figures['p50_ms']} ms, p95 {figures['p95_ms']} ms, max {figures['max_ms']} ms; "
            f"p50 per round {figures['round_p50_ms']} ms{added}"
        )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
