"""Views of Compare and Replay (the logic is in ``workbench``), on both playground registrations."""

import secrets
import time

import msgspec
from flask import current_app, flash, g, jsonify, make_response, redirect, render_template, request, session, url_for

from ...domain.keys import companion_playground
from ...domain.text_diff import MAX_LINES, MAX_WORD_TOKENS
from ...extensions import limiter, services
from ...limits import TooManySends, limit_sentence
from ...limits.rate import SENDS
from ...providers import available_providers
from ...replies import (
    compare,
    dead_replies,
    replay,
    request_stop,
    reset_conversation,
    retry_reply,
)
from ...replies.choice import InvalidChoice, as_choice, choice_from_form, settings_for
from ...replies.control import CannotChoose, choose_attempt
from ...replies.edit import MessageGone
from ...replies.tool_results import answer_tool_call
from ..errors import answer_refusal, refusals_shown_by, wants_json
from ..headers import framed_by_own_pages
from ..rate_limits import charged, limit_owner, user_key
from . import bp
from .prompt import current_settings
from .routes import message_frame, message_request, sends_limit, with_partial

REPLAYS = "replays"  # session key: per playground, the replay's choice and its last turn


# The caps of a stored difference, as the Replay page names them.
DIFF_CAPS = {"words": MAX_WORD_TOKENS, "lines": MAX_LINES}


def replay_record() -> dict:
    """What the session keeps of this playground's replay: ``choice`` and ``until`` (its last turn's id)."""
    return session.get(REPLAYS, {}).get(g.playground) or {}


def cost() -> int:
    """What a workbench request counts against RATE_LIMIT_SENDS (with send and retry): the one reply it queues.

    A replay's later turns are counted one by one by the worker as they are sent, and wait for the
    window to allow them (``replies.replay``: paced, never refused).
    """
    return charged(1)


def too_many(limit):
    """Past the send rate: 429 with a sentence, nothing queued."""
    return make_response(answer_refusal(TooManySends(limit_sentence("messages", limit)), workbench_page))


# The same per-user rate as send and retry (one counter: scope "sends").
workbench_rate = limiter.shared_limit(
    sends_limit, scope=SENDS, key_func=user_key, methods=["POST"], cost=cost, on_breach=too_many
)


def workbench_page(refusal):
    """A refused action without script: the Compare or Replay page it came from, with the sentence.

    One that is ``done`` (started, its reply failed with Retry; or the same form twice) goes back to the page.
    """
    kind = (request.view_args or {}).get("kind") or ("compare" if "compare" in (request.endpoint or "") else "replay")
    if refusal.done:
        if refusal.sentence:
            flash(refusal.sentence, "error")
        return back_to(f"{kind}_page")
    flash(refusal.sentence, "error")
    page = render_compare if kind == "compare" else render_replay
    return page(refusal.status)


def choice_form_context(choice) -> dict:
    """What the small provider/model/version form needs."""
    settings = current_settings(session)
    versions = [version.number for version in g.prompt.versions] if g.get("prompt") is not None else []
    return {
        "choice": choice,
        "providers": available_providers(),
        "versions": sorted(versions, reverse=True),
        "settings": settings,
    }


# --- Replay ------------------------------------------------------------------------------------


def with_text_so_far(messages: list) -> list:
    """The messages, each reply being written with the text it has streamed so far (as the playground shows it)."""
    partials = {
        m.id: services.conversations.partial(session.store_id, m.id) for m in messages if m.status == "streaming"
    }
    return [with_partial(message, partials) for message in messages] if partials else messages


def replay_state():
    """The Replay page's view of this playground: original and replay read in one pass each."""
    original = with_text_so_far(services.conversations.all(session.store_id, g.playground))
    replayed = with_text_so_far(services.conversations.all(session.store_id, replay.replay_playground(g.playground)))
    record = replay_record()
    paced_at = replay.paced_until(session.store_id, replayed)
    return replay.replay_view(original, replayed, record.get("until"), record.get("turns"), paced_at)


def replay_stale(view) -> set[str]:
    """Replies on the Replay page marked streaming whose worker is gone."""
    return dead_replies([reply for row in view.rows for reply in (row.old, row.new) if reply is not None])


def render_replay(status=200):
    record = replay_record()
    choice = as_choice(record.get("choice"))
    view = replay_state()
    return render_template(
        "playground/replay.html",
        view=view,
        stale_ids=replay_stale(view),
        diff_caps=DIFF_CAPS,
        replay_choice=choice,
        rows_framed=view.status == "running",  # the no-JS rows frame shows them instead (no frame per reply)
        client_token=secrets.token_urlsafe(16),
        **choice_form_context(choice),
    ), status


@bp.get("/replay")
def replay_page():
    return render_replay()


@bp.get("/replay/rows")
def replay_rows():
    """The rows and the state line of the Replay page (its script swaps them in after an event)."""
    view = replay_state()
    return render_template("playground/_replay_rows.html", view=view, stale_ids=replay_stale(view), diff_caps=DIFF_CAPS)


@bp.get("/replay/rows/frame")
def replay_rows_frame():
    """The Replay page's rows, for the page without JS while a replay runs: a frame that refreshes itself
    (a turn's new reply starts after the one before it ends) until the replay stops; the page never reloads."""
    view = replay_state()
    running = view.status == "running"
    # Each refresh goes to the turn being replayed (a new URL each time: one that differs only by its #fragment would not reload).
    turn = next((row.number for row in view.rows if row.new is None or row.new.is_open), None)
    anchor = f"#turn-{turn}" if turn else ""
    response = make_response(
        render_template(
            "playground/rows_frame.html",
            view=view,
            stale_ids=replay_stale(view),
            diff_caps=DIFF_CAPS,
            rows_framed=True,
            refresh_url=f"{request.path}?t={time.monotonic_ns()}{anchor}" if running else None,
        )
    )
    return framed_by_own_pages(response)


@bp.post("/replay")
@refusals_shown_by(workbench_page)
@workbench_rate
def start_replay():
    choice = choice_from_form(request.form, has_versions=g.prompt is not None)
    settings = settings_for(choice, current_settings(session), g.prompt, g.latest_version)

    def started(until: str, turn_ids: list[str]) -> None:  # the first turn is stored: the session keeps the replay
        record = {"choice": choice_dict(choice), "until": until, "turns": turn_ids}
        session[REPLAYS] = {**session.get(REPLAYS, {}), g.playground: record}
        session.add_playground(replay.replay_playground(g.playground))

    replay.start_replay(
        session.store_id,
        g.playground,
        settings,
        limit_owner(),
        refresh_keys=current_app.session_interface.keys_of(session),
        client_token=request.form.get("client_token"),  # the same form twice (a double click): started once
        started=started,
    )
    return done("replay_page")


@bp.post("/replay/continue")
@refusals_shown_by(workbench_page)
@workbench_rate
def continue_replay():
    record = replay_record()
    choice = as_choice(record.get("choice"))
    if choice is None:
        raise replay.NothingToReplay("There is no replay to continue; start one.")
    settings = settings_for(choice, current_settings(session), g.prompt, g.latest_version)
    replay.continue_replay(
        session.store_id,
        g.playground,
        settings,
        limit_owner(),
        record.get("until"),
        refresh_keys=current_app.session_interface.keys_of(session),
        turn_ids=record.get("turns"),
    )
    return done("replay_page")


@bp.post("/replay/stop")
def stop_replay():
    """Stop the replay: its open reply stops, and no further turn is sent."""
    playground = replay.replay_playground(g.playground)
    for message in services.conversations.all(session.store_id, playground):
        if message.is_open:
            request_stop(session.store_id, playground, message.id)
    replay.stop_pacing(session.store_id, g.playground)  # a turn waiting for the send rate is not sent
    return done("replay_page")


@bp.post("/replay/reset")
def reset_replay():
    """Delete the replay (only the replay: the original conversation stays)."""
    reset_conversation(session.store_id, replay.replay_playground(g.playground))
    replays = dict(session.get(REPLAYS, {}))
    if replays.pop(g.playground, None) is not None:
        session[REPLAYS] = replays
    flash("Replay deleted; the original conversation is as it was.", "info")
    return done("replay_page")


# --- Compare -----------------------------------------------------------------------------------


def compare_state():
    """The turns of the conversation, each with the main reply and the second model's."""
    window = current_app.session_interface.read_window(session, g.playground, current_app.config["PAGE_WINDOW"])
    main = [with_partial(message, window.partials) for message in window.messages]
    companion = with_text_so_far(services.conversations.all(session.store_id, compare.compare_playground(g.playground)))
    return window, compare.pairs(main, companion)


def shown_replies(rows) -> list:
    """The replies of the Compare rows (to tell which are open, or lost their worker)."""
    return [reply for row in rows for reply in (row.left, row.right) if reply is not None]


def render_compare(status=200):
    choice = compare.compare_choice(session, g.playground)
    window, rows = compare_state()
    replies = shown_replies(rows)
    return render_template(
        "playground/compare.html",
        window=window,
        rows=rows,
        compare_choice=choice,
        client_token=secrets.token_urlsafe(16),
        waiting=any(reply.is_open for reply in replies),
        stale_ids=dead_replies(replies),
        **choice_form_context(choice),
    ), status


@bp.get("/compare")
def compare_page():
    return render_compare()


@bp.get("/compare/rows")
def compare_rows():
    """The paired turns (the Compare page's script swaps them in after an event)."""
    _window, rows = compare_state()
    replies = shown_replies(rows)
    return render_template(
        "playground/_compare_rows.html",
        rows=rows,
        compare_choice=compare.compare_choice(session, g.playground),
        waiting=any(reply.is_open for reply in replies),
        stale_ids=dead_replies(replies),
    )


@bp.post("/compare")
@refusals_shown_by(workbench_page)
def compare_on():
    """Turn Compare on (or change the second model): the companion starts as a copy of the conversation."""
    choice = choice_from_form(request.form, has_versions=g.prompt is not None)
    copied = compare.turn_on(
        session,
        session.store_id,
        g.playground,
        choice,
        current_settings(session),
        g.prompt,
        g.latest_version,
        refresh_keys=current_app.session_interface.keys_of(session),
    )
    flash(
        f"Comparing with {choice.label()}"
        + (f"; it starts from the {copied} messages so far." if copied else ".")
        + " Every message you send now goes to both.",
        "info",
    )
    return done("compare_page")


@bp.post("/compare/off")
def compare_off():
    compare.turn_off(session, session.store_id, g.playground)
    flash("Compare is off; the conversation is as it was.", "info")
    return done("compare_page")


# --- a companion's replies: Stop, Retry, View request ------------------------------------------


def companion_settings(kind: str):
    """The settings a companion reply is retried with: the replay's or the compare model's."""
    if kind == "replay":
        choice = as_choice(replay_record().get("choice"))
    else:
        choice = compare.compare_choice(session, g.playground)
    if choice is None:
        raise InvalidChoice(
            "Compare is off; turn it on to retry this reply." if kind == "compare" else "There is no replay."
        )
    return settings_for(choice, current_settings(session), g.prompt, g.latest_version)


@bp.post("/<any(compare,replay):kind>/messages/<message_id>/stop")
def companion_stop(kind, message_id):
    message = request_stop(session.store_id, companion_playground(g.playground, kind), message_id)
    if wants_json():
        return (jsonify(id=message_id, status=message.status), 202) if message else (jsonify(error="not found"), 404)
    return back_to(f"{kind}_page")


@bp.post("/<any(compare,replay):kind>/messages/<message_id>/retry")
@refusals_shown_by(workbench_page)
@workbench_rate
def companion_retry(kind, message_id):
    settings = companion_settings(kind)
    message = retry_reply(
        session.store_id, companion_playground(g.playground, kind), message_id, settings, limit_owner()
    )
    if message is None:
        raise MessageGone("That reply is no longer there.")
    if wants_json():
        return jsonify(id=message_id), 202
    return back_to(f"{kind}_page")


@bp.post("/<any(compare,replay):kind>/messages/<message_id>/tool-results")
@refusals_shown_by(workbench_page)
@workbench_rate
def companion_tool_result(kind, message_id):
    """Answer a tool call of a companion reply; a replay's next reply carries the replay on."""
    record = replay_record() if kind == "replay" else {}
    replay_fields = (
        {"replay_until": record["until"], "replay_turns": record.get("turns"), "send_rate": sends_limit()}
        if record.get("until")
        else {}
    )
    answer_tool_call(
        session.store_id,
        companion_playground(g.playground, kind),
        message_id,
        request.form.get("tool_call_id", ""),
        request.form.get("content"),
        companion_settings(kind),
        limit_owner(),
        **replay_fields,
    )
    return done(f"{kind}_page")


@bp.post("/<any(compare,replay):kind>/messages/<message_id>/choose")
@refusals_shown_by(workbench_page)
def companion_choose(kind, message_id):
    """Show another attempt of a companion reply (‹ 1/2 ›)."""
    attempt = request.form.get("attempt", type=int)
    if attempt is None:
        raise CannotChoose("Choose an attempt of this reply.", 400)
    choose_attempt(session.store_id, companion_playground(g.playground, kind), message_id, attempt)
    return done(f"{kind}_page")


@bp.get("/<any(compare,replay):kind>/messages/<message_id>/frame")
def companion_frame(kind, message_id):
    """A companion reply in its own no-JS frame (as the playground's, its Stop and Retry posting to the companion's)."""
    base = url_for(f".{kind}_page") + "/messages"
    g.playground = companion_playground(g.playground, kind)
    return message_frame(message_id, base)


@bp.get("/<any(compare,replay):kind>/messages/<message_id>/request")
def companion_request(kind, message_id):
    """What the provider was sent for a companion reply."""
    g.playground = companion_playground(g.playground, kind)
    return message_request(message_id)


# --- helpers -----------------------------------------------------------------------------------


def choice_dict(choice) -> dict:
    return msgspec.to_builtins(choice)


def back_to(endpoint: str):
    """Post/redirect/get back to a workbench page."""
    return redirect(url_for(f".{endpoint}"), 303)


def done(endpoint: str):
    """After an action: 202 for the page's script, else back to the page."""
    if wants_json():
        return jsonify(ok=True), 202
    return back_to(endpoint)
