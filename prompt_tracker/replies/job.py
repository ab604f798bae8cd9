"""RQ entry points: the reply job (ids only, JSON arguments) and what the worker does when a work-horse dies."""

from flask import current_app, has_app_context

_worker_app = None


def worker_app():
    """The app to run a job in: the current one (inline jobs, ``flask worker``) or one built once per process."""
    global _worker_app
    if has_app_context():
        return current_app._get_current_object()
    if _worker_app is None:
        from .. import create_app

        _worker_app = create_app()
    return _worker_app


def run_reply(message_id: str, attempt: int) -> str:
    """Write attempt ``attempt`` of the reply ``message_id`` (see ``turns.reply.run_reply``)."""
    from .reply import run_reply as run

    with worker_app().app_context():
        return run(message_id, attempt)


def work_horse_killed(job, retpid, ret_val, rusage) -> None:
    """The process writing a reply died, so mark the reply failed now (with ``message.failed``).

    Called by the supervisor of a resident worker (``worker.supervise``) and, as RQ's
    ``work_horse_killed_handler``, by a forking ``ReplyWorker``; the text streamed so far is kept.
    """
    if job.func_name != "prompt_tracker.replies.job.run_reply":
        return
    from ..store.tickets import delete_ticket, read_ticket
    from .reply import WORKER_DIED, fail_reply

    message_id, attempt = job.args
    with worker_app().app_context():
        ticket = read_ticket(message_id)
        if ticket is None:
            return
        fail_reply(ticket.store, ticket.playground, message_id, attempt, WORKER_DIED)
        delete_ticket(message_id)
