"""A reply in the worker: claim its attempt, stream it from the provider, finish it.

- **Claim**: a compare-and-set moves the placeholder ``pending → streaming`` only if it still holds
  this attempt, so exactly one job makes the provider call, however many were queued.
- **Stream**: deltas are coalesced (``FLUSH_SECONDS``); each flush is one round trip that appends the
  text to the reply's ``partial`` key and answers whether the conversation still exists and whether
  Stop was asked (for this attempt). Either ends the provider stream (closing its HTTP response) at
  once. Events without text (``""``: a model thinking) flush too, so Stop is seen while it thinks.
- **Tool calls** stream too: the calls' names are written on the streaming record as each one starts
  (a reload, a second tab and the no-JS frame show "Calling <name>…"), and each flush publishes
  ``message.tool_calls`` with every call's name and its arguments so far (``AssemblingCalls``).
- **Finish**: one compare-and-set writes the final record and deletes ``partial``; a Reset
  (placeholder gone) writes nothing.
"""

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import msgspec
from flask import current_app
from redis.exceptions import RedisError

from ..domain.history import cap_history, history_before
from ..domain.keys import alive_key, ticket_key
from ..domain.messages import Message, Usage
from ..domain.pricing import cost_usd
from ..domain.recorded_request import record_request
from ..domain.rendering import render_reply, render_structured
from ..extensions import services
from ..limits import budget
from ..providers import ChatRequest, ProviderError, ToolCall, ToolCallDelta, get_provider
from ..store.tickets import delete_ticket, read_ticket
from .live import publish

T = TypeVar("T")
FLUSH_SECONDS = 0.05
# A pending reply is stored before its job is queued; past this, one with no ticket will never be written.
QUEUE_GRACE_SECONDS = 30
INTERNAL_ERROR = "The reply failed with an internal error; see the worker log."
WORKER_DIED = "The worker stopped before finishing this reply."
WORKER_SHUT_DOWN = "The worker was shut down before finishing this reply; press Retry to write it again."

# Of a tool call's arguments, what a streaming reply's events carry at most (the page shows them as they
# come); the whole call shows when the reply ends.
LIVE_ARGUMENTS_CHARS = 2000

# The app's logger: the web process formats it (``web.request_log``), the worker too.
logger = logging.getLogger("prompt_tracker")


def event(playground: str, message_id: str, **fields) -> dict:
    """Payload of a reply's live event (``id`` kept for the page's current script)."""
    return {"playground": playground, "message_id": message_id, "id": message_id, **fields}


class AssemblingCalls:
    """The tool calls of a reply as their pieces stream (``ToolCallDelta``), for the page to see them assemble."""

    def __init__(self):
        self.calls: dict[int, dict] = {}  # by the provider's index: id, name, arguments so far (capped)
        self.changed = False  # since the page was last told
        self.stored = 0  # how many named calls the streaming record holds

    def add(self, piece: ToolCallDelta) -> None:
        """Take one piece of a call."""
        call = self.calls.setdefault(piece.index, {"id": "", "name": "", "arguments": ""})
        call["id"] = piece.id or call["id"]
        call["name"] = piece.name or call["name"]
        if piece.arguments and len(call["arguments"]) <= LIVE_ARGUMENTS_CHARS:
            call["arguments"] += piece.arguments
        self.changed = True

    def named(self) -> list[dict]:
        """The calls whose names are known, in order."""
        return [call for _, call in sorted(self.calls.items()) if call["name"]]

    def shown(self) -> list[dict]:
        """What a ``message.tool_calls`` event carries: each call's name and its arguments so far (capped)."""
        return [
            {
                "name": call["name"],
                "arguments": call["arguments"][:LIVE_ARGUMENTS_CHARS],
                "more": len(call["arguments"]) > LIVE_ARGUMENTS_CHARS,
            }
            for call in self.named()
        ]

    def unstored(self) -> list[ToolCall] | None:
        """The named calls for the streaming record (arguments come with the final one), if it lacks some."""
        named = self.named()
        if len(named) <= self.stored:
            return None
        self.stored = len(named)
        return [ToolCall(id=call["id"], name=call["name"], arguments="") for call in named]


def write_reply(
    store_id: str, playground: str, message_id: str, attempt: int, settings, user: str | None = None, hold=None
) -> tuple[str, str]:
    """Claim, stream and finish the reply; return the outcome and the store id it ended under (a login moves it).

    The outcome: "done", "stopped", "failed" (provider error, raised after recording it), "dropped"
    (the conversation was reset) or "skipped" (another job holds this reply, or it is no longer pending).
    Whatever the outcome, the reply's ``hold`` (``gate.admit``) is settled: with the provider's usage,
    else an estimate from the request and the text streamed; released whole if nothing was called.
    """
    conversations = services.conversations
    started = time.monotonic()

    def to_streaming(message: Message) -> Message | None:
        if message.status != "pending" or message.attempt != attempt:
            return None
        return msgspec.structs.replace(message, status="streaming")

    store_id, (claimed, changed) = following_moves(
        message_id, store_id, lambda at: conversations.change(at, playground, message_id, to_streaming), _present
    )
    if claimed is None:
        budget.settle(hold, None, called=False)  # reset or deleted before it started: nothing was called
        return "dropped", store_id
    if not changed:
        if not (claimed.status == "streaming" and claimed.attempt == attempt):
            budget.settle(hold, None, called=False)  # stopped while queued, or retried: never called
        return "skipped", store_id  # else another job of this attempt streams it, and settles it
    publish(store_id, "message.started", event(playground, message_id, attempt=attempt))

    store_id, messages = following_moves(message_id, store_id, lambda at: conversations.all(at, playground), bool)
    history, dropped = cap_history(history_before(messages, message_id), current_app.config["MAX_HISTORY_CHARS"])
    too_long = over_long(history)
    if too_long:  # the gate refuses these; a message changed since (an import) is refused here too
        budget.settle(hold, None, called=False)
        fail_reply(store_id, playground, message_id, attempt, too_long, content="")
        delete_ticket(message_id)
        return "failed", store_id
    request = ChatRequest(
        model=settings.model,
        system_prompt=settings.system_prompt,
        messages=history,
        **settings.params(),
        **settings.tool_fields(),
    )
    parts: list[str] = []
    tool_calls: list[ToolCall] = []
    assembling = AssemblingCalls()
    pending: list[str] = []
    flushed = 0  # characters stored in ``partial`` and published so far
    usage = None
    first_token_ms = None
    outcome = "done"
    last_flush = 0.0

    def flush() -> tuple[bool, bool]:
        nonlocal pending, flushed, last_flush, store_id
        text = "".join(pending)
        store_id, (exists, stop) = following_moves(
            message_id,
            store_id,
            lambda at: conversations.flush(at, playground, message_id, attempt, text),
            lambda found: found[0],
        )
        if exists and text:
            publish(
                store_id, "message.delta", event(playground, message_id, attempt=attempt, text=text, offset=flushed)
            )
            flushed += len(text)
        if exists and assembling.changed:
            assembling.changed = False
            store_calls(store_id, playground, message_id, attempt, assembling.unstored())
            publish(
                store_id,
                "message.tool_calls",
                event(playground, message_id, attempt=attempt, calls=assembling.shown()),
            )
        pending = []
        last_flush = time.monotonic()
        return exists, stop

    stream = get_provider(settings.provider).stream(request)
    try:
        for item in stream:
            if isinstance(item, Usage):
                usage = item
                continue
            if isinstance(item, ToolCall):
                tool_calls.append(item)
                continue
            if isinstance(item, ToolCallDelta):
                assembling.add(item)
            elif item:
                if first_token_ms is None:
                    first_token_ms = int((time.monotonic() - started) * 1000)
                parts.append(item)
                pending.append(item)
            # Also on an event without text (a model thinking): Stop is seen there too.
            if time.monotonic() - last_flush >= FLUSH_SECONDS:
                exists, stop = flush()
                if not exists:
                    outcome = "dropped"
                    break
                if stop:
                    outcome = "stopped"
                    break
    except ProviderError as error:
        fail_reply(store_id, playground, message_id, attempt, str(error), content="".join(parts))
        budget.settle(hold, usage or estimate(hold, request, parts))
        raise
    except Exception:
        fail_reply(store_id, playground, message_id, attempt, INTERNAL_ERROR, content="".join(parts))
        budget.settle(hold, usage or estimate(hold, request, parts))
        raise
    except BaseException:  # SystemExit: the worker's cold shutdown (a second SIGTERM or Ctrl-C)
        fail_reply(store_id, playground, message_id, attempt, WORKER_SHUT_DOWN, content="".join(parts))
        raise
    finally:
        stream.close()  # ends the provider's HTTP stream when we leave early (Stop, Reset)
    if outcome == "dropped":
        delete_ticket(message_id)
        budget.settle(hold, usage or estimate(hold, request, parts))
        return outcome, store_id
    if pending:
        flush()
    content = "".join(parts)

    def to_final(message: Message) -> Message | None:
        if message.status != "streaming" or message.attempt != attempt:
            return None
        return msgspec.structs.replace(
            message,
            status=outcome,
            content=content,
            html=reply_html(request, content, tool_calls),
            tool_calls=tool_calls,
            usage=usage,
            first_token_ms=first_token_ms,
            latency_ms=int((time.monotonic() - started) * 1000),
            finished_at=time.time(),
            cost_usd=cost_usd(settings.provider, settings.model, usage),
            request=record_request(settings.provider, request, dropped),  # what was sent, keys as $VARIABLES
            history_dropped=dropped,
        )

    store_id, (final, changed) = following_moves(
        message_id, store_id, lambda at: conversations.change(at, playground, message_id, to_final), _present
    )
    if final is None or final.attempt == attempt:
        delete_ticket(message_id)  # not when a Retry replaced this attempt: the ticket is the next one's
    if hold is None:  # a ticket written before replies held their cost
        if changed:
            budget.record(user, final.usage, final.cost_usd)
    else:
        budget.settle(hold, usage or estimate(hold, request, parts))
    if not changed:
        return "dropped", store_id
    log_reply(final, playground)
    publish(
        store_id,
        f"message.{outcome}",
        event(
            playground,
            message_id,
            attempt=attempt,
            html=final.html,
            usage=msgspec.to_builtins(final.usage),
            first_token_ms=final.first_token_ms,
            latency_ms=final.latency_ms,
            cost_usd=final.cost_usd,
        ),
    )
    return outcome, store_id


def store_calls(store_id: str, playground: str, message_id: str, attempt: int, calls: list[ToolCall] | None) -> None:
    """Write the names of the tool calls a reply is making on its streaming record (when it lacks some), so
    what a page renders of it (a reload, the no-JS frame) says which tools it is calling."""
    if not calls:
        return

    def with_calls(message: Message) -> Message | None:
        if message.status != "streaming" or message.attempt != attempt:
            return None
        return msgspec.structs.replace(message, tool_calls=calls)

    services.conversations.change(store_id, playground, message_id, with_calls)


def reply_html(request: ChatRequest, content: str, tool_calls: list[ToolCall]) -> str:
    """A finished reply's HTML: its JSON formatted with a schema badge when structured output was asked
    for (and the reply is text, not tool calls), else its Markdown."""
    if request.response_format != "text" and not (tool_calls and not content):
        return render_structured(content, request.json_schema)
    return render_reply(content)


def estimate(hold, request: ChatRequest, parts: list[str]) -> Usage:
    """What a reply with no reported usage cost, about: the request's characters and the text streamed."""
    request_chars = len(request.system_prompt) + sum(len(turn[1]) for turn in request.messages)
    if request.tools or request.json_schema:  # billed as input too
        request_chars += len(json.dumps([request.tools, request.json_schema]))
    return budget.estimated_usage(hold, request_chars, sum(len(part) for part in parts))


def over_long(history: list[tuple[str, str]]) -> str | None:
    """The sentence refusing a request whose newest message is past MAX_MESSAGE_CHARS (the history cap keeps it whole)."""
    limit = current_app.config["MAX_MESSAGE_CHARS"]
    if history and len(history[-1][1]) > limit:
        return f"Messages are limited to {limit:,} characters; the one this reply answers has {len(history[-1][1]):,}."
    return None


def fail_reply(
    store_id: str, playground: str, message_id: str, attempt: int, error: str, content: str | None = None
) -> Message | None:
    """Mark attempt ``attempt`` of an open reply failed with a short reason, keeping the text written so far.

    ``content`` defaults to the reply's partial text. Publishes ``message.failed``; returns the
    failed message, or None if the reply was not open at that attempt.
    """
    conversations = services.conversations

    def mark_failed(at: str) -> tuple[Message | None, bool]:
        text = conversations.partial(at, message_id) if content is None else content

        def to_failed(message: Message) -> Message | None:
            if not message.is_open or message.attempt != attempt:
                return None
            # tool_calls: only the names of calls still streaming (``store_calls``); a failed reply has none.
            return msgspec.structs.replace(
                message,
                status="failed",
                error=error,
                content=text,
                html=render_reply(text),
                finished_at=time.time(),
                tool_calls=[],
            )

        return conversations.change(at, playground, message_id, to_failed)

    store_id, (failed, changed) = following_moves(message_id, store_id, mark_failed, _present)
    if not changed:
        return None
    log_reply(failed, playground)
    publish(store_id, "message.failed", event(playground, message_id, attempt=attempt, error=error, html=failed.html))
    return failed


def following_moves(
    message_id: str, store_id: str, operation: Callable[[str], T], found: Callable[[T], bool]
) -> tuple[str, T]:
    """Run ``operation`` on the reply's conversation under ``store``; return the store id it ran under and its result.

    When ``found(result)`` says the conversation is not there, a login may have given the session a
    new id: the reply's ticket names it (``store``) and the one before (``moved_from``, whose keys
    may not have moved yet), and the operation is tried there. Otherwise it was reset or deleted.
    """
    result = operation(store_id)
    if found(result):
        return store_id, result
    ticket = read_ticket(message_id)
    for other in (ticket.store_id, ticket.moved_from) if ticket else ():
        if other and other != store_id:
            again = operation(other)
            if found(again):
                return other, again
    return store_id, result


def _present(changed: tuple[Message | None, bool]) -> bool:
    return changed[0] is not None


# A worker writing a reply keeps a key alive (HEARTBEAT_TTL seconds, renewed four times per TTL);
# a reply "streaming" without it lost its worker (the backstop for a machine that vanished: a
# worker process that dies is reported at once by its supervisor, see ``job.work_horse_killed``).


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
    """Ids of open replies nobody will finish (shown failed, with Retry), found in one round trip.

    A streaming reply whose worker is gone (killed mid-turn: its heartbeat ran out), and a pending one
    with no ticket ``QUEUE_GRACE_SECONDS`` after it was stored: the web process stopped between storing
    it and queueing its job (the two are in different Redis databases), or its job waited past the ticket.
    """
    streaming = [message.id for message in messages if message.status == "streaming"]
    queued_before = time.time() - QUEUE_GRACE_SECONDS
    pending = [message.id for message in messages if message.status == "pending" and message.created_at < queued_before]
    if not streaming and not pending:
        return set()
    with services.jobs_redis.pipeline(transaction=False) as pipe:
        for message_id in streaming:
            pipe.exists(alive_key(message_id))
        for message_id in pending:
            pipe.exists(ticket_key(message_id))
        found = pipe.execute()
    return {message_id for message_id, exists in zip(streaming + pending, found) if not exists}


def log_reply(message, playground: str) -> None:
    """Log one finished reply: model, tokens, cost and latency (never its text or prompt)."""
    usage = message.usage
    logger.info(
        "reply %s %s",
        message.status,
        message.model,
        extra={
            "fields": {
                "event": "reply",
                "status": message.status,
                "provider": message.provider,
                "model": message.model,
                "playground": playground,
                "input_tokens": usage.input_tokens if usage else None,
                "output_tokens": usage.output_tokens if usage else None,
                "cached_tokens": usage.cached_tokens if usage else None,
                "cost_usd": message.cost_usd,
                "first_token_ms": message.first_token_ms,
                "latency_ms": message.latency_ms,
            }
        },
    )
