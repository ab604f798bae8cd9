"""Save as test case: a reply of a prompt's playground, with the conversation before it, becomes a test case."""

from flask import abort, flash, g, redirect, session, url_for

from ...domain.refusals import Refused
from ...evals.cases import create_case, unused_name
from ...extensions import services
from ..errors import refusals_shown_by
from ..identity import current_actor
from . import bp
from .prompt import current_settings
from .routes import flash_back

NAME_WORDS = 6


class CannotSaveCase(Refused):
    """This message cannot become a test case; the sentence says why."""

    status = 409


def case_message(message) -> dict:
    """A conversation record as a case's message: role and content, its tool calls or the call it answers."""
    record = {"role": message.role, "content": message.content}
    if message.tool_calls:
        record["tool_calls"] = [
            {"id": call.id, "name": call.name, "arguments": call.arguments} for call in message.tool_calls
        ]
    if message.tool_call_id:
        record["tool_call_id"] = message.tool_call_id
    return record


def case_from_conversation(conversation, message_id: str, variables: dict) -> dict:
    """The case a reply makes: the messages before it, the variables, its text (the chosen attempt) as expected.

    A reply with tool calls expects them (a ``tool_called`` check per call). A failed or stopped reply
    earlier in the conversation, with no text and no calls, is left out (it sent nothing onwards).
    """
    index = next((index for index, message in enumerate(conversation) if message.id == message_id), None)
    if index is None:
        raise CannotSaveCase("That reply is no longer in this conversation.", 404)
    reply = conversation[index]
    if reply.role != "assistant" or reply.status != "done":
        raise CannotSaveCase("Only a finished reply can be saved as a test case.")
    before = [
        case_message(message)
        for message in conversation[:index]
        if message.role != "assistant" or message.content.strip() or message.tool_calls
    ]
    return {
        "name": default_name(before),
        "variables": {name: value for name, value in variables.items() if value != ""},
        "messages": before,
        "expected": reply.content or None,
        "checks": [{"type": "tool_called", "name": call.name} for call in reply.tool_calls],
        "tags": [],
    }


def default_name(messages: list[dict]) -> str:
    """The first words of the last user message (or "Case")."""
    last = next((message["content"] for message in reversed(messages) if message["role"] == "user"), "")
    words = last.split()
    name = " ".join(words[:NAME_WORDS]) + ("…" if len(words) > NAME_WORDS else "")
    return name or "Case"


@bp.post("/messages/<message_id>/save-case")
@refusals_shown_by(flash_back)
def save_case(message_id):
    """Save a reply of a prompt's playground as a test case of the prompt; 303 to the case's form."""
    if g.get("prompt") is None:
        abort(404, "Save as test case works in a prompt's playground: save the conversation as a prompt first.")
    conversation = services.conversations.all(session.store_id, g.playground)
    reply = next((message for message in conversation if message.id == message_id), None)
    # The values that wrote the reply (recorded on it), else those the playground holds now.
    variables = reply.variables if reply is not None and reply.variables is not None else None
    fields = case_from_conversation(conversation, message_id, variables or current_settings(session).variables)
    fields["name"] = unused_name(g.prompt, fields["name"])
    case = create_case(g.prompt, fields, actor=current_actor())
    flash(f"Saved as test case “{case.name}”.", "info")
    return redirect(url_for("evals.case_form", slug=g.prompt.slug, case_id=case.id), 303)
