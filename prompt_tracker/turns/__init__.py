"""A turn of the conversation, as plain functions: send, run (in the worker), retry, reset.

Views, the RQ job and the tests call these; they know nothing of the request.
"""

import threading
import time
from typing import Iterable

import msgspec
from flask import current_app
from redis.exceptions import RedisError

from ..extensions import services
from ..messages import Message, Usage, assistant_placeholder, user_message
from .live import DeltaBuffer, publish
from ..playground_settings import PlaygroundSettings
from ..pricing import cost_usd
from ..rendering import render_reply
from ..providers import ChatRequest, ProviderError, get_provider


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


def send_message(sid: str, playground: str, content: str, settings: PlaygroundSettings,
                 refresh_keys: Iterable[str] = ()) -> tuple[Message, Message]:
    """Append the user's message and a pending reply atomically, queue the reply; return both.

    The append also pushes the expiry of ``refresh_keys`` (the session's other keys).
    """
    content = validate_content(content)
    get_provider(settings.provider)  # an unknown provider fails before anything is stored
    sent = user_message(content)
    placeholder = assistant_placeholder(settings.provider, settings.model, settings.params(), **settings.provenance())
    services.store.append(sid, playground, sent, placeholder, refresh_keys=refresh_keys)
    enqueue_reply(sid, playground, placeholder.id, settings)
    return sent, placeholder


def enqueue_reply(sid: str, playground: str, message_id: str, settings: PlaygroundSettings) -> None:
    """Queue the job that writes the reply; if the queue is down, mark the reply failed (with Retry)."""
    try:
        services.queue.enqueue(
            "prompt_tracker.turns.job.run_turn",
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

    current = services.store.get(sid, playground, message_id)
    dead = dead_replies([current]) if current else set()

    def to_pending(message: Message) -> Message | None:
        if message.role != "assistant" or message.status == "pending":
            return None
        if message.status == "streaming" and message.id not in dead:
            return None  # a worker is still writing it
        return msgspec.structs.replace(
            message, status="pending", content="", error=None, usage=None, first_token_ms=None,
            latency_ms=None, cost_usd=None, finished_at=None, provider=settings.provider,
            model=settings.model, params=settings.params(), created_at=time.time(), **settings.provenance(),
        )

    message = services.store.update(sid, playground, message_id, to_pending)
    if message is None or message.role != "assistant":
        return None
    enqueue_reply(sid, playground, message_id, settings)
    return message


# A worker writing a reply keeps a key alive (HEARTBEAT_TTL seconds, renewed four times per TTL);
# a reply "streaming" without it lost its worker.


def alive_key(message_id: str) -> str:
    """Jobs-Redis key that exists while a worker is writing ``message_id``."""
    return f"prompt_tracker:alive:{message_id}"


class Heartbeat:
    """Keep ``alive_key`` set while a reply is written, from a thread, so slow providers count as alive."""

    def __init__(self, message_id: str):
        self.key = alive_key(message_id)
        self.redis = services.jobs_redis
        self.ttl = current_app.config["HEARTBEAT_TTL"]
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        while not self.stopped.wait(self.ttl / 4):
            try:
                self.redis.set(self.key, 1, ex=self.ttl)
            except RedisError:
                pass  # the next beat tries again; the reply itself fails loudly if Redis is gone

    def __enter__(self) -> "Heartbeat":
        self.redis.set(self.key, 1, ex=self.ttl)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        # The key is left to expire: a page that saw "streaming" just before the end stays right.
        self.stopped.set()
        self.thread.join()


def dead_replies(messages: list[Message]) -> set[str]:
    """Ids of replies marked streaming whose worker is gone (killed mid-turn): one round trip."""
    streaming = [message.id for message in messages if message.status == "streaming"]
    if not streaming:
        return set()
    with services.jobs_redis.pipeline(transaction=False) as pipe:
        for message_id in streaming:
            pipe.exists(alive_key(message_id))
        alive = pipe.execute()
    return {message_id for message_id, is_alive in zip(streaming, alive) if not is_alive}


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


def stop_key(message_id: str) -> str:
    """Jobs-Redis key that asks the worker writing ``message_id`` to stop."""
    return f"prompt_tracker:stop:{message_id}"


def request_stop(sid: str, playground: str, message_id: str) -> Message | None:
    """Stop a reply: a queued one is marked stopped now, one being written stops at its next chunk."""

    def stop_if_queued(message: Message) -> Message | None:
        if message.role != "assistant" or message.status != "pending":
            return None
        return msgspec.structs.replace(message, status="stopped", finished_at=time.time())

    message = services.store.update(sid, playground, message_id, stop_if_queued)
    if message is not None and message.status == "streaming":
        services.jobs_redis.set(stop_key(message_id), 1, ex=current_app.config["JOB_TIMEOUT"] + 60)
    elif message is not None and message.status == "stopped":
        publish(sid, "message.stopped", {"id": message_id})
    return message


def run_turn(sid: str, playground: str, message_id: str, settings: PlaygroundSettings) -> str:
    """Write the reply ``message_id`` by streaming from the provider; return what became of it.

    Returns "done", "stopped", "dropped" (the placeholder is gone: Reset) or "skipped" (no longer open).
    Deltas go to the browser as they come; the stored message is replaced once, at the end.
    """
    with Heartbeat(message_id):
        return _write_reply(sid, playground, message_id, settings)


def _write_reply(sid: str, playground: str, message_id: str, settings: PlaygroundSettings) -> str:
    store = services.store
    started = time.monotonic()

    def to_streaming(message: Message) -> Message | None:
        return msgspec.structs.replace(message, status="streaming") if message.status == "pending" else None

    message = store.update(sid, playground, message_id, to_streaming)
    if message is None:
        return "dropped"
    if not message.is_open:
        return "skipped"
    publish(sid, "message.started", {"id": message_id})

    request = ChatRequest(
        model=settings.model,
        system_prompt=settings.system_prompt,
        messages=history_before(store.all(sid, playground), message_id),
        **settings.params(),
    )
    parts: list[str] = []
    usage = None
    first_token_ms = None
    stopped = False
    buffer = DeltaBuffer(sid, message_id)
    stream = get_provider(settings.provider).stream(request)
    try:
        for item in stream:
            if isinstance(item, Usage):
                usage = item
                continue
            if first_token_ms is None:
                first_token_ms = int((time.monotonic() - started) * 1000)
            parts.append(item)
            if buffer.add(item) and services.jobs_redis.exists(stop_key(message_id)):
                stopped = True
                break
    except ProviderError as error:
        fail_message(sid, playground, message_id, str(error))
        publish(sid, "message.failed", {"id": message_id, "error": str(error)})
        raise
    except Exception:
        error = "The reply failed with an internal error; see the worker log."
        fail_message(sid, playground, message_id, error)
        publish(sid, "message.failed", {"id": message_id, "error": error})
        raise
    finally:
        stream.close()  # stops the provider's HTTP stream when we leave early
        services.jobs_redis.delete(stop_key(message_id))
    buffer.flush()
    status = "stopped" if stopped else "done"

    def to_final(message: Message) -> Message | None:
        if not message.is_open:
            return None
        return msgspec.structs.replace(
            message, status=status, content="".join(parts), html=render_reply("".join(parts)), usage=usage, first_token_ms=first_token_ms,
            latency_ms=int((time.monotonic() - started) * 1000), finished_at=time.time(),
            cost_usd=cost_usd(settings.provider, settings.model, usage),
            request=get_provider(settings.provider).describe(request),  # what was sent, keys as $VARIABLES
        )

    final = store.update(sid, playground, message_id, to_final)
    if final is None or final.status != status:
        return "dropped"
    publish(sid, f"message.{status}", {
        "id": message_id,
        "usage": msgspec.to_builtins(final.usage),
        "first_token_ms": final.first_token_ms,
        "latency_ms": final.latency_ms,
        "cost_usd": final.cost_usd,
    })
    return status
