"""Edit a user message and resend: the turns after it go, and a new reply is queued as a send queues one."""

from collections.abc import Callable, Iterable

from flask import current_app

from ..domain.keys import CLIENT_TOKEN_PATTERN
from ..domain.messages import Message, assistant_placeholder, user_message
from ..domain.settings import PlaygroundSettings
from ..extensions import services
from ..providers import get_provider
from ..store.edits import resend_from
from .send import DuplicateSend, enqueue_reply, validate_content


class MessageGone(LookupError):
    """The message to edit is no longer in the conversation (edited or deleted meanwhile, or reset)."""


def edit_and_resend(
    store: str,
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
    MessageGone, NotAUserMessage, UnconfirmedRemoval, ConversationFull or TooManyOpenReplies with
    nothing changed, and DuplicateSend when ``client_token`` (the edit form's submission) was used.
    """
    content = validate_content(content)
    get_provider(settings.provider)  # an unknown provider fails before anything changes
    token = client_token if client_token and CLIENT_TOKEN_PATTERN.match(client_token) else None
    if token and not services.store.mark_submission(store, token):
        raise DuplicateSend()
    edited = user_message(content)
    placeholder = assistant_placeholder(settings.provider, settings.model, settings.params(), **settings.provenance())
    try:
        dropped = resend_from(
            services.store,
            store,
            playground,
            message_id,
            edited,
            placeholder,
            removals_confirmed,
            refresh_keys=refresh_keys,
            stop_seconds=current_app.config["JOB_TIMEOUT"] + 60,
        )
        if dropped is None:
            raise MessageGone(message_id)
    except Exception:
        if token:
            services.store.forget_submission(store, token)
        raise
    if announce is not None:
        announce(edited, placeholder)
    enqueue_reply(store, playground, placeholder, settings, user)
    return edited, placeholder, dropped
