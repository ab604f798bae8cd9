"""Signing out: a session's sockets closed and its own replies stopped and conversations deleted (a
signed-in session keeps its work in the user's workspace, which stays); and every session of a user at
once, when the user is disabled or their password changes."""

from collections.abc import Iterable

from flask import current_app

from ..extensions import services
from ..store.user_sessions import take_user_sessions
from .control import request_stop, reset_conversation
from .live import disconnect_sockets


def stop_session(store_id: str, playgrounds: Iterable[str]) -> None:
    """Close the sockets of session ``store``, then stop its own open replies and delete its own conversations."""
    # Sockets first: the Reset's event would have an open tab fetch its messages with the old cookie,
    # and that answer could set the old id again in the browser after this one set the new one.
    disconnect_sockets(store_id)
    # A reply (a replay's turn, say) may be open in a playground the blob does not list yet.
    open_playgrounds = [playground for playground, _ in services.conversations.open_replies(store_id)]
    for playground in dict.fromkeys([*playgrounds, *open_playgrounds]):
        reset_conversation(store_id, playground)


def stop_workspace_replies(workspace_id: str) -> int:
    """Stop the open replies of a user's workspace (queued ones now, streaming ones at their next flush),
    keeping its conversations; return how many."""
    opened = services.conversations.open_replies(workspace_id)
    for playground, message_id in opened:
        request_stop(workspace_id, playground, message_id)
    return len(opened)


def sign_out_everywhere(user_id: int, keep: str | None = None) -> int:
    """End every session of a user (disabled, or a new password) but ``keep`` (a session's own store id):
    sockets, blobs; return how many. Their workspace stays; its open replies are stopped when no
    session is kept (the user was disabled), not when one goes on (a new password)."""
    interface = current_app.session_interface
    stores = take_user_sessions(user_id, keep)
    for store_id in stores:
        playgrounds = list((interface.stored_data(store_id) or {}).get("conversations", {}))
        stop_session(store_id, playgrounds)
        interface.delete_stored(store_id, playgrounds)
    if keep is None:
        stop_workspace_replies(interface.workspace_id(user_id))
    if stores:
        current_app.logger.info("user %s signed out of %d sessions", user_id, len(stores))
    return len(stores)
