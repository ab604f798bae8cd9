"""Edit a user message and resend: the turns after it go, and a new reply is queued as a send queues one."""

from collections.abc import Callable, Iterable

from flask import current_app

from ..domain.messages import Message, assistant_placeholder, user_message
from ..domain.refusals import Refused
from ..domain.settings import PlaygroundSettings
from ..extensions import services
from ..store.edits import resend_from
from .send import check_provider, enqueue_reply, one_submission, validate_content


class MessageGone(Refused, LookupError):
    """The message to edit is no longer in the conversation (edited or deleted meanwhile, or reset)."""

    status = 404

    def __init__(
        self,
        sentence: str = "That message is no longer in this conversation (edited or deleted, "
        "perhaps in another tab); your text is in the message box.",
    ):
        super().__init__(sentence)


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
    check_provider(settings.provider)  # an unknown provider fails before anything changes
    with one_submission(store_id, client_token):
        edited = user_message(content)
        placeholder = assistant_placeholder(
            settings.provider, settings.model, settings.params(), **settings.provenance()
        )
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
    if announce is not None:
        announce(edited, placeholder)
    enqueue_reply(store_id, playground, placeholder, settings, user)
    return edited, placeholder, dropped
