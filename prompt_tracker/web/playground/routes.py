"""Views of the playground page: thin wrappers over ``turns`` and the settings helpers."""

import secrets
import time
from dataclasses import dataclass, field

import msgspec
from flask import (
    Response,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_wtf.csrf import generate_csrf

from ...domain.messages import ROLES, TOOL_ROLE, Message, new_message_id
from ...domain.recorded_request import HISTORY_CHANGED, curl_command, request_json, sent_request
from ...domain.refusals import Refused
from ...domain.rendering import render_reply
from ...domain.settings import (
    MAX_MODEL_CHARS,
    MAX_TOKENS_RANGE,
    TEMPERATURE_RANGE,
    SettingsChanged,
    StaleSettings,
    check_settings_shown,
    settings_version,
    store_settings,
)
from ...extensions import limiter, services
from ...limits import TooManySends, limit_sentence
from ...limits.rate import SENDS
from ...prompts.settings import variables_panel
from ...providers import available_providers, setup_hint
from ...replies import (
    InvalidMessage,
    compare,
    dead_replies,
    live,
    request_stop,
    reset_conversation,
    retry_reply,
    send_message,
    stop_open_replies,
    validate_content,
)
from ...replies.context import MayNotFit, check_fits
from ...replies.control import CannotChoose, choose_attempt
from ...replies.edit import edit_and_resend, edit_in_place
from ...replies.tool_results import answer_tool_call, forget_answer, mark_answered, parse_tool_calls
from ...store.edits import delete_message, removed_with, replace_conversation
from ...store.transfer import export_json, export_markdown, parse_import
from ..errors import answer_refusal, refusals_shown_by, wants_json
from ..headers import framed_by_own_pages
from ..off_loop import off_the_event_loop
from ..rate_limits import charged, limit_owner, not_queued, user_key
from . import bp
from .forms import MessageForm, SettingsForm, param_range, providers_with_param
from .fragments import message_macro, messages_html, settings_panel, with_page_values
from .prompt import (
    add_slug,
    current_settings,
    open_playground,
    publish_settings_saved,
    settings_to_send_now,
)

# /playground is the standalone playground; the same views serve /prompts/<slug>/playground.
bp.url_value_preprocessor(open_playground)
bp.url_defaults(add_slug)
bp.add_app_template_global(providers_with_param)
bp.add_app_template_global(param_range)
bp.add_app_template_global(setup_hint, "provider_setup_hint")


def back_to_page(anchor: str | None = None, **query):
    """Post/redirect/get: 303 back to the playground."""
    return redirect(url_for(".index", _anchor=anchor, **query), 303)


def flash_back(refusal):
    """A refusal of a form whose page has nothing typed to keep: the sentence as a flash, back to the page."""
    if refusal.sentence:
        flash(refusal.sentence, "error")
    return back_to_page()


def render_playground(
    message_form=None,
    settings_form=None,
    status=200,
    editing=None,
    end=None,
    overflow=None,
    settings_conflict=False,
    settings_changed=None,
):
    """Render the page: settings, the latest window of the conversation, the composer.

    ``editing`` (an EditState) shows that user message as an edit form; ``end`` overrides ``?before=``;
    ``overflow`` is the context-window warning the composer shows (its next Send confirms it);
    ``settings_changed`` the sentence of a Send held because another tab saved settings meanwhile.
    """
    end = request.args.get("before", type=int) if end is None else end
    if end is not None:
        # Past any conversation's length (however large the number): the latest page, below.
        end = max(0, min(end, current_app.config["MAX_CONVERSATION_MESSAGES"] + 1))
    window = current_app.session_interface.read_window(
        session, g.playground, current_app.config["PAGE_WINDOW"], end, current_app.config["PAGE_WINDOW_BYTES"]
    )
    if end is not None and end > window.total:
        return redirect(url_for(".index"))  # a window past the end (an old link): show the latest
    settings = current_settings(session)  # after the window: a signed-in user's workspace is read with it
    if editing is not None and end is None and all(m.id != editing.id for m in window.messages):
        # The message being edited is older than the latest window: show the window that ends with it.
        return render_playground(
            message_form, settings_form, status, editing, editing.index + 1, overflow, settings_changed=settings_changed
        )
    messages = [with_partial(message, window.partials) for message in window.messages]
    stale = stale_ids(messages)
    csrf_token = generate_csrf()
    panel = {
        "settings": settings,
        "providers": available_providers(),
        "limits": {"temperature": TEMPERATURE_RANGE, "max_tokens": MAX_TOKENS_RANGE, "model_chars": MAX_MODEL_CHARS},
        "settings_digest": settings_version(settings),  # what the stale-form notice compares
        "settings_version": settings_version(settings),
        "settings_conflict": settings_conflict,
    }
    return render_template(
        "playground/index.html",
        window=window,
        messages=messages,
        # The stored fragments joined (the macro runs only for open messages and old records).
        messages_html=messages_html(
            messages, csrf_token, url_for(".send"), stale, editing, " " * 8, settings_version(settings)
        ),
        # The saved settings as saved: rendered once per distinct settings; a form with errors, each time.
        settings_panel=None if settings_form else settings_panel(panel, url_for(".save_settings"), csrf_token),
        settings_form=settings_form,
        message_form=message_form or MessageForm(formdata=None),
        client_token=secrets.token_urlsafe(16),
        lifetime_hours=services.conversations.ttl_for(session.store_id) // 3600,  # a user's workspace: longer
        playground=g.playground,
        editing=editing,
        overflow=overflow,
        settings_changed=settings_changed,
        **panel,
    ), status


def with_partial(message, partials: dict):
    """A reply being written, with the text it has streamed so far as its content."""
    if message.status == "streaming" and message.id in partials:
        return msgspec.structs.replace(message, content=partials[message.id])
    return message


def stale_ids(messages) -> set[str]:
    """Ids of replies whose worker died mid-turn (shown as failed, with Retry)."""
    return dead_replies(messages)


def render_messages(*messages, editing=None) -> str:
    """HTML of some messages, as the page shows them (for the page's script)."""
    return messages_html(messages, generate_csrf(), url_for(".send"), stale_ids(messages), editing)


@bp.get("")
def index():
    return render_playground()


def sends_limit() -> str:
    return current_app.config["RATE_LIMIT_SENDS"]


def too_many_sends(limit):
    """A send, retry, compare or replay past the user's rate: 429 with a sentence, the typed text kept."""
    # Flask-Limiter uses what this returns only when it is a Response object.
    page = edit_page if request.endpoint.endswith(".edit") else composer_page  # an edit keeps its text in its form
    return make_response(answer_refusal(TooManySends(limit_sentence("messages", limit)), page))


def replies_per_send() -> int:
    """Replies a request of the send rate queues (its cost against RATE_LIMIT_SENDS): a send queues two while Compare is on."""
    if (request.endpoint or "").endswith(".send") and compare.compare_choice(session, g.playground) is not None:
        return charged(2)
    return charged(1)


def edits_in_place() -> bool:
    """An edit of a system or assistant message calls no model: it does not count against the send rate."""
    message_id = (request.view_args or {}).get("message_id")
    if not (request.endpoint or "").endswith(".edit") or not message_id:
        return False
    if "edits_in_place" not in g:  # asked by the rate limit, then by the view
        message = services.conversations.get(session.store_id, g.playground, message_id)
        g.edits_in_place = message is not None and message.role != "user"
    return g.edits_in_place


# One rate for everything that calls a model (send, retry), per user: they share a budget too.
# A send counts twice while Compare is on (two replies); Compare and Replay share the rate too.
send_rate = limiter.shared_limit(
    sends_limit,
    scope=SENDS,
    key_func=user_key,
    methods=["POST"],
    cost=replies_per_send,
    on_breach=too_many_sends,
    exempt_when=edits_in_place,
)


SETTINGS_LOADED = (
    "Settings changed in another tab: nothing was sent. The settings panel now shows them; "
    "send with them, or change them first."
)


def composer_page(refusal):
    """A refused send: the page with the sentence, the text the user typed kept in the composer.

    A send that is ``done`` (stored, its reply failed with Retry; or sent before) shows the page. One
    that may not fit the context window says so in the composer, and a second Send confirms it.
    """
    if refusal.done:
        return flash_back(refusal)
    if isinstance(refusal, MayNotFit):
        return render_playground(message_form=MessageForm(), status=refusal.status, overflow=refusal.sentence)
    if isinstance(refusal, SettingsChanged):  # the page now shows the saved settings: the choice is to send
        return render_playground(message_form=MessageForm(), status=refusal.status, settings_changed=SETTINGS_LOADED)
    flash(refusal.sentence, "error")
    # Render rather than redirect, so the text the user typed stays in the composer.
    return render_playground(message_form=MessageForm(), status=refusal.status)


@bp.post("/messages")
@refusals_shown_by(composer_page)
@send_rate
def send():
    form = MessageForm()
    keep_posted_variables()  # the values the page shows are the ones sent, and they stay
    # The page showed older settings than the saved ones (another tab saved): held until confirmed.
    check_settings_shown(
        request.form.get("settings_version"), current_settings(session), bool(request.form.get("confirm_settings"))
    )
    settings = settings_to_send_now(session)  # the gate (replies.gate) checks them before anything is stored
    if not request.form.get("confirm_overflow"):  # likely too long for the model: the same Send again goes ahead
        check_fits(services.conversations, session.store_id, g.playground, settings, form.content.data or "")
    # Compare on: the second model is checked before anything is stored
    second = compare.prepare(
        session, g.playground, current_settings(session), g.prompt, g.latest_version, limit_owner()
    )
    sent, placeholder = send_message(
        session.store_id,
        g.playground,
        form.content.data,
        settings,
        limit_owner(),
        refresh_keys=current_app.session_interface.keys_of(session),
        client_token=request.form.get("client_token"),
        announce=announce_appended,
    )
    if second is not None:
        mirrored = compare.mirror(
            session.store_id,
            g.playground,
            sent,
            second,
            limit_owner(),
            current_app.session_interface.keys_of(session),
        )
        if mirrored is None or not mirrored.is_open:
            not_queued()  # the second reply was refused (it says why): it counts nothing
    if wants_json():
        reply = services.conversations.get(session.store_id, g.playground, placeholder.id) or placeholder
        return jsonify(id=placeholder.id, html=render_messages(sent, reply)), 202
    if request.args.get("back") == "compare":  # the Compare page's composer, without JS: back to that page
        return redirect(url_for(".compare_page", _anchor=f"m-{placeholder.id}"), 303)
    return back_to_page(f"m-{placeholder.id}")


def announce_appended(sent, reply) -> None:
    """The two messages are stored (whether or not the reply can be queued): the session keeps this
    playground, and every tab of the session hears of them (``message.appended``, with their HTML)."""
    session.add_playground(g.playground)
    session.expiry_refreshed = True  # the append pushed the expiry of every key of the session
    live.publish(
        session.store_id,
        "message.appended",
        {
            "playground": g.playground,
            "ids": [sent.id, reply.id],
            "message_id": reply.id,
            "user_message_id": sent.id,
            "html": render_messages(sent, reply),
        },
    )


@bp.get("/messages/open")
def open_messages():
    """What a tab lacks after a reconnect or an event: messages after its last one, and open replies.

    ``after`` is the id of the tab's last message, ``open`` the ids it shows as open. If ``after`` is
    not in the latest window (a Reset, or a tab with no messages), every message of the window comes
    back with ``replace``: the tab shows them instead of its own.
    """
    window = current_app.session_interface.read_window(session, g.playground, current_app.config["PAGE_WINDOW"])
    window.messages = [with_partial(message, window.partials) for message in window.messages]
    after = request.args.get("after", "")
    shown_open = set(request.args.get("open", "").split(","))
    ids = [message.id for message in window.messages]
    replace = after not in ids
    first_new = 0 if replace else ids.index(after) + 1
    wanted = [
        message
        for index, message in enumerate(window.messages)
        if replace or index >= first_new or message.is_open or message.id in shown_open
    ]
    return jsonify(
        total=window.total,
        start=window.start,
        replace=replace,
        settings_digest=settings_version(current_settings(session)),
        messages=[{"id": message.id, "html": render_messages(message)} for message in wanted],
    )


@bp.get("/messages/<message_id>")
def message_fragment(message_id):
    """One message as HTML (the page's script swaps it in when a reply finishes)."""
    message = services.conversations.get(session.store_id, g.playground, message_id)
    if message is None:
        abort(404, "That message is no longer in this conversation.")
    if message.status == "streaming":
        message = msgspec.structs.replace(message, content=services.conversations.partial(session.store_id, message_id))
    return render_messages(message)


@bp.get("/messages/<message_id>/frame")
def message_frame(message_id, base=None):
    """A reply alone, for the page without JS: a frame that refreshes itself until the reply is final.

    The page around it never reloads, so the composer and the settings form keep what is typed.
    ``base``: the URL its Stop and Retry post under (a Compare or Replay reply's own, workbench.py).
    """
    message = services.conversations.get(session.store_id, g.playground, message_id)
    if message is None:
        abort(404, "That message is no longer in this conversation.")
    if message.status == "streaming":
        message = msgspec.structs.replace(message, content=services.conversations.partial(session.store_id, message_id))
    stale = stale_ids([message])
    html = with_page_values(str(message_macro()(message, stale, None, True)), generate_csrf(), base or url_for(".send"))
    response = make_response(
        render_template(
            "playground/reply_frame.html",
            message_html=html,
            # A new URL each time: a refresh to one that only differs by its #fragment would not reload.
            refresh_url=f"{request.path}?t={time.monotonic_ns()}#end"
            if message.is_open and message.id not in stale
            else None,
        )
    )
    return framed_by_own_pages(response)


@bp.get("/messages/<message_id>/request")
def message_request(message_id):
    """What the provider was sent for one reply, as JSON and as a curl command."""
    conversation = services.conversations.all(session.store_id, g.playground)
    message = next((message for message in conversation if message.id == message_id), None)
    if message is None or message.request is None:
        abort(404, "That reply has no recorded request: it is not finished, or no longer in this conversation.")
    sent, unchanged = sent_request(message, conversation)
    return render_template(
        "playground/request.html",
        message=message,
        request_json=request_json(sent),
        curl=curl_command(sent),
        history_changed=None if unchanged else HISTORY_CHANGED,
    )


@bp.post("/messages/<message_id>/stop")
def stop(message_id):
    message = request_stop(session.store_id, g.playground, message_id)
    if message is None:
        flash("That reply is no longer in this conversation.", "error")
    if wants_json():
        return (jsonify(id=message_id, status=message.status), 202) if message else (jsonify(error="not found"), 404)
    return back_to_page(f"m-{message_id}")


@bp.post("/messages/<message_id>/retry")
@refusals_shown_by(flash_back)
@send_rate
def retry(message_id):
    # Held, as a Send is, when the page showed older settings (the page's script sends its version).
    check_settings_shown(
        request.form.get("settings_version"), current_settings(session), bool(request.form.get("confirm_settings"))
    )
    settings = settings_to_send_now(session)
    message = retry_reply(session.store_id, g.playground, message_id, settings, limit_owner())
    if message is None:
        not_queued()
        flash("That reply is no longer in this conversation.", "error")
    if wants_json():
        if message is None:
            return jsonify(error="not found"), 404
        return jsonify(id=message_id, html=render_messages(message)), 202
    return back_to_page(f"m-{message_id}")


@bp.post("/messages/<message_id>/choose")
@refusals_shown_by(flash_back)
def choose(message_id):
    """Show attempt ``attempt`` of a reply (‹ 2/3 ›): the one later turns send and an export marks as chosen."""
    attempt = request.form.get("attempt", type=int)
    if attempt is None:
        raise CannotChoose("Choose an attempt of this reply.", 400)
    message = choose_attempt(session.store_id, g.playground, message_id, attempt)
    if wants_json():
        return jsonify(id=message_id, attempt=message.attempt, html=render_messages(message))
    return back_to_page(f"m-{message_id}")


@bp.post("/messages/<message_id>/tool-results")
@refusals_shown_by(flash_back)
@send_rate
def tool_result(message_id):
    """Answer one tool call of a reply (a ``tool`` message); the last call answered queues the next reply."""
    reply, result, next_reply = answer_tool_call(
        session.store_id,
        g.playground,
        message_id,
        request.form.get("tool_call_id", ""),
        request.form.get("content"),
        settings_to_send_now(session),
        limit_owner(),
        refresh_keys=current_app.session_interface.keys_of(session),
        announce=announce_answered,
    )
    if next_reply is None:
        not_queued()  # only the answer that completes the calls sends anything
    if wants_json():
        # The reply and what follows it: its results in call order (one answered first may come after), the next reply.
        conversation = services.conversations.all(session.store_id, g.playground)
        start = next((index for index, message in enumerate(conversation) if message.id == reply.id), len(conversation))
        return jsonify(id=message_id, html=render_messages(*(conversation[start:] or [reply, result]))), 202
    return back_to_page(f"m-{(next_reply or result).id}")


def announce_answered(reply, result, next_reply) -> None:
    """Every tab hears that the reply's call is answered (its form goes) and of the new messages."""
    session.add_playground(g.playground)
    session.expiry_refreshed = True
    live.publish(session.store_id, "message.changed", {"playground": g.playground, "id": reply.id})
    ids = [result.id, *([next_reply.id] if next_reply else [])]
    live.publish(
        session.store_id,
        "message.appended",
        {
            "playground": g.playground,
            "ids": ids,
            "message_id": ids[-1],
            "html": render_messages(result, *([next_reply] if next_reply else [])),
        },
    )


def settings_page(refusal):
    """Settings another tab saved meanwhile: the form keeps what was typed and says so (no flash)."""
    form = SettingsForm()
    form.validate()  # as the view read it (the model name stripped)
    return render_playground(settings_form=form, status=refusal.status, settings_conflict=True)


@bp.post("/settings")
@refusals_shown_by(settings_page)
def save_settings():
    form = SettingsForm()
    if not form.validate():
        # Each error shows once, under its field; the flash only says that nothing was saved.
        flash("Settings not saved: correct the fields marked below.", "error")
        return render_playground(settings_form=form, status=422)
    shown = request.form.get("settings_version")
    if shown and shown != settings_version(current_settings(session)):
        # Another tab saved after this form was loaded: say so rather than silently undo its save. The
        # form keeps what was typed and now carries the current version, so saving again replaces them.
        raise StaleSettings()
    store_settings(
        session,
        g.playground,
        msgspec.structs.replace(form.to_settings(), variables=current_settings(session).variables),
    )
    publish_settings_saved(session)
    flash("Settings saved; the next message uses them.", "info")
    return back_to_page()


def posted_variables(settings, bare_names: bool = False) -> dict[str, str]:
    """The variable values a form posted (``variables.<name>``) for the settings' variables.

    ``bare_names``: a field named as the variable counts too (the variables form as it was), never on a
    Send, whose own fields (``content``...) could be a variable's name.
    """
    names, _ = variables_panel(settings)
    posted = {}
    for name in names:
        value = request.form.get(f"variables.{name}")
        if value is None and bare_names:
            value = request.form.get(name)
        if value is not None:
            posted[name] = value.replace("\r\n", "\n")
    return posted


def keep_posted_variables(bare_names: bool = False) -> None:
    """Store the variable values a form posted, when they differ from the stored ones."""
    settings = current_settings(session)
    values = {**settings.variables, **posted_variables(settings, bare_names)}
    if values != settings.variables:
        store_settings(session, g.playground, msgspec.structs.replace(settings, variables=values))


@bp.post("/variables")
def variables():
    """Keep the values of the template variables without sending ("Save values": the composer's fields)."""
    keep_posted_variables(bare_names=True)
    flash("Variables saved; the next message uses them.", "info")
    return back_to_page()


@bp.post("/reset")
def reset():
    reset_conversation(session.store_id, g.playground)  # publishes conversation.reset
    if compare.compare_choice(session, g.playground) is not None:
        compare.reset_companion(session.store_id, g.playground)  # the second model starts afresh too
    flash("Conversation cleared.", "info")
    return back_to_page()


def download(body, extension: str, mimetype: str) -> Response:
    """A file download named after the playground and today's date."""
    name = f"conversation-{g.playground}-{time.strftime('%Y-%m-%d')}.{extension}"
    return Response(body, mimetype=mimetype, headers={"Content-Disposition": f'attachment; filename="{name}"'})


@bp.get("/export.json")
def export_conversation_json():
    """The whole conversation and the settings as JSON (what Import takes back)."""
    messages = services.conversations.all(session.store_id, g.playground)
    return download(export_json(g.playground, current_settings(session), messages), "json", "application/json")


@bp.get("/export.md")
def export_conversation_markdown():
    """The conversation as a Markdown document."""
    messages = services.conversations.all(session.store_id, g.playground)
    return download(export_markdown(g.playground, current_settings(session), messages), "md", "text/markdown")


@bp.post("/import")
@refusals_shown_by(flash_back)
def import_conversation():
    """Replace this playground's conversation with an exported one (checked whole first)."""
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        flash("Choose an exported .json file to import.", "error")
        return back_to_page()
    try:
        data = upload.read()
    finally:
        upload.close()  # a large upload is a temporary file: close it now
    config = current_app.config
    messages = off_the_event_loop(
        parse_import,
        data,
        config["MAX_CONVERSATION_MESSAGES"],
        config["MAX_MESSAGE_CHARS"],
    )
    stop_open_replies(session.store_id, g.playground)  # their workers stop; their partials go
    replace_conversation(
        services.conversations,
        session.store_id,
        g.playground,
        messages,
        refresh_keys=current_app.session_interface.keys_of(session),
    )
    session.add_playground(g.playground)
    session.expiry_refreshed = True
    live.publish(session.store_id, "conversation.reset", {"playground": g.playground})
    flash(f"Imported {len(messages)} message{'' if len(messages) == 1 else 's'}.", "info")
    return back_to_page()


@bp.post("/messages/add")
@refusals_shown_by(flash_back)
def add_message():
    """Add a message of any role without calling the model (few-shot examples, extra instructions)."""
    role = request.form.get("role", "")
    if role not in (*ROLES, TOOL_ROLE):
        raise InvalidMessage("Choose system, user, assistant or tool.")
    # Few-shot tool use: a reply's calls (JSON), a tool message naming the call it answers.
    calls = parse_tool_calls(request.form.get("tool_calls")) if role == "assistant" else []
    tool_call_id = (request.form.get("tool_call_id") or "").strip() or None if role == TOOL_ROLE else None
    if role == TOOL_ROLE and not tool_call_id:
        raise InvalidMessage("Name the tool call this result answers (its id).")
    posted = request.form.get("content") or ""
    content = validate_content(posted) if posted.strip() or not calls else ""  # a reply may be only calls
    message = Message(
        id=new_message_id(),
        role=role,
        content=content,
        created_at=time.time(),
        html=off_the_event_loop(render_reply, content) if role == "assistant" and content else None,
        tool_calls=calls,
        tool_call_id=tool_call_id,
    )
    services.conversations.append(
        session.store_id, g.playground, message, refresh_keys=current_app.session_interface.keys_of(session)
    )
    if tool_call_id:  # the call it answers shows no form any more (nothing is sent)
        answered = mark_answered(session.store_id, g.playground, tool_call_id)
        if answered is not None:
            live.publish(session.store_id, "message.changed", {"playground": g.playground, "id": answered})
    session.add_playground(g.playground)
    session.expiry_refreshed = True
    live.publish(session.store_id, "message.appended", {"playground": g.playground, "ids": [message.id]})
    return back_to_page(f"m-{message.id}", added=1)  # the Add panel open again, for the next one


def what_goes(removed) -> str:
    """What a delete removes, as the page says it."""
    return "this message and the reply after it" if len(removed) > 1 else "this message"


@bp.post("/messages/<message_id>/delete")
@refusals_shown_by(flash_back)
def delete(message_id):
    """Delete a message (a user message goes with its reply), once confirmed (``confirm=yes``)."""
    removed = removed_with(services.conversations, session.store_id, g.playground, message_id)
    if removed and request.form.get("confirm") != "yes":
        # The page's script asks with a second click; a form without script with its check box.
        raise Refused(f"Deleting removes {what_goes(removed)}: tick “confirm” beside Delete to go ahead.", 409)
    deleted = removed and delete_message(services.conversations, session.store_id, g.playground, message_id)
    if not deleted:
        if wants_json():
            return jsonify(error="That message is no longer in this conversation."), 404
        flash("That message is no longer in this conversation.", "error")
    ids = [message.id for message in removed]
    if deleted and removed[0].tool_call_id:  # a tool result gone: its call can be answered again
        reply_id = forget_answer(session.store_id, g.playground, removed[0].tool_call_id)
        if reply_id is not None:
            live.publish(session.store_id, "message.changed", {"playground": g.playground, "id": reply_id})
    live.publish(session.store_id, "conversation.reset", {"playground": g.playground, "deleted": ids})
    if wants_json():
        return jsonify(deleted=ids, total=services.conversations.count(session.store_id, g.playground))
    return back_to_page()


@dataclass
class EditState:
    """A message shown as its edit form: the text in the box, what resending removes, a refusal.

    Only a user message is resent (``removes``: the messages after it); others change in place.
    """

    id: str
    content: str
    removes: int
    cancel_url: str
    index: int  # where the message is in the conversation (the page shows the window that holds it)
    error: str | None = None
    client_token: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    settings_version: str = ""  # of the settings the page shows: a Resend with older ones is held, as a Send is


def edit_state(message_id: str, content: str | None = None, error: str | None = None):
    """The edit form of a message and the absolute index of the message; None if it is gone or being written."""
    found = services.conversations.find(session.store_id, g.playground, message_id)
    if found is None:
        return None
    index, _, message = found
    if message.is_open:
        return None
    removes = services.conversations.count(session.store_id, g.playground) - index - 1 if message.role == "user" else 0
    before = request.args.get("before", type=int)
    cancel = url_for(".index", before=before, _anchor=f"m-{message_id}")
    text = message.content if content is None else content.replace("\r\n", "\n")
    shown = settings_version(current_settings(session))
    return EditState(message_id, text, removes, cancel, index, error, settings_version=shown), index


@bp.get("/messages/<message_id>/edit")
def edit_form(message_id):
    """A user message as an edit form (the page without JS; its HTML alone, as JSON, for the page's script)."""
    state = edit_state(message_id)
    if state is None:
        abort(
            404, "That message is not in this conversation (it may have been edited or deleted), or is being written."
        )
    editing, _ = state
    if wants_json():
        message = services.conversations.get(session.store_id, g.playground, message_id)
        return jsonify(id=message_id, removes=editing.removes, html=render_messages(message, editing=editing))
    return render_playground(editing=editing)


def edit_page(refusal):
    """A refused edit: the page with the sentence in the edit form, the typed text kept there (or in the composer).

    An edit that is ``done`` (stored, its reply failed with Retry; or resent before) shows the page.
    """
    if refusal.done:
        return flash_back(refusal)
    content = request.form.get("content", "")
    state = edit_state(request.view_args["message_id"], content, refusal.sentence)
    if state is None:  # the message is gone: keep the text in the composer instead
        flash(refusal.sentence, "error")
        return render_playground(
            message_form=MessageForm(formdata=None, data={"content": content}), status=refusal.status
        )
    editing, _ = state
    return render_playground(editing=editing, status=refusal.status)


@bp.post("/messages/<message_id>/edit")
@refusals_shown_by(edit_page)
@send_rate
def edit(message_id):
    """Replace a user message's text, remove the turns after it (once confirmed) and write the reply again;
    or change a system or assistant message's text in place (no model is called)."""
    if edits_in_place():
        message = edit_in_place(
            session.store_id,
            g.playground,
            message_id,
            request.form.get("content"),
            render=lambda text: off_the_event_loop(render_reply, text),
        )
        if wants_json():
            return jsonify(id=message_id, in_place=True, html=render_messages(message))
        return back_to_page(f"m-{message_id}")
    confirmed = request.form.get("removes", type=int) or 0 if request.form.get("confirm_remove") == "yes" else 0
    check_settings_shown(  # a Resend, as a Send: held when the page showed older settings
        request.form.get("settings_version"), current_settings(session), bool(request.form.get("confirm_settings"))
    )
    settings = settings_to_send_now(session)
    edited, placeholder, _ = edit_and_resend(
        session.store_id,
        g.playground,
        message_id,
        request.form.get("content"),
        settings,
        removals_confirmed=confirmed,
        user=limit_owner(),
        refresh_keys=current_app.session_interface.keys_of(session),
        client_token=request.form.get("client_token"),
        announce=announce_replaced,
    )
    session.add_playground(g.playground)
    session.expiry_refreshed = True
    if wants_json():
        reply = services.conversations.get(session.store_id, g.playground, placeholder.id) or placeholder
        return jsonify(id=placeholder.id, html=render_messages(edited, reply)), 202
    return back_to_page(f"m-{placeholder.id}")


def announce_replaced(edited, reply) -> None:
    """Tell every tab of the session that the conversation changed (it fetches the latest window)."""
    live.publish(session.store_id, "conversation.reset", {"playground": g.playground})
