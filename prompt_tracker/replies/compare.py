"""Compare: while on, every send of a playground also goes to a second model or version, side by side.

The second model's conversation is a companion, ``<playground>~compare``: the same user messages
(same ids, so the page pairs each turn's two replies) and its own replies, so each model keeps its
own history, as two people asked the same questions would. Turning Compare on (or changing the
second model) starts the companion as a copy of the conversation so far; turning it off deletes
the companion and leaves the main conversation as it was. A main Reset resets the companion too.
Edits, deletes and imports in the main conversation are not copied: "Restart" copies it again.
"""

import time
from dataclasses import dataclass

import msgspec
from flask import current_app

from ..domain.keys import companion_playground
from ..domain.messages import Message, assistant_placeholder
from ..domain.refusals import Refused
from ..domain.settings import PlaygroundSettings
from ..extensions import services
from ..limits.models import check_model
from ..prompts.models import Prompt, PromptVersion
from ..store.conversations import ConversationFull, TooManyOpenReplies
from ..store.edits import replace_conversation
from .choice import Choice, load_choice, settings_for, store_choice
from .gate import admit, effective_settings, release, room_for
from .live import publish
from .send import QueueUnavailable, enqueue_reply

COMPARE = "compare"


def compare_playground(playground: str) -> str:
    """The conversation that holds ``playground``'s second model's replies."""
    return companion_playground(playground, COMPARE)


def compare_choice(session, playground: str) -> Choice | None:
    """The second model of ``playground``, or None while Compare is off."""
    return load_choice(session, COMPARE, playground)


def turn_on(
    session,
    store_id: str,
    playground: str,
    choice: Choice,
    current: PlaygroundSettings,
    prompt: Prompt | None,
    latest: PromptVersion | None,
    refresh_keys=(),
) -> int:
    """Compare with ``choice`` from now on; the companion starts as a copy of the conversation so far.

    Raises InvalidChoice, TemplateProblem or ModelNotAllowed (nothing changed). Returns how many messages were copied.
    """
    settings = settings_for(choice, current, prompt, latest)
    check_model(settings.provider, settings.model)
    companion = compare_playground(playground)
    services.conversations.clear(store_id, companion, stop_seconds=current_app.config["JOB_TIMEOUT"] + 60)
    copied = [message for message in services.conversations.all(store_id, playground) if not message.is_open]
    if copied:
        replace_conversation(services.conversations, store_id, companion, copied, refresh_keys=refresh_keys)
    store_choice(session, COMPARE, playground, choice)
    session.add_playground(companion)
    publish(store_id, "conversation.reset", {"playground": companion})
    return len(copied)


def turn_off(session, store_id: str, playground: str) -> None:
    """Stop comparing: the companion conversation goes; the main one stays as it is."""
    store_choice(session, COMPARE, playground, None)
    reset_companion(store_id, playground)


def reset_companion(store_id: str, playground: str) -> None:
    """Delete the companion conversation (a main Reset, or Compare turned off); its open reply stops."""
    companion = compare_playground(playground)
    services.conversations.clear(store_id, companion, stop_seconds=current_app.config["JOB_TIMEOUT"] + 60)
    publish(store_id, "conversation.reset", {"playground": companion})


def prepare(
    session,
    playground: str,
    current: PlaygroundSettings,
    prompt: Prompt | None,
    latest: PromptVersion | None,
    user: str | None = None,
) -> PlaygroundSettings | None:
    """Before a send: the second model's settings while Compare is on (None when off), checked.

    Raises InvalidChoice, TemplateProblem, ModelNotAllowed, or TooManyOpenReplies when ``user`` has
    no room for two more open replies, so a refused send queues nothing at all. (The second reply
    passes the gate itself in ``mirror``.)
    """
    choice = compare_choice(session, playground)
    if choice is None:
        return None
    settings = effective_settings(settings_for(choice, current, prompt, latest))
    if not room_for(user, 2):
        raise TooManyOpenReplies(services.conversations.too_many_open_for(current_app.config["MAX_OPEN_REPLIES"]))
    return settings


def mirror(
    store_id: str, playground: str, sent: Message, settings: PlaygroundSettings, user: str | None, refresh_keys=()
) -> Message | None:
    """After a send: the same user message and a pending reply in the companion, queued with ``settings``.

    The reply passes the gate; if it is refused there (a limit reached meanwhile), or the companion
    is full, its reply is recorded as failed with the reason (nothing queued). Returns the companion's reply.
    """
    companion = compare_playground(playground)
    admission = None
    try:
        admission = admit(user, settings, store_id, companion, answers=sent.content, new_text=sent.content)
        settings = admission.settings
        reply = assistant_placeholder(settings.provider, settings.model, settings.params(), **settings.provenance())
        services.conversations.append(store_id, companion, sent, reply, refresh_keys=refresh_keys)
    except (Refused, ConversationFull) as problem:
        release(admission)
        reply = assistant_placeholder(settings.provider, settings.model, settings.params(), **settings.provenance())
        reply = msgspec.structs.replace(reply, status="failed", error=str(problem), finished_at=time.time())
        try:
            services.conversations.append(store_id, companion, sent, reply)
        except ConversationFull:
            return None
    publish(store_id, "message.appended", {"playground": companion, "ids": [sent.id, reply.id]})
    if reply.is_open:
        try:
            enqueue_reply(store_id, companion, reply, admission, user)
        except QueueUnavailable:
            pass  # the reply is marked failed, with Retry
    return reply


@dataclass
class Pair:
    """One turn on the Compare page: the user's message, the main reply and the second model's."""

    user: Message | None  # None for a message that is not a turn (system text, an example)
    left: Message | None
    right: Message | None
    note: Message | None = None

    @property
    def copied(self) -> bool:
        """The turn predates Compare: the second column holds a copy of the first."""
        return self.left is not None and self.right is not None and self.left.id == self.right.id


def pairs(main: list[Message], companion: list[Message]) -> list[Pair]:
    """Pair each user turn of ``main`` with its reply there and the companion's reply to the same message."""
    answers = {}
    for message, after in zip(companion, companion[1:]):
        if message.role == "user" and after.role == "assistant":
            answers[message.id] = after
    rows = []
    index = 0
    while index < len(main):
        message = main[index]
        after = main[index + 1] if index + 1 < len(main) else None
        if message.role == "user":
            left = after if after is not None and after.role == "assistant" else None
            rows.append(Pair(message, left, answers.get(message.id)))
            index += 2 if left else 1
            continue
        rows.append(Pair(None, None, None, note=message))
        index += 1
    return rows
