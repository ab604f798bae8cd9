"""Send: validate, append the user's message and a pending reply, queue the reply's job."""

from collections.abc import Callable, Iterable

from flask import current_app
from redis.exceptions import RedisError

from ..domain.keys import CLIENT_TOKEN_PATTERN, reply_job_id
from ..domain.messages import Message, assistant_placeholder, user_message
from ..domain.settings import PlaygroundSettings
from ..extensions import services
from ..providers import get_provider
from ..store.tickets import Ticket, write_ticket
from .reply import fail_reply


class InvalidMessage(ValueError):
    """The message cannot be sent as typed; the text says why."""


class QueueUnavailable(RuntimeError):
    """The reply could not be queued (the jobs Redis is unreachable)."""


class DuplicateSend(Exception):
    """The same composer submission arrived a second time (Ctrl+Enter twice); it was sent once."""


def validate_content(content: str | None) -> str:
    """Return the message to send, or raise InvalidMessage saying what is wrong with it."""
    limit = current_app.config["MAX_MESSAGE_CHARS"]
    content = (content or "").replace("\r\n", "\n")
    if not content.strip():
        raise InvalidMessage("Type a message before sending.")
    if len(content) > limit:
        raise InvalidMessage(f"Messages are limited to {limit:,} characters; this one has {len(content):,}.")
    return content


def send_message(
    store: str,
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
    every tab hears of the messages before any event of the reply.

    The append also pushes the expiry of ``refresh_keys`` (the session's other keys). Raises
    InvalidMessage, ConversationFull or TooManyOpenReplies with nothing stored, and DuplicateSend
    when ``client_token`` (the composer's submission token) was already sent.
    """
    content = validate_content(content)
    get_provider(settings.provider)  # an unknown provider fails before anything is stored
    token = client_token if client_token and CLIENT_TOKEN_PATTERN.match(client_token) else None
    if token and not services.store.mark_submission(store, token):
        raise DuplicateSend()
    sent = user_message(content)
    placeholder = assistant_placeholder(settings.provider, settings.model, settings.params(), **settings.provenance())
    try:
        services.store.append(store, playground, sent, placeholder, refresh_keys=refresh_keys)
    except Exception:
        if token:
            services.store.forget_submission(store, token)
        raise
    if announce is not None:
        announce(sent, placeholder)
    enqueue_reply(store, playground, placeholder, settings, user)
    return sent, placeholder


def enqueue_reply(
    store: str,
    playground: str,
    reply: Message,
    settings: PlaygroundSettings,
    user: str | None,
    replay_until: str | None = None,
) -> None:
    """Write the reply's ticket and queue its job; if the queue is down, mark the reply failed (with Retry).

    ``user`` is whose budget the reply counts against; ``replay_until`` marks a replay's reply (see ``Ticket.replay_until``).
    """
    config = current_app.config
    queue = services.queue
    ticket = Ticket(store=store, playground=playground, settings=settings, user=user, replay_until=replay_until)
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
            store, playground, reply.id, reply.attempt, "The reply could not be queued: the job queue is unreachable."
        )
        raise QueueUnavailable("The reply could not be queued: the job queue (Redis) is unreachable.") from error
