"""Benchmark Prompt Tracker's sessions against stock Flask-Session 0.8, in one run on one private Redis.

    .venv/bin/python bench/run.py [--sessions 100000] [--duration 3] [--output bench/results.json]

Measures, for both apps (see ``subjects``), and prints as tables with the ratio:
1. page throughput and latency under gunicorn (-w 2 --threads 8), load from a separate process;
2. Redis commands and bytes per request (page view, static file, 404, send), in-process;
3. the time of one send (POST) at small and large conversation sizes, under gunicorn;
4. purge speed of ``flask sessions purge`` against a raw SCAN + UNLINK loop (ours only).
See bench/README.md for what each number means.
"""

import argparse
import http.client
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from statistics import mean
from urllib.parse import urlencode

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(ROOT), str(BENCH)]

import load  # noqa: E402
import purge  # noqa: E402
import redis_traffic  # noqa: E402
from subjects import OURS, SUBJECTS, SeededSession, Subject, new_session, server_env, shown_count  # noqa: E402

from tests.redis_server import RedisServer, free_port  # noqa: E402

GUNICORN = [str(Path(sys.executable).parent / "gunicorn"), "-w", "2", "--threads", "8"]
SEND_CONTENT = "a new message " * 143  # about 2 KB, like the seeded ones
SEND_WARMUP = 4  # untimed sends before each size's timed ones
HOST = "127.0.0.1"


# --- 1. throughput under gunicorn -------------------------------------------------------------


@contextmanager
def gunicorn(subject: Subject, server: RedisServer, log_dir: Path) -> Iterator[int]:
    """Run ``subject`` under gunicorn on a free loopback port until the block ends; yield the port."""
    port = free_port()
    log_path = log_dir / f"gunicorn-{subject.name}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [*GUNICORN, "-b", f"{HOST}:{port}", subject.gunicorn_target],
            cwd=ROOT,
            env=server_env(server),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_serving(port, subject.static_path, process, log_path)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until_serving(port: int, path: str, process: subprocess.Popen, log_path: Path, timeout: float = 30) -> None:
    """Poll ``path`` until it answers 200; fail with the server's log if it dies or takes too long."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}; see {log_path}")
        try:
            if http_get(port, path)[0] == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"gunicorn did not answer on port {port} within {timeout:.0f} s; see {log_path}")


def http_get(port: int, path: str, cookie: str | None = None) -> tuple[int, bytes]:
    """One GET on a fresh connection."""
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        return load.request(connection, "GET", path, {"Cookie": cookie} if cookie else {})
    finally:
        connection.close()


def check_served(subject: Subject, port: int, seeded: SeededSession, expected: int) -> None:
    """Make sure the server reads the seeded session from the private Redis: its page shows ``expected`` messages."""
    status, body = http_get(port, subject.page_path, seeded.cookie_header)
    shown = shown_count(body.decode())
    if status != 200 or shown != expected:
        raise RuntimeError(
            f"{subject.name}: the served page shows {shown} messages (status {status}), "
            f"expected {expected}: is the server on the private Redis?"
        )


def run_load_process(port: int, path: str, cookie: str, options) -> dict:
    """Run bench/load.py in its own process against ``path``; return its JSON summary."""
    output = subprocess.run(
        [
            sys.executable,
            str(BENCH / "load.py"),
            "--port",
            str(port),
            "--path",
            path,
            "--cookie",
            cookie,
            "--connections",
            str(options.connections),
            "--duration",
            str(options.duration),
            "--warmup",
            str(options.warmup),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=options.duration + options.warmup + 60,
    ).stdout
    return json.loads(output)


def throughput_cases(sizes: list[int]) -> list[tuple[str, str, int]]:
    """(label, what is requested, conversation size): the page at each size, then the static file."""
    cases = [(f"page, {size:,} messages", "page", size) for size in sizes]
    return cases + [(f"static file, session of {max(sizes):,}", "static", max(sizes))]


def measure_throughput(subject: Subject, app, port: int, options) -> dict[str, dict]:
    """Load each case for ``options.duration`` seconds; return the load summaries by label."""
    results = {}
    for label, kind, size in throughput_cases(options.sizes):
        seeded = new_session(subject, app, size)
        check_served(subject, port, seeded, size)
        path = subject.page_path if kind == "page" else subject.static_path
        results[label] = run_load_process(port, path, seeded.cookie_header, options)
        summary = results[label]
        print(
            f"  {subject.name:5}  {label:34} {summary['rps']:8.1f} req/s  p50 {summary['p50_ms']:7.1f} ms  "
            f"p95 {summary['p95_ms']:7.1f} ms  errors {summary['errors']}",
            flush=True,
        )
    return results


# --- 3. time of one send under gunicorn ---------------------------------------------------------


def time_one_send(subject: Subject, app, port: int, size: int) -> float:
    """Seed a session of ``size`` messages, POST one message to the server, return the seconds the POST took."""
    seeded = new_session(subject, app, size)
    body = urlencode({"content": SEND_CONTENT, "csrf_token": seeded.csrf_token})
    headers = {"Cookie": seeded.cookie_header, "Content-Type": "application/x-www-form-urlencoded"}
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        connection.connect()
        started = time.perf_counter()
        status, _ = load.request(connection, "POST", subject.send_path, headers, body)
        seconds = time.perf_counter() - started
    finally:
        connection.close()
    if status != 303:
        raise RuntimeError(f"{subject.name}: POST {subject.send_path} answered {status}")
    check_served(subject, port, seeded, size + 2)  # the message and its pending reply were stored
    return seconds


def measure_sends(subject: Subject, app, port: int, options) -> dict[int, dict]:
    """Time ``options.send_samples`` sends (each to a fresh session) at each size in ``options.send_sizes``."""
    results = {}
    for size in options.send_sizes:
        for _ in range(SEND_WARMUP):  # untimed: let both workers do their first send (imports, script load)
            time_one_send(subject, app, port, size)
        times = [time_one_send(subject, app, port, size) for _ in range(options.send_samples)]
        results[size] = {
            "samples": len(times),
            "mean_ms": round(mean(times) * 1000, 2),
            "p50_ms": round(load.percentile(times, 0.5) * 1000, 2),
            "p95_ms": round(load.percentile(times, 0.95) * 1000, 2),
        }
        print(
            f"  {subject.name:5}  send at {size:,} messages: mean {results[size]['mean_ms']:.1f} ms, "
            f"p50 {results[size]['p50_ms']:.1f} ms",
            flush=True,
        )
    return results


# --- 2. Redis traffic per request, in-process ----------------------------------------------------


def traffic_cases(small: int, large: int) -> list[tuple[str, str, int]]:
    """(label, what is requested, conversation size) for the per-request Redis cost table.

    The sends of one case all go to one session, so its conversation grows by two messages a send.
    """
    return [
        (f"page view, {small:,} messages", "page", small),
        (f"page view, {large:,} messages", "page", large),
        (f"static file, session of {large:,}", "static", large),
        (f"404, session of {large:,}", "missing", large),
        (f"send, from {small:,} messages", "send", small),
        (f"send, from {large:,} messages", "send", large),
    ]


def request_action(subject: Subject, seeded: SeededSession, kind: str) -> Callable[[], None]:
    """A function that makes one request of ``kind`` with the seeded session's client, checking its status."""
    client = seeded.client
    if kind == "send":
        form = {"content": SEND_CONTENT, "csrf_token": seeded.csrf_token}
        return lambda: expect(client.post(subject.send_path, data=form), 303)
    path = {"page": subject.page_path, "static": subject.static_path, "missing": subject.missing_path}[kind]
    status = 404 if kind == "missing" else 200
    return lambda: expect(client.get(path), status)


def expect(response, status: int) -> None:
    """Close the response; fail if its status is not ``status``."""
    response.close()
    if response.status_code != status:
        raise RuntimeError(
            f"{response.request.method} {response.request.path} answered {response.status_code}, expected {status}"
        )


def measure_traffic(apps: dict, server: RedisServer, options) -> list[dict]:
    """Per case and app: Redis commands, bytes written and bytes read per request."""
    admin = server.client(0)
    rows = []
    for label, kind, size in traffic_cases(min(options.sizes), max(options.sizes)):
        row = {"case": label}
        for subject in SUBJECTS:
            seeded = new_session(subject, apps[subject.name], size)
            action = request_action(subject, seeded, kind)
            action()  # warm-up: first-request work (template compile, script load) is not the steady cost
            traffic = redis_traffic.measure(admin, action, options.requests)
            row[subject.name] = {
                "commands": traffic.commands,
                "commands_per_request": traffic.total_commands,
                "bytes_written": round(traffic.bytes_in),
                "bytes_read": round(traffic.bytes_out),
                "described": traffic.describe_commands(),
            }
        rows.append(row)
        print(f"  {label:34} ours: {row['ours']['described']}  |  stock: {row['stock']['described']}", flush=True)
    return rows


# --- report -----------------------------------------------------------------------------------


def format_table(headers: list[str], rows: list[list[str]], text: frozenset[int] = frozenset({0})) -> str:
    """A plain-text table: columns whose index is in ``text`` left-aligned, the others (numbers) right-aligned."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]

    def line(cells):
        return "  ".join(
            str(cell).ljust(width) if index in text else str(cell).rjust(width)
            for index, (cell, width) in enumerate(zip(cells, widths))
        ).rstrip()

    return "\n".join([line(headers), line(["-" * width for width in widths]), *map(line, rows)])


def quotient(numerator: float, denominator: float) -> float | None:
    """``numerator / denominator`` rounded to 2 decimals; None when the denominator is 0."""
    return round(numerator / denominator, 2) if denominator else None


def times(value: float | None) -> str:
    """A ratio as ``12.3×`` (``0.53×`` below 1); ``—`` for none."""
    if value is None:
        return "—"
    return f"{value:.2f}×" if value < 1 else f"{value:,.1f}×"


def add_ratios(results: dict) -> None:
    """Put each table's ratio into its rows: >1 always means ours does better (faster, or writes less)."""
    for row in results["throughput"]:
        row["ours_over_stock_rps"] = quotient(row["ours"]["rps"], row["stock"]["rps"])
    for row in results["redis_per_request"]:
        row["stock_over_ours_bytes_written"] = quotient(row["stock"]["bytes_written"], row["ours"]["bytes_written"])
    for row in results["send"]:
        row["stock_over_ours_time"] = quotient(row["stock"]["mean_ms"], row["ours"]["mean_ms"])
    floor = results["purge"]["methods"][-1]["keys_per_second"]
    for method in results["purge"]["methods"]:
        method["vs_raw"] = quotient(method["keys_per_second"], floor)


def throughput_table(results: dict) -> str:
    """Table 1: page and static-file throughput and latency, ours vs stock."""
    meta = results["meta"]
    rows = [
        [
            row["case"],
            f"{row['ours']['rps']:,.1f}",
            f"{row['stock']['rps']:,.1f}",
            times(row["ours_over_stock_rps"]),
            f"{row['ours']['p50_ms']:.1f}",
            f"{row['stock']['p50_ms']:.1f}",
            f"{row['ours']['p95_ms']:.1f}",
            f"{row['stock']['p95_ms']:.1f}",
        ]
        for row in results["throughput"]
    ]
    return (
        f"1. Throughput under gunicorn {meta['gunicorn']} ({meta['connections']} keep-alive connections, "
        f"{meta['duration']} s per case)\n"
        + format_table(
            [
                "case",
                "ours req/s",
                "stock req/s",
                "ours/stock",
                "ours p50 ms",
                "stock p50 ms",
                "ours p95 ms",
                "stock p95 ms",
            ],
            rows,
        )
    )


def traffic_table(results: dict) -> str:
    """Table 2: Redis commands and bytes per request, one line per app."""
    rows = []
    for row in results["redis_per_request"]:
        for name, case, ratio in (
            ("ours", row["case"], ""),
            ("stock", "", times(row["stock_over_ours_bytes_written"])),
        ):
            cost = row[name]
            rows.append([case, name, cost["described"], f"{cost['bytes_written']:,}", f"{cost['bytes_read']:,}", ratio])
    return (
        f"2. Redis per request ({results['meta']['requests']} requests each, one client with a cookie, in-process)\n"
        + format_table(
            ["case", "app", "commands per request", "bytes written", "bytes read", "written stock/ours"],
            rows,
            text=frozenset({0, 1, 2}),
        )
    )


def send_table(results: dict) -> str:
    """Table 3: time of one POST at each conversation size."""
    rows = [
        [
            f"{row['messages']:,} messages",
            f"{row['ours']['mean_ms']:.1f}",
            f"{row['stock']['mean_ms']:.1f}",
            times(row["stock_over_ours_time"]),
            f"{row['ours']['p50_ms']:.1f}",
            f"{row['stock']['p50_ms']:.1f}",
        ]
        for row in results["send"]
    ]
    return "3. Time of one send (POST, 303) under gunicorn, each to a fresh session\n" + format_table(
        ["conversation", "ours mean ms", "stock mean ms", "stock/ours", "ours p50 ms", "stock p50 ms"], rows
    )


def purge_table(results: dict) -> str:
    """Table 4: purge speed of the CLI, its plain functions and the raw loop."""
    purged = results["purge"]
    rows = [
        [
            t["method"],
            f"{t['keys']:,}",
            f"{t['seconds']:.2f}",
            f"{t['keys_per_second']:,}",
            times(t["vs_raw"]),
            t["detail"],
        ]
        for t in purged["methods"]
    ]
    return f"4. Purge of {purged['sessions']:,} sessions (ours; blob + one list each)\n" + format_table(
        ["method", "keys", "seconds", "keys/s", "vs raw", "detail"], rows, text=frozenset({0, 5})
    )


def report(results: dict) -> str:
    """All four tables as text."""
    return "\n\n".join(table(results) for table in (throughput_table, traffic_table, send_table, purge_table))


# --- the run ------------------------------------------------------------------------------------


def parse_options(argv=None):
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100_000, help="sessions seeded for the purge (default 100000)")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds of load per throughput case")
    parser.add_argument("--warmup", type=float, default=0.5, help="seconds of unmeasured load before each case")
    parser.add_argument("--connections", type=int, default=8, help="concurrent keep-alive connections")
    parser.add_argument(
        "--sizes",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[10, 200, 1000, 10_000],
        help="conversation sizes for the page (default 10,200,1000,10000)",
    )
    parser.add_argument("--send-sizes", type=lambda text: [int(n) for n in text.split(",")], default=[10, 1000])
    parser.add_argument("--send-samples", type=int, default=20, help="timed sends per size")
    parser.add_argument("--requests", type=int, default=50, help="requests per Redis-traffic case")
    parser.add_argument("--output", type=Path, default=BENCH / "results.json")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    """Start a private Redis, measure everything, print the tables, write the JSON."""
    options = parse_options(argv)
    started = time.monotonic()
    server = RedisServer().start()
    log_dir = Path(tempfile.mkdtemp(prefix="pt-bench-"))
    try:
        apps = {subject.name: subject.build(server) for subject in SUBJECTS}
        print(f"Private redis-server on port {server.port}; server logs in {log_dir}", flush=True)
        print("2. Redis traffic per request", flush=True)
        traffic = measure_traffic(apps, server, options)
        throughput, sends = {}, {}
        for subject in SUBJECTS:
            print(f"1 + 3. {subject.description} under gunicorn", flush=True)
            with gunicorn(subject, server, log_dir) as port:
                throughput[subject.name] = measure_throughput(subject, apps[subject.name], port, options)
                sends[subject.name] = measure_sends(subject, apps[subject.name], port, options)
        print(f"4. Purge of {options.sessions:,} sessions", flush=True)
        purges = purge.run(apps[OURS.name], server.client(2), options.sessions)
        redis_version = server.client(0).info("server")["redis_version"]
    finally:
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)
    shutil.rmtree(log_dir)  # kept only when something failed, for its gunicorn logs
    results = {
        "meta": {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "python": platform.python_version(),
            "redis": redis_version,
            "cpus": os.cpu_count(),
            "duration": options.duration,
            "connections": options.connections,
            "requests": options.requests,
            "gunicorn": " ".join(GUNICORN[1:]),
            "seconds": round(time.monotonic() - started, 1),
        },
        "throughput": [
            {"case": label, "messages": size, **{name: throughput[name][label] for name in throughput}}
            for label, _, size in throughput_cases(options.sizes)
        ],
        "redis_per_request": traffic,
        "send": [{"messages": size, **{name: sends[name][size] for name in sends}} for size in options.send_sizes],
        "purge": {"sessions": options.sessions, "methods": [timing.as_dict() for timing in purges]},
    }
    add_ratios(results)
    print("\n" + report(results) + f"\n\nTotal {results['meta']['seconds']} s; results in {options.output}")
    options.output.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
