"""Test runs: a run of 200 cases × 3 repetitions on the offline ``echo`` model with three `flask worker`
processes (as ``make run`` starts them), and the render time of a run page of 1,000 results.

1. **Throughput**: a private ``redis-server`` on a free port, a SQLite file in a temporary directory, three
   real workers; the run is started in this process (``start_run``) and timed until it is finished.
   Reports results per second, and where the workers' time went: each job's time in RQ (from its
   ``started_at`` to ``ended_at``) against the time in the case's calls (``latency_ms``: the gate's
   admission and the provider's stream; on ``echo`` that is nearly all the gate). The rest (claim,
   rendering, checks, the writes, the event, dispatching the next) is the share outside the provider.
2. **Run page**: in-process on the test config, 250 cases × 4 repetitions of stored results (outputs of
   about 60 words rendered to HTML, two checks each), ``GET /prompts/<slug>/runs/<id>`` timed
   (median of ``--requests`` after one warm-up). Target: ≤ 300 ms.

    .venv/bin/python bench/eval_run.py [--cases 200] [--repeat 3] [--workers 3] [--page-results 1000] [--postgres]
"""

import argparse
import hashlib
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from prompt_tracker import create_app  # noqa: E402
from prompt_tracker.domain.rendering import render_reply  # noqa: E402
from prompt_tracker.evals.models import EvalResult, EvalRun, TestCase  # noqa: E402
from prompt_tracker.extensions import db  # noqa: E402
from prompt_tracker.prompts.library import create_prompt  # noqa: E402
from prompt_tracker.replies import eval_runs  # noqa: E402
from tests.processes import kill, spawn_worker, wait_for  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402


def add_cases(prompt, count: int) -> None:
    """``count`` cases of one user message each, with a check that passes on echo's reply."""
    for number in range(count):
        body = {
            "variables": {},
            "messages": [{"role": "user", "content": f"Question number {number}: what is {number} plus one?"}],
            "expected": None,
            "checks": [{"type": "contains", "value": "Question number"}],
        }
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        db.session.add(TestCase(prompt_id=prompt.id, name=f"case {number:04d}", tags=[], content_hash=digest, **body))
    db.session.commit()


def throughput(cases: int, repeat: int, workers: int, postgres: bool = False) -> dict:
    """Run ``cases`` × ``repeat`` on ``workers`` real workers (SQLite, or a private PostgreSQL); return the measurements."""
    server = RedisServer().start()
    directory = tempfile.mkdtemp(prefix="eval-bench-")
    database = None
    if postgres:
        from tests.postgres_server import PostgresServer

        database = PostgresServer().start()
    env = dict(os.environ)
    env.update(
        PROMPT_TRACKER_ENV="development",
        SESSION_REDIS_URL=server.url(2),
        RQ_REDIS_URL=server.url(0),
        SOCKETIO_MESSAGE_QUEUE=server.url(1),
        DATABASE_URL=database.create_database() if database else f"sqlite:///{directory}/bench.sqlite3",
        PYTHONPATH=str(ROOT),
        FLASK_DEBUG="0",
    )
    os.environ.update(env)
    app = create_app("development", overrides={"DEBUG": False})
    processes = []
    try:
        with app.app_context():
            db.create_all()
            prompt = create_prompt("Bench", "Answer briefly.", slug="bench", author="bench")
            add_cases(prompt, cases)
        for number in range(workers):
            processes.append(spawn_worker(env, Path(directory) / f"worker-{number}.log"))
        wait_for(lambda: server.client(0).scard("rq:workers") >= workers, timeout=120)
        with app.app_context():
            prompt = db.session.scalars(db.select(type(prompt)).where(type(prompt).slug == "bench")).one()
            started = time.perf_counter()
            run = eval_runs.start_run(prompt, repeat=repeat, owner="bench", created_by="bench")
            run_id = run.id

            def finished():
                db.session.expire_all()
                status = db.session.get(EvalRun, run_id).status
                db.session.commit()
                return status == "finished"

            wait_for(finished, timeout=600, interval=0.02)
            elapsed = time.perf_counter() - started
            results = db.session.scalars(db.select(EvalResult).where(EvalResult.run_id == run_id)).all()
            statuses = {result.status for result in results}
            in_calls = sum(result.latency_ms or 0 for result in results) / 1000
        jobs = 0.0
        redis = server.client(0)
        for key in redis.scan_iter("rq:job:eval-*"):
            begun, ended = redis.hmget(key, "started_at", "ended_at")
            if begun and ended:
                from datetime import datetime

                jobs += (
                    datetime.fromisoformat(ended.decode()) - datetime.fromisoformat(begun.decode())
                ).total_seconds()
        return {
            "results": len(results),
            "statuses": sorted(statuses),
            "seconds": elapsed,
            "per_second": len(results) / elapsed,
            "job_seconds": jobs,
            "call_seconds": in_calls,
            "outside_calls_share": 1 - in_calls / jobs if jobs else None,
            "busy_share": jobs / (elapsed * workers),
        }
    finally:
        for process in processes:
            kill(process)
        server.stop()
        if database:
            database.stop()


def run_page(results: int, requests: int) -> dict:
    """Median render time of a run page of ``results`` stored results (test config, in-process)."""
    random.seed(1)
    words = "the model answers a question about prompts tokens latency cost and the reply streams".split()
    app = create_app("test")
    with app.app_context():
        db.create_all()
        prompt = create_prompt("Page", "x", slug="page", author="bench")
        repeat = 4
        cases = results // repeat
        add_cases(prompt, cases)
        version = prompt.versions[0]
        run = EvalRun(prompt_id=prompt.id, version_id=version.id, version_number=1, repeat=repeat, status="finished")
        db.session.add(run)
        db.session.flush()
        case_rows = db.session.scalars(db.select(TestCase).where(TestCase.prompt_id == prompt.id)).all()
        for case in case_rows:
            for repetition in range(1, repeat + 1):
                text = " ".join(random.choice(words) for _ in range(60))
                ok = random.random() < 0.8
                db.session.add(
                    EvalResult(
                        run_id=run.id,
                        case_id=case.id,
                        case_name=case.name,
                        case_hash=case.content_hash,
                        repetition=repetition,
                        status="passed" if ok else "failed",
                        output=text,
                        output_html=render_reply(text),
                        usage={"input_tokens": 40, "output_tokens": 60},
                        latency_ms=random.randint(200, 2000),
                        cost_usd=0.0001,
                        check_results=[
                            {"type": "contains", "passed": ok, "reason": "found" if ok else 'missing "refund"'},
                            {"type": "max_latency_ms", "passed": True, "reason": "took 812 ms, limit 3,000 ms"},
                        ],
                        passed=ok,
                    )
                )
        db.session.commit()
        run_id = run.id
    client = app.test_client()
    url = f"/prompts/page/runs/{run_id}"
    response = client.get(url)
    assert response.status_code == 200 and response.get_data(as_text=True).count('class="result result-') == results
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        client.get(url)
        times.append(time.perf_counter() - started)
    return {"results": results, "median_ms": statistics.median(times) * 1000, "max_ms": max(times) * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--page-results", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=5)
    parser.add_argument("--skip-run", action="store_true", help="Only the run page.")
    parser.add_argument("--postgres", action="store_true", help="The run on a private PostgreSQL, not SQLite.")
    args = parser.parse_args()
    page = run_page(args.page_results, args.requests)
    print(
        f"run page, {page['results']:,} results: median {page['median_ms']:.0f} ms, slowest {page['max_ms']:.0f} ms "
        f"(target ≤ 300 ms)"
    )
    if args.skip_run:
        return
    measured = throughput(args.cases, args.repeat, args.workers, args.postgres)
    print(
        f"run of {args.cases} cases × {args.repeat} on echo, {args.workers} workers, "
        f"{'PostgreSQL' if args.postgres else 'SQLite'}: {measured['results']} results "
        f"({', '.join(measured['statuses'])}) in {measured['seconds']:.1f} s = {measured['per_second']:.1f} results/s"
    )
    print(
        f"workers busy {measured['busy_share']:.0%} of the time; of their job time ({measured['job_seconds']:.1f} s), "
        f"{measured['call_seconds']:.1f} s in the cases' calls (gate + provider), "
        f"{measured['outside_calls_share']:.0%} outside them (claim, render, checks, writes, events, dispatch)"
    )


if __name__ == "__main__":
    main()
