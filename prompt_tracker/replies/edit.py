"""Edit a user message and resend: the turns after it go, and a new reply is queued as a send queues one."""

from collections.abc import Callable, Iterable

from flask import current_app

from ..domain.messages import Message, decode_message, user_message
from ..domain.refusals import Refused
from ..domain.settings import PlaygroundSettings
from ..extensions import services
from ..store.edits import resend_from
from .gate import admit, release
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
