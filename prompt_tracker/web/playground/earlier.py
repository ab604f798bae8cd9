"""The conversation kept from before sign-in: where the signed-in user already had one in a playground,
signing in keeps theirs and keeps the visitor's beside it (``store.workspaces.adopt``); the page
offers it as an export to download (and import to use), or to discard."""

import msgspec
from flask import abort, flash, g, redirect, session, url_for

from ...domain.keys import companion_playground
from ...domain.settings import PlaygroundSettings
from ...extensions import services
from ...replies import reset_conversation
from ...store.transfer import export_json
from ...store.workspaces import EARLIER, EARLIER_KIND
from . import bp
from .prompt import current_settings
from .routes import download


def earlier_playground() -> str:
    """The name of this playground's earlier copy (a conversation of the workspace like a Replay)."""
    return companion_playground(g.playground, EARLIER_KIND)


@bp.get("/earlier.json")
def export_earlier_json():
    """The conversation kept from before sign-in, as an export (what Import takes)."""
    messages = services.conversations.all(session.store_id, earlier_playground())
    if not messages:
        abort(404, "There is no conversation from before you signed in for this playground.")
    stored = session.get(EARLIER, {}).get(g.playground)
    try:
        settings = msgspec.convert(stored, PlaygroundSettings) if stored else current_settings(session)
    except msgspec.ValidationError:
        settings = current_settings(session)
    return download(export_json(g.playground, settings, messages), "json", "application/json")


@bp.post("/earlier/discard")
def discard_earlier():
    """Delete the conversation kept from before sign-in (the user's own stays as it is)."""
    reset_conversation(session.store_id, earlier_playground())
    earlier = dict(session.get(EARLIER, {}))
    if earlier.pop(g.playground, None) is not None or not earlier:
        session[EARLIER] = earlier
    flash("The conversation from before you signed in is deleted.", "info")
    return redirect(url_for(".index"), 303)
