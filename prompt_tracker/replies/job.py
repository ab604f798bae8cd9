"""RQ entry points: the reply job (ids only, JSON arguments) and what the worker does when a work-horse dies.

They run where the app is: under ``flask worker`` (the command's app context) or a
``prompt_tracker.rq_worker.ReplyWorker`` (which pushes the app's context for its process), or
inline in tests. Each job gets an app context of its own, so nothing of one job's ``g`` reaches the next.
"""

import msgspec
from flask import current_app

from ..limits import budget
from ..store.tickets import delete_ticket, read_ticket
from .eval_runs import RUN_JOB, result_lost
from .replay import FINAL_WITH_TEXT, after_reply, record_diff, send_paced_turn
from .reply import WORKER_DIED, Heartbeat, fail_reply, write_reply
from .tool_results import answer_with_mocks


def run_reply(message_id: str, attempt: int) -> str:
    """Write attempt ``attempt`` of the reply ``message_id`` from its ticket; a replay's reply then sends its
    next turn, and its difference from the original's reply is computed and stored.

    Returns the outcome (see ``reply.write_reply``); "skipped" when the ticket is gone.
    """
    with current_app._get_current_object().app_context():
        ticket = read_ticket(message_id)
        if ticket is None:
            return "skipped"
        with Heartbeat(message_id):
            outcome, store_id = write_reply(
                ticket.store_id, ticket.playground, message_id, attempt, ticket.settings, ticket.user, ticket.hold
            )
        if outcome == "done" and ticket.settings.auto_mock and ticket.replay_until is None:
            # After the reply's final record: calls to tools with a mock are answered, the next reply queued.
            answer_with_mocks(store_id, ticket.playground, message_id, ticket.settings, ticket.user, ticket.auto_rounds)
        if ticket.replay_until is not None:
            after_reply(msgspec.structs.replace(ticket, store_id=store_id), message_id, outcome)
        if outcome in FINAL_WITH_TEXT:  # after the next turn is queued: it need not wait for the diff
            record_diff(store_id, ticket.playground, message_id)
        return outcome


def run_paced_turn(message_id: str) -> str:
    """Send the replay's turn that waited for the send rate after reply ``message_id`` (a job RQ's
    scheduler queued when its time came): "sent" (or paced again), "skipped" when stopped or gone."""
    with current_app._get_current_object().app_context():
        return "sent" if send_paced_turn(message_id) else "skipped"


def work_horse_killed(job, retpid, ret_val, rusage) -> None:
    """The process writing a reply died, so mark the reply failed now (with ``message.failed``).

    Called by the supervisor of a resident worker (``worker.supervise``) and, as RQ's
    ``work_horse_killed_handler``, by a forking ``ReplyWorker``; the text streamed so far is kept, and
    the reply's hold is settled with an estimate of what it cost.
    """
    if job.func_name == RUN_JOB:
        with current_app._get_current_object().app_context():
            result_lost(*job.args)
        return
    if job.func_name != "prompt_tracker.replies.job.run_reply":
        return
    message_id, attempt = job.args
    with current_app._get_current_object().app_context():
        ticket = read_ticket(message_id)
        if ticket is None:
            return
        failed = fail_reply(ticket.store_id, ticket.playground, message_id, attempt, WORKER_DIED)
        delete_ticket(message_id)
        # No usage was reported: its request as estimated when it was queued, and the text streamed so far.
        budget.settle(ticket.hold, budget.estimated_usage(ticket.hold, None, len(failed.content) if failed else 0))
