"""Page time of ours vs the stock Flask-Session app, both rendering our page template, in-process.

A complement to run.py's throughput under gunicorn, which the shared 2 cores make noisy: here the
two apps' page views are interleaved in one process (Flask's test client, one private redis-server),
so drift in the machine's load hits both alike. Prints the median of ``--requests`` views per size
and the ratio (> 1: ours is faster), then how each app's page time grows from 1,000 messages to the
largest size (ours reads the same window at any size: about 1×).

    .venv/bin/python bench/same_template.py [--sizes 10,200,1000,10000] [--requests 40]
"""

import argparse
import logging
import sys
import time
from pathlib import Path
from statistics import median

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent), str(BENCH)]

from subjects import SUBJECTS, new_session  # noqa: E402

from tests.redis_server import RedisServer  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=lambda text: [int(n) for n in text.split(",")], default=[10, 200, 1000, 10000])
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args(argv)
    server = RedisServer().start()
    try:
        apps = {subject.name: subject.build(server) for subject in SUBJECTS}
        logging.getLogger("prompt_tracker").setLevel(logging.WARNING)  # its request log is not the subject
        print(f"page view, median ms of {args.requests} (in-process, interleaved)")
        print(f"{'messages':>9}  {'ours':>8}  {'stock':>8}  ours faster by")
        medians = {}
        for size in args.sizes:
            sessions = {subject.name: (subject, new_session(subject, apps[subject.name], size)) for subject in SUBJECTS}
            times = {name: [] for name in sessions}
            for _ in range(args.requests + 3):
                for name, (subject, seeded) in sessions.items():
                    started = time.perf_counter()
                    assert seeded.client.get(subject.page_path).status_code == 200
                    times[name].append((time.perf_counter() - started) * 1000)
            ours, stock = medians[size] = [median(times[name][3:]) for name in ("ours", "stock")]
            print(f"{size:>9,}  {ours:8.2f}  {stock:8.2f}  {stock / ours:.2f}×")
        largest = max(args.sizes)
        if 1000 in medians and largest > 1000:
            (ours_1k, stock_1k), (ours_n, stock_n) = medians[1000], medians[largest]
            print(
                f"a page at {largest:,} messages / a page at 1,000: "
                f"ours {ours_n / ours_1k:.2f}×, stock {stock_n / stock_1k:.2f}×"
            )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
