"""``flask worker``: a supervised resident RQ worker on the app's queue, with the app's config."""

import click
from flask import current_app
from flask.cli import with_appcontext

from ..extensions import services
from .eval_runs import eval_queue
from .worker import supervise


@click.command("worker")
@click.option("--burst", is_flag=True, help="Exit once the queue is empty.")
@with_appcontext
def worker_command(burst: bool) -> None:
    """Run an RQ worker that writes replies, then test-run results (queues prompt_tracker, prompt_tracker_evals)."""
    queue, evals = services.queue, eval_queue()
    click.echo(
        f"Worker on queues {queue.name!r} then {evals.name!r} at "
        f"{services.jobs_redis.connection_pool.connection_kwargs.get('host', '?')}"
    )
    # WORKER_TTL (20 s): RQ then blocks on the queue for 5 s at a time (ttl - 15), so after a Sentinel
    # failover the next wait goes to the new master within seconds instead of RQ's default 405 s, and
    # it heartbeats that often (/healthz counts a worker live while its heartbeat is that recent).
    supervise(queue, worker_ttl=current_app.config["WORKER_TTL"], burst=burst, later_queues=(evals,))
