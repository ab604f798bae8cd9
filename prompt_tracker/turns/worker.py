"""The RQ worker class that writes replies: JSON jobs, provider SDKs imported before each fork.

Plain RQ forks a work-horse per job and the job then imports what it needs: the ``openai`` and
``anthropic`` SDKs took 0.4 s and 0.9 s, paid by every reply before the provider was called. This
class imports them (and builds the app) once, in the parent, so each horse starts with them loaded.
It also marks a reply failed the moment its horse dies (``job.work_horse_killed``).

Use it with ``flask worker`` or ``rq worker prompt_tracker --worker-class prompt_tracker.turns.worker.ReplyWorker
--serializer rq.serializers.JSONSerializer``.
"""

import importlib

from rq import Worker
from rq.serializers import JSONSerializer

from . import job

PRELOADED = ("openai", "anthropic", "prompt_tracker.turns.reply")


def preload() -> None:
    """Import the provider SDKs and the reply code, build the app and the SDK clients, in this (parent) process."""
    from ..providers import available_providers

    for module in PRELOADED:
        importlib.import_module(module)
    job.worker_app()
    for provider in available_providers():
        provider.warm()


class ReplyWorker(Worker):
    """An RQ worker with the SDKs preloaded, JSON serialization and failure reporting for dead horses."""

    def __init__(self, *args, **kwargs):
        preload()
        if kwargs.get("serializer") is None:
            kwargs["serializer"] = JSONSerializer
        kwargs.setdefault("work_horse_killed_handler", job.work_horse_killed)
        super().__init__(*args, **kwargs)
        # RQ survives a lost connection only around its wait for jobs: one elsewhere (the bookkeeping
        # after a job, a heartbeat) ends the worker. So its own connection waits for Redis to return.
        self.connection.set_retry(patient_retry())


def patient_retry():
    """Retry a command for about a minute while Redis restarts or fails over, with backoff up to 2 s."""
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError, TimeoutError
    from redis.retry import Retry

    return Retry(ExponentialBackoff(cap=2.0, base=0.05), 40, supported_errors=(ConnectionError, TimeoutError))
