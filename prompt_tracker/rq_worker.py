"""RQ's own command for this app: ``rq worker --worker-class prompt_tracker.rq_worker.ReplyWorker prompt_tracker
prompt_tracker_evals`` (the replies' queue first, then the test runs': RQ takes from the first that has a job).

This is an entry point, as ``wsgi.py`` is gunicorn's: it builds the app (once per process) and keeps
its context pushed, so every work-horse RQ forks runs its job in that app. ``flask worker``
(``replies.worker.supervise``, no fork per reply) is the worker ``make run`` and the Procfile use.
"""

from rq import Worker

from . import create_app
from .replies import job
from .replies.worker import configure, patient_retry, patient_sessions


class ReplyWorker(Worker):
    """RQ's forking worker with the SDKs preloaded, JSON serialization and failure reporting for dead horses."""

    def __init__(self, *args, **kwargs):
        create_app().app_context().push()  # for the life of the process: each forked horse inherits it
        kwargs = configure(kwargs)
        kwargs.setdefault("work_horse_killed_handler", job.work_horse_killed)
        super().__init__(*args, **kwargs)
        # RQ survives a lost connection only around its wait for jobs: one elsewhere (the bookkeeping
        # after a job, a heartbeat) ends the worker. So its own connection waits for Redis to return.
        self.connection.set_retry(patient_retry())
        patient_sessions()
