"""``flask worker``: an RQ worker on the app's queue, with the app's config."""

import click
from flask.cli import with_appcontext

from ..extensions import services


@click.command("worker")
@click.option("--burst", is_flag=True, help="Exit once the queue is empty.")
@with_appcontext
def worker_command(burst: bool) -> None:
    """Run an RQ worker that writes replies (queue prompt_tracker, jobs Redis DB 0)."""
    from rq import Worker

    queue = services.queue
    click.echo(f"Worker on queue {queue.name!r} at {services.jobs_redis.connection_pool.connection_kwargs.get('host', '?')}")
    Worker([queue], connection=services.jobs_redis).work(burst=burst, with_scheduler=False)
