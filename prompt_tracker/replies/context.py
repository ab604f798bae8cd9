"""Will the next request fit the model's context window? An estimate, said to be one, before a send.

The last reply's reported usage (input + output tokens) stands for the conversation up to it; what
came after it and the new message count at about four characters a token. A request never carries
more history than ``MAX_HISTORY_CHARS``, so the estimate is capped there too. A model whose window
the price data does not know gets no warning.
"""

import json

from flask import current_app

from ..domain.messages import Message, decode_message
from ..domain.pricing import context_window
from ..domain.refusals import Refused
from ..domain.settings import PlaygroundSettings
from ..store.conversations import ConversationStore

CHARS_PER_TOKEN = 4
RECENT_MESSAGES = 16  # where to look for the last reported usage (one LRANGE), before reading it all


class MayNotFit(Refused):
    """The request would likely not fit the model's context window: the same Send again goes ahead."""

    status = 409

    def __init__(self, sentence: str):
        super().__init__(sentence, overflow=True)


def check_fits(
    conversations: ConversationStore, store_id: str, playground: str, settings: PlaygroundSettings, new_text: str
) -> None:
    """Raise MayNotFit (with the warning) when the request with ``new_text`` would likely not fit."""
    warning = overflow_warning(conversations, store_id, playground, settings, new_text)
    if warning:
        raise MayNotFit(warning)


def fixed_text(settings: PlaygroundSettings) -> str:
    """What every request of these settings carries besides the history: the system prompt, and the tool
    definitions and response schema as sent (they count towards the window, and are billed, as input)."""
    fields = settings.tool_fields()
    sent = [fields["tools"], fields["json_schema"]] if fields["tools"] or fields["json_schema"] else []
    return settings.system_prompt + (json.dumps(sent, ensure_ascii=False) if sent else "")


def estimated_tokens(messages: list[Message], system_prompt: str, new_text: str, history_cap: int) -> int:
    """Tokens the next request would carry: the last reported usage plus about chars/4 of the rest."""
    base, after = None, messages
    for index in range(len(messages) - 1, -1, -1):
        usage = messages[index].usage
        if messages[index].role == "assistant" and usage is not None and usage.input_tokens:
            base, after = usage.input_tokens + usage.output_tokens, messages[index + 1 :]
            break
    later_chars = sum(len(message.content) for message in after) + len(new_text)
    if base is None:
        base = len(system_prompt) // CHARS_PER_TOKEN
    estimate = base + later_chars // CHARS_PER_TOKEN
    if history_cap > 0:  # the worker leaves the oldest messages out past the cap
        estimate = min(estimate, (len(system_prompt) + max(history_cap, len(new_text))) // CHARS_PER_TOKEN)
    return estimate


def recent_messages(conversations: ConversationStore, store_id: str, playground: str) -> list[Message]:
    """The latest messages, as far back as the last reported usage (the whole conversation if none is near)."""
    key = conversations.key(store_id, playground)
    recent = [decode_message(record) for record in conversations.redis.lrange(key, -RECENT_MESSAGES, -1)]
    if not any(m.usage is not None for m in recent) and len(recent) == RECENT_MESSAGES:
        recent = conversations.all(store_id, playground)  # no reported usage nearby: count the characters of it all
    return recent


def request_tokens(
    conversations: ConversationStore, store_id: str, playground: str, system_prompt: str, new_text: str
) -> int:
    """About how many tokens the next request of ``playground`` carries, with ``new_text`` added."""
    recent = recent_messages(conversations, store_id, playground)
    return estimated_tokens(recent, system_prompt, new_text, current_app.config["MAX_HISTORY_CHARS"])


def overflow_warning(
    conversations: ConversationStore, store_id: str, playground: str, settings: PlaygroundSettings, new_text: str
) -> str | None:
    """A sentence when the request with ``new_text`` would likely not fit the model's window; else None."""
    window = context_window(settings.provider, settings.model)
    if not window:
        return None
    recent = recent_messages(conversations, store_id, playground)
    tokens = estimated_tokens(
        recent, fixed_text(settings), new_text.replace("\r\n", "\n"), current_app.config["MAX_HISTORY_CHARS"]
    )
    if tokens + settings.max_tokens <= window:
        return None
    how = f"about {CHARS_PER_TOKEN} characters a token"
    if any(m.role == "assistant" and m.usage is not None and m.usage.input_tokens for m in recent):
        how = f"the last reply's reported usage, then {how}"
    return (
        f"This may not fit {settings.model}'s context window of {window:,} tokens: the request would be about "
        f"{tokens:,} tokens (an estimate: {how}) plus up to {settings.max_tokens:,} for the reply. "
        "Send again to send it anyway, or delete earlier messages first."
    )
