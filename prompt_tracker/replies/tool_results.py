"""Answering a reply's tool calls: a ``tool`` message per call and, once every call of the reply is
answered, the next reply, queued through the same gate and pipeline as a send (one provider call).

By hand (the form under each call) or by the worker with the tools' mocks (``auto_mock``). The reply
records which of its calls are answered (``answered_calls``): marking one is a compare-and-set on the
record, so a call is answered once, and only the answer that completes the set queues the next reply.
"""

import json
import time
from collections.abc import Callable, Iterable

import msgspec
from flask import current_app

from ..domain.messages import TOOL_ROLE, Message, decode_message, new_message_id
from ..domain.refusals import Refused
from ..domain.settings import PlaygroundSettings
from ..extensions import services
from ..providers import ToolCall
from ..store.conversations import ConversationFull
from .gate import admit, release
from .live import publish
from .send import InvalidMessage, enqueue_reply, placeholder_for

# Rounds of calls answered with mocks in a row before the next round waits for the user.
MAX_AUTO_ROUNDS = 3
ROUNDS_REACHED = (
    f"Answered with mocks {MAX_AUTO_ROUNDS} rounds in a row: these calls wait for you "
    "(a model that keeps calling tools would never stop)."
)


class CannotAnswer(Refused):
    """The tool call cannot be answered (answered already, the reply is not finished, the conversation went on)."""

    status = 409


class NoSuchReply(Refused):
    status = 404


def tool_message(tool_call_id: str, content: str) -> Message:
    """The record of a tool's result, answering call ``tool_call_id``."""
    return Message(
        id=new_message_id(), role=TOOL_ROLE, content=content, tool_call_id=tool_call_id, created_at=time.time()
    )


def check_result(content: str | None) -> str:
    """The result to store, or InvalidMessage saying what is wrong with it."""
    limit = current_app.config["MAX_MESSAGE_CHARS"]
    content = (content or "").replace("\r\n", "\n")
    if not content.strip():
        raise InvalidMessage("Give the tool's result before answering the call.")
    if len(content) > limit:
        raise InvalidMessage(f"Tool results are limited to {limit:,} characters; this one has {len(content):,}.")
    return content


def answerable(conversation: list[Message], message_id: str, tool_call_id: str) -> Message:
    """The reply whose call ``tool_call_id`` may be answered now, or the refusal that says why not."""
    index = next((i for i, message in enumerate(conversation) if message.id == message_id), None)
    if index is None:
        raise NoSuchReply("That reply is no longer in this conversation.")
    message = conversation[index]
    if message.role != "assistant" or all(call.id != tool_call_id for call in message.tool_calls):
        raise CannotAnswer("That reply made no such tool call.")
    if message.status != "done":
        raise CannotAnswer("Only the tool calls of a finished reply can be answered.")
    if tool_call_id in message.answered_calls:
        raise CannotAnswer("That tool call is already answered.")
    ids = {call.id for call in message.tool_calls}
    if any(later.role != TOOL_ROLE or later.tool_call_id not in ids for later in conversation[index + 1 :]):
        raise CannotAnswer("The conversation went on after this reply: its tool calls can no longer be answered.")
    return message


def answer_tool_call(
    store_id: str,
    playground: str,
    message_id: str,
    tool_call_id: str,
    content: str | None,
    settings: PlaygroundSettings,
    user: str | None,
    refresh_keys: Iterable[str] = (),
    announce: Callable[[Message, Message, Message | None], None] | None = None,
    auto_rounds: int = 0,
    **replay_fields,
) -> tuple[Message, Message, Message | None]:
    """Append the ``tool`` message answering call ``tool_call_id`` of reply ``message_id``; when it is the
    last call unanswered, append and queue the next reply too. Return (the reply as now stored, the tool
    message, the next reply or None).

    ``announce(reply, result, next_reply)`` runs once they are stored, before the next reply is queued.
    ``auto_rounds``: the rounds answered with mocks before this one (0 by hand); ``replay_fields``: a
    replay's ticket fields, so the next reply carries the replay on (``enqueue_reply``). Raises InvalidMessage,
    NoSuchReply, CannotAnswer (409: answered already, by another tab or a double click), the gate's
    refusals (nothing stored) and QueueUnavailable (stored, the next reply failed with Retry).
    """
    content = check_result(content)
    conversation = services.conversations.all(store_id, playground)
    message = answerable(conversation, message_id, tool_call_id)
    calls = [call.id for call in message.tool_calls]
    completes = set(calls) <= {*message.answered_calls, tool_call_id}
    # The gate before anything is stored: the next reply is admitted on what it will send.
    admission = admit(user, settings, store_id, playground, answers=content, new_text=content) if completes else None

    def mark(current: Message) -> Message | None:
        if current.attempt != message.attempt or tool_call_id in current.answered_calls:
            return None
        answered = [call for call in calls if call in {*current.answered_calls, tool_call_id}]  # in call order
        return msgspec.structs.replace(current, answered_calls=answered, tool_note=None)

    try:
        marked, changed = services.conversations.change(store_id, playground, message_id, mark)
        if marked is None:
            raise NoSuchReply("That reply is no longer in this conversation.")
        if not changed:
            raise CannotAnswer("That tool call is already answered.")
        result = tool_message(tool_call_id, content)
        completes = set(calls) <= set(marked.answered_calls)
        if not completes:
            release(admission)
            admission = None
        elif admission is None:  # another answer landed meanwhile: this one completes the set after all
            admission = admit(user, settings, store_id, playground, answers=content, new_text=content)
        reply = placeholder_for(admission) if admission is not None else None
        try:
            if insert_in_call_order(store_id, playground, calls, result):
                if reply is not None:
                    services.conversations.append(store_id, playground, reply, refresh_keys=refresh_keys)
            else:
                services.conversations.append(
                    store_id, playground, *([result, reply] if reply else [result]), refresh_keys=refresh_keys
                )
        except BaseException:
            services.conversations.change(store_id, playground, message_id, unmark(tool_call_id))
            raise
    except BaseException:
        release(admission)
        raise
    if announce is not None:
        announce(marked, result, reply)
    if reply is not None:
        enqueue_reply(store_id, playground, reply, admission, user, auto_rounds=auto_rounds, **replay_fields)
    return marked, result, reply


def insert_in_call_order(store_id: str, playground: str, calls: list[str], result: Message) -> bool:
    """Put ``result`` before the results of calls made after its own (answered first), so the results
    follow the calls' order; False when none is there (the caller appends it)."""
    conversations = services.conversations
    position = calls.index(result.tool_call_id)
    later = set(calls[position + 1 :])
    if not later:
        return False
    raw = conversations.redis.lrange(conversations.key(store_id, playground), -len(calls), -1)
    tail = [decode_message(item) for item in raw]  # the results so far: nothing else follows the reply
    pivot = next((m for m in tail if m.role == TOOL_ROLE and m.tool_call_id in later), None)
    if pivot is None:
        return False
    if conversations.count(store_id, playground) >= conversations.max_messages:
        raise ConversationFull(
            f"This conversation has reached its limit of {conversations.max_messages} messages. "
            "Press Reset to start a new one."
        )
    found = conversations.find(store_id, playground, pivot.id)
    return found is not None and conversations.insert_before(store_id, playground, found[1], result)


def unmark(tool_call_id: str) -> Callable[[Message], Message | None]:
    """Forget that a call was answered (its tool message could not be stored)."""

    def change(current: Message) -> Message | None:
        if tool_call_id not in current.answered_calls:
            return None
        return msgspec.structs.replace(current, answered_calls=[c for c in current.answered_calls if c != tool_call_id])

    return change


def mock_result(settings: PlaygroundSettings, name: str) -> str | None:
    """The mock of tool ``name`` as a tool result (JSON text unless it is a string), or None without one."""
    tool = next((tool for tool in settings.tools if tool.get("name") == name), None)
    if tool is None or "mock" not in tool:
        return None
    mock = tool["mock"]
    return mock if isinstance(mock, str) else json.dumps(mock, ensure_ascii=False)


def answer_with_mocks(
    store_id: str,
    playground: str,
    message_id: str,
    settings: PlaygroundSettings,
    user: str | None,
    rounds: int,
    **replay_fields,
) -> int:
    """After a reply ended with tool calls (``auto_mock`` on): answer each call whose tool has a mock; when
    they are all answered the next reply is queued. A call without a mock waits for the user. Past
    MAX_AUTO_ROUNDS rounds in a row nothing is answered and the reply says why. Returns the calls answered.
    """
    message = services.conversations.get(store_id, playground, message_id)
    if message is None or message.status != "done" or not message.tool_calls:
        return 0
    if rounds >= MAX_AUTO_ROUNDS:

        def say(current: Message) -> Message | None:
            return msgspec.structs.replace(current, tool_note=ROUNDS_REACHED) if current.tool_calls else None

        services.conversations.change(store_id, playground, message_id, say)
        announce_changed(store_id, playground, message_id)
        return 0
    answered = 0
    for call in message.tool_calls:
        content = mock_result(settings, call.name)
        if content is None or not content.strip():
            continue
        try:
            answer_tool_call(
                store_id,
                playground,
                message_id,
                call.id,
                content,
                settings,
                user,
                announce=lambda marked, result, reply: announce_answered(store_id, playground, marked, result, reply),
                auto_rounds=rounds + 1,
                **replay_fields,
            )
        except Refused as refusal:  # answered by hand meanwhile, or the gate refused the next reply
            current_app.logger.info("tool call %s not answered with its mock: %s", call.id, refusal.sentence)
            continue
        answered += 1
    return answered


def announce_changed(store_id: str, playground: str, message_id: str) -> None:
    publish(store_id, "message.changed", {"playground": playground, "id": message_id})


def announce_answered(store_id: str, playground: str, marked: Message, result: Message, reply: Message | None) -> None:
    """Tell the session's tabs: the reply changed (its answered call has no form now), new messages follow."""
    announce_changed(store_id, playground, marked.id)
    ids = [result.id, *([reply.id] if reply else [])]
    publish(store_id, "message.appended", {"playground": playground, "ids": ids, "message_id": ids[-1]})


def parse_tool_calls(text: str | None) -> list[ToolCall]:
    """The tool calls of a reply added by hand (a JSON list of ``{"name", "arguments", "id"?}``), or
    InvalidMessage saying what is wrong; an empty field is no calls."""
    if not (text or "").strip():
        return []
    try:
        items = json.loads(text)
    except ValueError as error:
        raise InvalidMessage(f"The tool calls are not valid JSON: {error}.") from None
    if not isinstance(items, list):
        raise InvalidMessage('Give the tool calls as a JSON list: [{"name": "…", "arguments": {…}}].')
    calls = []
    for number, item in enumerate(items, 1):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str) or not name.strip():
            raise InvalidMessage(f"Tool call {number} needs a name.")
        arguments = item.get("arguments", {})
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments, ensure_ascii=False)
        call_id = item.get("id") or f"call_{new_message_id()}"
        if not isinstance(call_id, str):
            raise InvalidMessage(f"Tool call {number}'s id must be a string.")
        calls.append(ToolCall(id=call_id, name=name.strip(), arguments=arguments))
    return calls


def call_maker(store_id: str, playground: str, tool_call_id: str) -> Message | None:
    """The latest reply that made call ``tool_call_id``, or None."""
    conversation = services.conversations.all(store_id, playground)
    return next((m for m in reversed(conversation) if any(call.id == tool_call_id for call in m.tool_calls)), None)


def forget_answer(store_id: str, playground: str, tool_call_id: str) -> str | None:
    """A tool message was deleted: the call it answered shows its form again. Returns the reply's id, or None."""
    maker = call_maker(store_id, playground, tool_call_id)
    if maker is None or tool_call_id not in maker.answered_calls:
        return None
    services.conversations.change(store_id, playground, maker.id, unmark(tool_call_id))
    return maker.id


def mark_answered(store_id: str, playground: str, tool_call_id: str) -> str | None:
    """Record that call ``tool_call_id`` of the latest reply that made it is answered (a tool message added
    by hand: no reply is queued). Returns that reply's id, or None when no reply made the call."""
    maker = call_maker(store_id, playground, tool_call_id)
    if maker is None:
        return None

    def mark(current: Message) -> Message | None:
        if tool_call_id in current.answered_calls:
            return None
        calls = [call.id for call in current.tool_calls]
        answered = [call for call in calls if call in {*current.answered_calls, tool_call_id}]
        return msgspec.structs.replace(current, answered_calls=answered)

    services.conversations.change(store_id, playground, maker.id, mark)
    return maker.id
