"""Edit a message. A user message is resent: the turns after it go, and a new reply is queued as a
send queues one. A system or assistant message (few-shot examples, a reply) changes in place, and no
model is called: a model's reply keeps its text as an alternative attempt (‹ 1/2 ›)."""

import time
from collections.abc import Callable, Iterable

import msgspec
from flask import current_app

from ..domain.messages import Alternative, AttemptResult, Message, decode_message, user_message
from ..domain.refusals import Refused
from ..domain.rendering import render_reply
from ..domain.settings import PlaygroundSettings
from ..extensions import services
from ..store.edits import resend_from
from .gate import admit, release
from .live import publish
from .reply import event
from .send import enqueue_reply, one_submission, placeholder_for, validate_content


class MessageGone(Refused, LookupError):
    """The message to edit is no longer in the conversation (edited or deleted meanwhile, or reset)."""

    status = 404

    def __init__(
        self,
        sentence: str = "That message is no longer in this conversation (edited or deleted, "
        "perhaps in another tab); your text is in the message box.",
    ):
        super().__init__(sentence)


def open_replies_after(store_id: str, playground: str, message_id: str) -> int:
    """How many replies after ``message_id`` are open: an edit stops them, so they leave room for its reply."""
    conversations = services.conversations
    found = conversations.find(store_id, playground, message_id)
    if found is None:
        return 0
    tail = conversations.redis.lrange(conversations.key(store_id, playground), found[0] + 1, -1)
    return sum(1 for record in tail if (message := decode_message(record)).role == "assistant" and message.is_open)


def edit_and_resend(
    store_id: str,
    playground: str,
    message_id: str,
    content: str,
    settings: PlaygroundSettings,
    removals_confirmed: int,
    user: str | None,
    refresh_keys: Iterable[str] = (),
    client_token: str | None = None,
    announce: Callable[[Message, Message], None] | None = None,
) -> tuple[Message, Message, list[Message]]:
    """Replace a user message's text, drop the messages after it, queue a new reply; return (edited, reply, dropped).

    The edited message gets a new id, so a second tab's form for the old text finds it gone rather than
    undoing this edit. Open replies among the dropped messages are stopped. Raises InvalidMessage,
    UnknownProvider, MessageGone, NotAUserMessage, UnconfirmedRemoval, ConversationFull or
    TooManyOpenReplies with nothing changed, DuplicateSend when ``client_token`` (the edit form's
    submission) was used, and QueueUnavailable when the edit is stored but the reply not queued.
    """
    content = validate_content(content, status=400)  # an edit's text is refused as a bad request (a send's, 422)
    # The gate, before anything changes (the reply's history is the conversation up to the edited message).
    admission = admit(
        user,
        settings,
        store_id,
        playground,
        answers=content,
        new_text=content,
        replacing=open_replies_after(store_id, playground, message_id),
    )
    try:
        with one_submission(store_id, client_token):
            edited = user_message(content)
            placeholder = placeholder_for(admission)
            dropped = resend_from(
                services.conversations,
                store_id,
                playground,
                message_id,
                edited,
                placeholder,
                removals_confirmed,
                refresh_keys=refresh_keys,
                stop_seconds=current_app.config["JOB_TIMEOUT"] + 60,
            )
            if dropped is None:
                raise MessageGone()
    except BaseException:
        release(admission)
        raise
    if announce is not None:
        announce(edited, placeholder)
    enqueue_reply(store_id, playground, placeholder, admission, user)
    return edited, placeholder, dropped


class StillBeingWritten(Refused):
    """A reply still queued or being written cannot be edited (its worker would overwrite the text)."""

    status = 409

    def __init__(self, sentence: str = "This reply is still being written; edit it once it has finished."):
        super().__init__(sentence)


def edit_in_place(
    store_id: str, playground: str, message_id: str, content: str, render: Callable[[str], str] = render_reply
) -> Message:
    """Change the text of a system or assistant message where it is; nothing after it goes, no model is called.

    A reply a model wrote keeps its text as an alternative (the page switches back with ‹ ›); text
    written by hand (an added message, an earlier edit) is replaced. Every tab hears of it
    (``message.changed``). Raises InvalidMessage (400), MessageGone, StillBeingWritten, or a 409 for
    a user message (those are resent: ``edit_and_resend``). ``render`` renders a reply's Markdown (the
    web passes one that runs off its event loop).
    """
    content = validate_content(content, status=400)
    rendered = []  # once, though the compare-and-set may call the change again

    def reply_html() -> str:
        if not rendered:
            rendered.append(render(content))
        return rendered[0]

    def edited(message: Message) -> Message | None:
        if message.role == "user":
            raise Refused("Your own messages are resent when edited.", 409)
        if message.is_open:
            raise StillBeingWritten()
        if message.content == content:
            return None
        if message.role == "system":
            return msgspec.structs.replace(message, content=content)
        if message.provider is None:  # written by hand: replaced (its earlier attempts stay)
            return msgspec.structs.replace(message, content=content, html=reply_html(), status="done", error=None)
        # A model's reply: kept as an attempt; the text written by hand is the next attempt.
        written = AttemptResult(content=content, html=reply_html(), finished_at=time.time())
        return msgspec.structs.replace(
            message,
            **msgspec.structs.asdict(written),
            attempt=message.next_attempt(),
            alternatives=sorted([*message.alternatives, Alternative.of(message)], key=lambda a: a.attempt),
            request=None,
            history_dropped=0,
            version=None,
            draft=False,
            variables=None,
            diff=None,
        )

    message, changed = services.conversations.change(store_id, playground, message_id, edited)
    if message is None:
        raise MessageGone("That message is no longer in this conversation (edited or deleted, perhaps in another tab).")
    if changed:
        publish(store_id, "message.changed", event(playground, message_id))
    return message
