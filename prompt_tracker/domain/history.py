"""The history cap: how much of a long conversation one request carries.

Each send resends the whole history, so without a cap a conversation's cost per send grows without
bound (a 620,000-character history was retried 20 times). The oldest messages are left out until the
rest fits ``MAX_HISTORY_CHARS``; the reply records how many, and the page says so under it.
"""

from .messages import Message

Turn = tuple[str, str]  # (role, text), as ``ChatRequest.messages`` holds them


def history_before(messages: list[Message], message_id: str) -> list[Turn]:
    """The turns a model is sent for the reply ``message_id``: everything before it that has text."""
    history = []
    for message in messages:
        if message.id == message_id:
            break
        if message.role == "user" or (message.status in ("done", "stopped") and message.content):
            history.append((message.role, message.content))
    return history


def cap_history(history: list[Turn], max_chars: int) -> tuple[list[Turn], int]:
    """The newest messages of ``history`` whose text fits ``max_chars``, and how many were left out.

    The newest message is always sent, however long (a send validated it). What is kept starts with
    a user or system message, never mid-turn with a reply, as providers expect.
    """
    if max_chars <= 0 or sum(len(text) for _, text in history) <= max_chars:
        return history, 0
    kept: list[Turn] = []
    total = 0
    for role, text in reversed(history):
        if kept and total + len(text) > max_chars:
            break
        kept.append((role, text))
        total += len(text)
    kept.reverse()
    while len(kept) > 1 and kept[0][0] == "assistant":
        kept.pop(0)
    return kept, len(history) - len(kept)
