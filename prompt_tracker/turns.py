"""A turn of the conversation, as plain functions: send, run (in the worker), retry, reset.

Views, the RQ job and the tests call these; they know nothing of the request.
"""

import time

import msgspec
from flask import current_app
from redis.exceptions import RedisError

from .extensions import services
from .messages import Message, Usage, assistant_placeholder, user_message
from .playground_settings import PlaygroundSettings
from .providers import ChatRequest, ProviderError, get_provider


class InvalidMessage(ValueError):
    """The message cannot be sent as typed; the text says why."""


class QueueUnavailable(RuntimeError):
    """The reply could not be queued (the jobs Redis is unreachable)."""


def validate_content(content: str | None) -> str:
    """Return the message to send, or raise InvalidMessage saying what is wrong with it."""
    limit = current_app.config["MAX_MESSAGE_CHARS"]
    content = (content or "").replace("\r\n", "\n")
    if not content.strip():
        raise InvalidMessage("Type a message before sending.")
    if len(content) > limit:
        raise InvalidMessage(f"Messages are limited to {limit:,} characters; this one has {len(content):,}.")
    return content


def send_message(sid: str, playground: str, content: str, settings: PlaygroundSettings) -> Message:
    """Append the user's message and a pending reply atomically, queue the reply; return the placeholder."""
    content = validate_content(content)
    get_provider(settings.provider)  # an unknown provider fails before anything is stored
    placeholder = assistant_placeholder(settings.provider, settings.model, settings.params())
    services.store.append(sid, playground, user_message(content), placeholder)
    enqueue_reply(sid, playground, placeholder.id, settings)
    return placeholder


def enqueue_reply(sid: str, playground: str, message_id: str, settings: PlaygroundSettings) -> None:
    """Queue the job that writes the reply; if the queue is down, mark the reply failed (with Retry)."""
    try:
        services.queue.enqueue(
            "prompt_tracker.tasks.run_turn",
            sid,
            playground,
            message_id,
            msgspec.to_builtins(settings),
            job_timeout=current_app.config["JOB_TIMEOUT"],
            result_ttl=600,
            failure_ttl=3600,
        )
    except RedisError as error:
        current_app.logger.error("could not queue a reply: %s", error)
        fail_message(sid, playground, message_id, "The reply could not be queued: the job queue is unreachable.")
        raise QueueUnavailable("The reply could not be queued: the job queue (Redis) is unreachable.") from error


def retry_reply(sid: str, playground: str, message_id: str, settings: PlaygroundSettings) -> Message | None:
    """Reset a finished or failed assistant message to pending and queue it again."""

    def to_pending(message: Message) -> Message | None:
        if message.role != "assistant" or message.status == "pending":
            return None
        return msgspec.structs.replace(
            message, status="pending", content="", error=None, usage=None, first_token_ms=None,
            latency_ms=None, cost_usd=None, finished_at=None, provider=settings.provider,
            model=settings.model, params=settings.params(), created_at=time.time(),
        )

    message = services.store.update(sid, playground, message_id, to_pending)
    if message is None or message.role != "assistant":
        return None
    enqueue_reply(sid, playground, message_id, settings)
    return message


def clear_conversation_state(sid: str, playground: str) -> bool:
    """Delete the conversation from Redis now (Reset); True if there was one."""
    return services.store.clear(sid, playground)


def fail_message(sid: str, playground: str, message_id: str, error: str) -> Message | None:
    """Mark an open assistant message failed with a short reason."""

    def to_failed(message: Message) -> Message | None:
        if not message.is_open:
            return None
        return msgspec.structs.replace(message, status="failed", error=error, finished_at=time.time())

    return services.store.update(sid, playground, message_id, to_failed)


def history_before(messages: list[Message], message_id: str) -> list[tuple[str, str]]:
    """The turns a model is sent for the reply ``message_id``: everything before it that has text."""
    history = []
    for message in messages:
        if message.id == message_id:
            break
        if message.role == "user" or (message.status in ("done", "stopped") and message.content):
            history.append((message.role, message.content))
    return history


def run_turn(sid: str, playground: str, message_id: str, settings: PlaygroundSettings) -> str:
    """Write the reply ``message_id`` by calling the provider; return what became of it.

    Returns "dropped" when the placeholder is gone (Reset) and "skipped" when it is no longer open.
    """
    store = services.store
    started = time.monotonic()

    def to_streaming(message: Message) -> Message | None:
        return msgspec.structs.replace(message, status="streaming") if message.status == "pending" else None

    message = store.update(sid, playground, message_id, to_streaming)
    if message is None:
        return "dropped"
    if not message.is_open:
        return "skipped"

    request = ChatRequest(
        model=settings.model,
        system_prompt=settings.system_prompt,
        messages=history_before(store.all(sid, playground), message_id),
        temperature=settings.temperature,
        max_tokens=settings.max_tokens,
    )
    parts: list[str] = []
    usage = None
    first_token_ms = None
    try:
        for item in get_provider(settings.provider).stream(request):
            if isinstance(item, Usage):
                usage = item
                continue
            if first_token_ms is None:
                first_token_ms = int((time.monotonic() - started) * 1000)
            parts.append(item)
    except ProviderError as error:
        fail_message(sid, playground, message_id, str(error))
        raise
    except Exception:
        fail_message(sid, playground, message_id, "The reply failed with an internal error; see the worker log.")
        raise

    def to_done(message: Message) -> Message | None:
        if not message.is_open:
            return None
        return msgspec.structs.replace(
            message, status="done", content="".join(parts), usage=usage, first_token_ms=first_token_ms,
            latency_ms=int((time.monotonic() - started) * 1000), finished_at=time.time(),
        )

    return "done" if store.update(sid, playground, message_id, to_done) is not None else "dropped"
