"""Benchmark the prompt library's pages on SQLite and on PostgreSQL with 10,000 prompts / 100,000 versions.

    .venv/bin/python bench/prompts.py [--prompts 10000] [--versions-per-prompt 10] [--requests 200]

Each database is a private one (a SQLite file in a temp dir; a PostgreSQL server started by
tests/postgres_server.py on a free port), migrated with Alembic (`flask db upgrade`), filled with
bulk inserts, then served in-process through Flask's test client (no network, no other load):
the list page (first page, a deep page, a search) and a prompt's playground, with the number of SQL
statements each costs. Results go to bench/prompts_results.json; see bench/README.md.
"""

import argparse
import json
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import quantiles

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flask_migrate import upgrade  # noqa: E402
from sqlalchemy import event, insert  # noqa: E402

from prompt_tracker import create_app  # noqa: E402
from prompt_tracker.extensions import db  # noqa: E402
from prompt_tracker.prompts.models import Prompt, PromptVersion  # noqa: E402
from tests.postgres_server import PostgresServer  # noqa: E402


def fill(app, prompts: int, versions_per_prompt: int) -> None:
    """Insert ``prompts`` prompts with ``versions_per_prompt`` versions each, in batches."""
    start = datetime(2026, 1, 1)
    with app.app_context():
        for first in range(0, prompts, 1000):
            batch = range(first, min(first + 1000, prompts))
            db.session.execute(
                insert(Prompt),
                [
                    {
                        "id": i + 1,
                        "slug": f"prompt-{i:05d}",
                        "name": f"Prompt {i:05d}",
                        "description": "",
                        "created_at": start,
                        "updated_at": start + timedelta(seconds=i),
                        "archived": i % 50 == 0,
                    }
                    for i in batch
                ],
            )
            db.session.execute(
                insert(PromptVersion),
                [
                    {
                        "prompt_id": i + 1,
                        "number": n,
                        "system_prompt": f"You are assistant {i}, revision {n}. " * 8,
                        "provider": "echo",
                        "model": "echo-1",
                        "params": {"temperature": 0.7, "max_tokens": 1024},
                        "variables": {},
                        "note": "",
                        "created_at": start,
                        "created_by": "bench",
                    }
                    for i in batch
                    for n in range(1, versions_per_prompt + 1)
                ],
            )
            db.session.commit()
        if db.engine.dialect.name == "postgresql":
            with db.engine.connect() as connection:  # fresh statistics, as autovacuum would have
                connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")


def measure(app, path: str, requests: int) -> dict:
    """p50/p95 of ``requests`` GETs of ``path`` (after 20 warm-up), and the SQL statements of one."""
    client = app.test_client()
    for _ in range(20):
        assert client.get(path).status_code == 200, path
    statements = []
    with app.app_context():
        engine = db.engine

    def count(*args):
        statements.append(args[2])

    event.listen(engine, "before_cursor_execute", count)
    client.get(path)
    event.remove(engine, "before_cursor_execute", count)
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        client.get(path)
        times.append((time.perf_counter() - started) * 1000)
    cuts = quantiles(times, n=100)
    return {"path": path, "p50_ms": round(cuts[49], 2), "p95_ms": round(cuts[94], 2), "statements": len(statements)}


def run_backend(name: str, url: str, args) -> dict:
    app = create_app("test", overrides={"SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
    started = time.perf_counter()
    fill(app, args.prompts, args.versions_per_prompt)
    filled = time.perf_counter() - started
    last, middle = args.prompts - 1, args.prompts // 2 + 1
    paths = [
        "/prompts",
        f"/prompts?page={max(1, args.prompts // 100)}",
        f"/prompts?q=prompt-{last // 10:04d}",
        f"/prompts?q=assistant%20{last},",
        f"/prompts/prompt-{middle:05d}/playground",
    ]
    results = [measure(app, path, args.requests) for path in paths]
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    return {"backend": name, "fill_seconds": round(filled, 1), "pages": results}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=10_000)
    parser.add_argument("--versions-per-prompt", type=int, default=10)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--output", default=str(ROOT / "bench" / "prompts_results.json"))
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory(prefix="pt-bench-sqlite-") as directory:
        runs.append(run_backend("sqlite", f"sqlite:///{directory}/bench.sqlite3", args))
    server = PostgresServer().start()
    try:
        runs.append(run_backend("postgresql", server.create_database(), args))
    finally:
        server.stop()
    print(
        f"{args.prompts:,} prompts, {args.prompts * args.versions_per_prompt:,} versions; in-process, {args.requests} requests each"
    )
    print(f"{'backend':<11} {'page':<36} {'p50 ms':>8} {'p95 ms':>8} {'SQL':>4}")
    for run in runs:
        for page in run["pages"]:
            print(
                f"{run['backend']:<11} {page['path']:<36} {page['p50_ms']:>8} {page['p95_ms']:>8} {page['statements']:>4}"
            )
    Path(args.output).write_text(
        json.dumps(
            {
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": platform.platform(),
                "prompts": args.prompts,
                "versions": args.prompts * args.versions_per_prompt,
                "runs": runs,
            },
            indent=2,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
