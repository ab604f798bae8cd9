"""Send: validate, append the user's message and a pending reply, queue the reply's job."""

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from flask import current_app
from redis.exceptions import RedisError

from ..domain.keys import CLIENT_TOKEN_PATTERN, reply_job_id
from ..domain.messages import Message, assistant_placeholder, user_message
from ..domain.refusals import Refused
from ..domain.settings import PlaygroundSettings
from ..extensions import services
from ..limits import budget
from ..store.tickets import Ticket, write_ticket
from .gate import Admission, UnknownProvider, admit, check_provider, release
from .reply import fail_reply

__all__ = ["UnknownProvider", "check_provider"]  # re-exported: where the views found them before the gate


class InvalidMessage(Refused, ValueError):
    """The message cannot be sent as typed; the text says why."""

    status = 422


class QueueUnavailable(Refused, RuntimeError):
    """The reply could not be queued (the jobs Redis is unreachable); what was asked is stored, the reply failed."""

    status = 503
    done = True


class DuplicateSend(Refused):
    """The same submission arrived a second time (Ctrl+Enter twice, a double click); it was done once.

    Nothing to say: the page shows what is stored (JSON ``{"duplicate": true}``, 200).
    """

    status = 200
    done = True

    def json(self) -> dict:
        return {"duplicate": True}


@contextmanager
def one_submission(store_id: str, client_token: str | None) -> Iterator[None]:
    """Do the block once per form submission (``client_token``); raise DuplicateSend for the same one again.

    An error inside the block forgets the token, so the same form can be sent again, unless it is a
    refusal that is ``done`` (what was asked is stored; only its reply could not be queued).
    """
    token = client_token if client_token and CLIENT_TOKEN_PATTERN.match(client_token) else None
    if token and not services.conversations.mark_submission(store_id, token):
        raise DuplicateSend()
    try:
        yield
    except Exception as error:
        if token and not (isinstance(error, Refused) and error.done):
            services.conversations.forget_submission(store_id, token)
        raise


def validate_content(content: str | None, status: int | None = None) -> str:
    """Return the message to send, or raise InvalidMessage saying what is wrong with it (``status``: other than 422)."""
    limit = current_app.config["MAX_MESSAGE_CHARS"]
    content = (content or "").replace("\r\n", "\n")
    if not content.strip():
        raise InvalidMessage("Type a message before sending.", status)
    if len(content) > limit:
        raise InvalidMessage(f"Messages are limited to {limit:,} characters; this one has {len(content):,}.", status)
    return content


def send_message(
    store_id: str,
    playground: str,
    content: str,
    settings: PlaygroundSettings,
    user: str | None,
    refresh_keys: Iterable[str] = (),
    client_token: str | None = None,
    announce: Callable[[Message, Message], None] | None = None,
) -> tuple[Message, Message]:
    """Append the user's message and a pending reply atomically, queue the reply; return both.

    ``announce(sent, reply)`` runs between the two (the view publishes ``message.appended``), so
    every tab hears of the messages before any event of the reply (and the view records that the
    session uses this playground, whether or not the reply can be queued).

    The append also pushes the expiry of ``refresh_keys`` (the session's other keys). Raises
    InvalidMessage, UnknownProvider, ConversationFull or TooManyOpenReplies with nothing stored,
    DuplicateSend when ``client_token`` (the composer's submission token) was already sent, and
    QueueUnavailable when the messages are stored but the reply could not be queued.
    """
    content = validate_content(content)
    admission = admit(user, settings, store_id, playground, answers=content, new_text=content)
    try:
        with one_submission(store_id, client_token):
            sent = user_message(content)
            placeholder = placeholder_for(admission)
            services.conversations.append(store_id, playground, sent, placeholder, refresh_keys=refresh_keys)
    except BaseException:
        release(admission)
        raise
    if announce is not None:
        announce(sent, placeholder)
    enqueue_reply(store_id, playground, placeholder, admission, user)
    return sent, placeholder


def placeholder_for(admission: Admission) -> Message:
    """The pending reply of an admitted turn, recording the settings it is sent with."""
    settings = admission.settings
    return assistant_placeholder(settings.provider, settings.model, settings.params(), **settings.provenance())


def enqueue_reply(
    store_id: str,
    playground: str,
    reply: Message,
    admission: Admission,
    user: str | None,
    replay_until: str | None = None,
    replay_turns: list[str] | None = None,
    send_rate: str | None = None,
    auto_rounds: int = 0,
) -> None:
    """Write the reply's ticket and queue its job; if the queue is down, mark the reply failed (with Retry).

    Only an ``admission`` of the gate (``gate.admit``) queues a reply: its settings are what is sent,
    its hold goes in the ticket. ``user`` is whose budget the reply counts against; ``replay_until``
    and ``replay_turns`` mark a replay's reply, ``send_rate`` the rate its later turns count against,
    ``auto_rounds`` the rounds of calls answered with mocks before it (see ``Ticket``).
    """
    config = current_app.config
    queue = services.queue
    ticket = Ticket(
        store_id=store_id,
        playground=playground,
        settings=admission.settings,
        user=user,
        replay_until=replay_until,
        replay_turns=replay_turns,
        send_rate=send_rate,
        hold=admission.hold,
        auto_rounds=auto_rounds,
    )
    job = dict(
        job_id=reply_job_id(reply.id, reply.attempt),
        job_timeout=config["JOB_TIMEOUT"],
        result_ttl=600,
        failure_ttl=3600,
    )
    try:
        # The ticket and the job in one round trip (one MULTI): a worker never finds a job without
        # its ticket. An inline queue (tests) runs the job inside enqueue, so the ticket goes first.
        with services.jobs_redis.pipeline() as pipe:
            if queue.is_async:  # RQ opens the MULTI, so its commands go first
                queue.enqueue("prompt_tracker.replies.job.run_reply", reply.id, reply.attempt, pipeline=pipe, **job)
            write_ticket(reply.id, ticket, seconds=config["JOB_TIMEOUT"] + 3600, pipeline=pipe)
            pipe.execute()
        if not queue.is_async:
            queue.enqueue("prompt_tracker.replies.job.run_reply", reply.id, reply.attempt, **job)
    except RedisError as error:
        current_app.logger.error("could not queue reply %s: %s", reply.id, error.__class__.__name__)
        fail_reply(
            store_id,
            playground,
            reply.id,
            reply.attempt,
            "The reply could not be queued: the job queue is unreachable.",
        )
        budget.settle(admission.hold, None, called=False)
        raise QueueUnavailable("The reply could not be queued: the job queue (Redis) is unreachable.") from error
