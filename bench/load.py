"""A small HTTP load generator: threads, each with one keep-alive connection, for a fixed duration.

Run as a script (a separate process from the server and from ``run.py``) it prints one JSON object:
``{"requests", "errors", "seconds", "rps", "p50_ms", "p95_ms", "statuses"}``. Pure Python, so it
needs nothing installed. ``run.py`` also imports ``request`` and ``percentile`` from here.

    python bench/load.py --port 8000 --path /playground --cookie name=value --duration 3
"""

import argparse
import http.client
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field


def request(
    connection: http.client.HTTPConnection, method: str, path: str, headers: dict, body: bytes | None = None
) -> tuple[int, bytes]:
    """Send one request on a keep-alive connection and read the whole answer; return (status, body)."""
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    return response.status, response.read()


def percentile(values: list[float], fraction: float) -> float:
    """The value below which ``fraction`` of ``values`` lie (nearest rank); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


@dataclass
class Tally:
    """What the threads measured: latencies of successful requests, and every status seen."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, status: int, seconds: float) -> None:
        """Record one request."""
        with self.lock:
            self.statuses[status] += 1
            if status == 200:
                self.latencies.append(seconds)


def hammer(host: str, port: int, path: str, headers: dict, until: float, tally: Tally) -> None:
    """Request ``path`` again and again on one connection until the clock passes ``until``."""
    connection = http.client.HTTPConnection(host, port, timeout=30)
    try:
        while time.monotonic() < until:
            started = time.perf_counter()
            try:
                status, _ = request(connection, "GET", path, headers)
            except (OSError, http.client.HTTPException):
                status = 0  # connection refused, reset or timed out: count it and reconnect
                connection.close()
            tally.add(status, time.perf_counter() - started)
    finally:
        connection.close()


def run_load(host: str, port: int, path: str, headers: dict, connections: int, seconds: float) -> Tally:
    """Run ``connections`` threads against ``path`` for ``seconds``; return what they measured."""
    tally = Tally()
    until = time.monotonic() + seconds
    threads = [
        threading.Thread(target=hammer, args=(host, port, path, headers, until, tally)) for _ in range(connections)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return tally


def summary(tally: Tally, seconds: float) -> dict:
    """The JSON the script prints: throughput of successful requests and their latency percentiles."""
    ok = len(tally.latencies)
    return {
        "requests": ok,
        "errors": sum(tally.statuses.values()) - ok,
        "seconds": seconds,
        "rps": round(ok / seconds, 1),
        "p50_ms": round(percentile(tally.latencies, 0.50) * 1000, 2),
        "p95_ms": round(percentile(tally.latencies, 0.95) * 1000, 2),
        "statuses": {str(status): count for status, count in sorted(tally.statuses.items())},
    }


def main() -> None:
    """Parse the options, warm up, measure, print the summary as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--cookie", help="name=value sent with every request")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds measured")
    parser.add_argument("--warmup", type=float, default=0.5, help="seconds run first, not measured")
    options = parser.parse_args()
    headers = {"Cookie": options.cookie} if options.cookie else {}
    if options.warmup > 0:
        run_load(options.host, options.port, options.path, headers, options.connections, options.warmup)
    tally = run_load(options.host, options.port, options.path, headers, options.connections, options.duration)
    print(json.dumps(summary(tally, options.duration)))


if __name__ == "__main__":
    main()
