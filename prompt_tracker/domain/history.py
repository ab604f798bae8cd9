"""The history cap: how much of a long conversation one request carries.

Each send resends the whole history, so without a cap a conversation's cost per send grows without
bound (a 620,000-character history was retried 20 times). The oldest messages are left out until the
rest fits ``MAX_HISTORY_CHARS``; the reply records how many, and the page says so under it.
"""

import msgspec

from .messages import TOOL_ROLE, Message

Turn = tuple  # (role, text), or (role, text, extra) with tool fields, as ``ChatRequest.messages`` holds them


def history_before(messages: list[Message], message_id: str) -> list[Turn]:
    """The turns a model is sent for the reply ``message_id``: everything before it that has text."""
    history = []
    for message in messages:
        if message.id == message_id:
            break
        if message.role == TOOL_ROLE:
            history.append((message.role, message.content, {"tool_call_id": message.tool_call_id or ""}))
        elif message.tool_calls and message.status in ("done", "stopped"):
            calls = msgspec.to_builtins(message.tool_calls)
            history.append((message.role, message.content, {"tool_calls": calls}))
        elif message.role == "user" or (message.status in ("done", "stopped") and message.content):
            history.append((message.role, message.content))
    return history


def cap_history(history: list[Turn], max_chars: int) -> tuple[list[Turn], int]:
    """The newest messages of ``history`` whose text fits ``max_chars``, and how many were left out.

    The newest message is always sent, however long (a send validated it). What is kept starts with
    a user or system message, never mid-turn with a reply, as providers expect.
    """
    if max_chars <= 0 or sum(len(turn[1]) for turn in history) <= max_chars:
        return history, 0
    kept: list[Turn] = []
    total = 0
    for turn in reversed(history):
        if kept and total + len(turn[1]) > max_chars:
            break
        kept.append(turn)
        total += len(turn[1])
    kept.reverse()
    # A tool's result without the call it answers is refused by providers too.
    while len(kept) > 1 and kept[0][0] in ("assistant", TOOL_ROLE):
        kept.pop(0)
    return kept, len(history) - len(kept)
