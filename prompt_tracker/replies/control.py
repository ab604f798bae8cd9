"""Retry, Stop and Reset: what a person does to a reply or a conversation."""

import time

import msgspec
from flask import current_app

from ..domain.messages import Alternative, AttemptResult, Message, NoSuchAttempt, decode_message, with_attempt
from ..domain.refusals import Refused
from ..domain.settings import PlaygroundSettings
from ..extensions import services
from ..limits import budget
from ..store.tickets import read_ticket
from .gate import admit, release
from .live import publish
from .reply import dead_replies, event
from .send import enqueue_reply

RETRYABLE = ("done", "stopped", "failed")


def retry_reply(
    store_id: str, playground: str, message_id: str, settings: PlaygroundSettings, user: str | None
) -> Message | None:
    """Queue the next attempt of a finished, stopped, failed or dead reply, keeping its text as an alternative.

    Retrying a reply that is queued or being written changes nothing (one provider call per
    attempt, however often Retry is clicked). Returns the message as stored now (None if gone).
    The new attempt passes the gate (``gate.admit``: its refusals, with nothing queued); raises
    QueueUnavailable if the queue is down.
    """
    conversations = services.conversations
    found = conversations.find(store_id, playground, message_id)
    if found is None or found[2].role != "assistant":
        return found[2] if found else None
    index, _raw, current = found
    dead = dead_replies([current])
    if not (current.status in RETRYABLE or current.id in dead):
        return current  # queued or being written: nothing to do, nothing to admit
    partial = conversations.partial(store_id, message_id) if current.id in dead else ""
    before = conversations.redis.lindex(conversations.key(store_id, playground), index - 1) if index else None
    answers = decode_message(before).content if before is not None else ""
    admission = admit(user, settings, store_id, playground, answers=answers)
    sent = admission.settings

    def to_pending(message: Message) -> Message | None:
        if message.role != "assistant" or not (message.status in RETRYABLE or message.id in dead):
            return None
        previous = Alternative.of(
            message, content=message.content or partial, status="failed" if message.id in dead else message.status
        )
        # A dead pending reply was never queued: nothing was written, so there is no attempt to keep.
        kept = message.alternatives if message.status == "pending" else [*message.alternatives, previous]
        # The new attempt starts with no result: every result field back to its default. Its number is
        # past every kept attempt's (the one held may be an earlier one, chosen with ‹ ›).
        fresh = AttemptResult(status="pending", provider=sent.provider, model=sent.model, params=sent.params())
        return msgspec.structs.replace(
            message,
            **msgspec.structs.asdict(fresh),
            attempt=message.next_attempt(),
            alternatives=sorted(kept, key=lambda alternative: alternative.attempt),
            created_at=time.time(),
            request=None,
            history_dropped=0,
            diff=None,
            **sent.provenance(),
        )

    try:
        message, changed = conversations.change(store_id, playground, message_id, to_pending)
    except BaseException:
        release(admission)
        raise
    if changed:
        enqueue_reply(store_id, playground, message, admission, user)
    else:
        release(admission)
    return message


class CannotChoose(Refused):
    """An attempt of a reply cannot be chosen now: the reply is being written, is gone, or has no such attempt."""

    status = 409


def choose_attempt(store_id: str, playground: str, message_id: str, attempt: int) -> Message:
    """Make attempt ``attempt`` of a finished reply the one it shows, and the one later turns send.

    The attempt it held becomes an alternative; its stored fragment is rendered again (the store does,
    on every change). Every tab of the session hears of it (``message.changed``). Raises CannotChoose
    (404 when the reply is gone).
    """

    def to_chosen(message: Message) -> Message | None:
        if message.role != "assistant" or not message.alternatives:
            raise CannotChoose("This message has no other attempts to choose from.")
        if message.is_open:
            raise CannotChoose("This reply is still being written; choose an attempt once it has finished.")
        try:
            chosen = with_attempt(message, attempt)
        except NoSuchAttempt:
            raise CannotChoose(
                f"This reply has no attempt {attempt} (changed in another tab?); the page shows what it has now."
            ) from None
        return None if chosen is message else chosen

    message, changed = services.conversations.change(store_id, playground, message_id, to_chosen)
    if message is None:
        raise CannotChoose("That reply is no longer in this conversation.", 404)
    if changed:
        publish(store_id, "message.changed", event(playground, message_id, attempt=attempt))
    return message


def request_stop(store_id: str, playground: str, message_id: str) -> Message | None:
    """Stop a reply: a queued one is marked stopped now, one being written stops at its next flush."""

    def stop_if_queued(message: Message) -> Message | None:
        if message.role != "assistant" or message.status != "pending":
            return None
        return msgspec.structs.replace(message, status="stopped", finished_at=time.time())

    message, changed = services.conversations.change(store_id, playground, message_id, stop_if_queued)
    if message is not None and message.status == "streaming":
        services.conversations.request_stop(store_id, message_id, current_app.config["JOB_TIMEOUT"] + 60)
    elif changed:
        # Never sent, so it costs nothing and its place among the user's open replies is free now (its
        # job, when a worker takes it, finds it stopped; a hold settles once, so that settle does nothing).
        ticket = read_ticket(message_id)
        if ticket is not None:
            budget.settle(ticket.hold, None, called=False)
        publish(store_id, "message.stopped", event(playground, message_id, attempt=message.attempt, html=""))
    return message


def reset_conversation(store_id: str, playground: str) -> bool:
    """Reset: stop every open reply of the playground, delete the conversation and their partials now.

    Then tell every tab of the session. True if there was a conversation.
    """
    existed, _stopped = services.conversations.clear(
        store_id, playground, stop_seconds=current_app.config["JOB_TIMEOUT"] + 60
    )
    publish(store_id, "conversation.reset", {"playground": playground})
    return existed


def stop_open_replies(store_id: str, playground: str) -> list[str]:
    """Stop every open reply of the playground and delete their partial text, leaving the conversation.

    What an Import does before it replaces the conversation: as with Reset, each reply's worker
    closes its provider stream at its next flush, and no partial key is left behind. Returns the
    ids of the replies that were open.
    """
    _existed, stopped = services.conversations.clear(
        store_id, playground, stop_seconds=current_app.config["JOB_TIMEOUT"] + 60, keep_conversation=True
    )
    return stopped
