"""Replay: re-run a conversation's user turns against another model or version, in a conversation of its own.

The replay lives in ``<playground>~replay`` (a conversation of the session like any other: same
hash tag, TTL, purge and Reset); the original is only read. Its user messages keep their ids from
the original, so each row of the page pairs a turn's old reply with its new one.

Turns run in order, each sent with the replay's own history (the user turns and the new replies so
far): the first is queued when the replay starts; when a replay's reply is done, the worker that
wrote it queues the next turn (``after_reply``; the ticket's ``replay_until`` says the replay goes
on). A stopped or failed reply, a Reset, or a limit reached halts the replay, and the page says so.
Only the job that claimed and finished the reply continues, so each turn is one provider call.

Each turn counts one against the send rate (RATE_LIMIT_SENDS) when it is sent: the first in the view,
the later ones here. A turn the rate's window has no room for is **paced**, not refused: a job is
scheduled for when the window allows it (RQ's ``enqueue_at``; the workers run RQ's scheduler), the
last reply's ticket is kept as the pace (``store.tickets.Pace``), and the page says when the next turn
starts. Nothing waits in a worker meanwhile. Stop or Delete ends a pace; the scheduled job then finds
nothing to send.

The turns are fixed when the replay starts: their ids travel in each reply's ticket (and the
session's replay record, for Continue), so messages added to or imported into the original later
are never replayed. Every turn passes the gate (``gate.admit``) when it is queued.
"""

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import msgspec
from flask import current_app

from ..domain.keys import companion_playground
from ..domain.messages import TOOL_ROLE, Message, assistant_placeholder
from ..domain.refusals import Refused
from ..domain.settings import PlaygroundSettings
from ..domain.text_diff import Piece, compare, pair_digest
from ..domain.tools import format_json
from ..extensions import services
from ..limits import rate
from ..store.conversations import ConversationFull
from ..store.edits import delete_message
from ..store.tickets import Pace, Ticket, read_pace, take_pace, write_pace
from .gate import Admission, admit, release
from .live import publish
from .send import QueueUnavailable, enqueue_reply, one_submission, placeholder_for
from .tool_results import MAX_AUTO_ROUNDS, ROUNDS_REACHED, answer_with_mocks, mock_result

REPLAY = "replay"


class NothingToReplay(Refused, ValueError):
    """The conversation has no user turn to replay."""

    status = 422


class ReplayRunning(Refused):
    """A replay of this playground is still running: stop or reset it first."""

    status = 409


def replay_playground(playground: str) -> str:
    """The conversation that holds ``playground``'s replay."""
    return companion_playground(playground, REPLAY)


def source_playground(replay: str) -> str:
    """The playground a replay conversation replays."""
    return replay.rpartition("~")[0]


@dataclass
class Turn:
    """A user turn of the original, its reply there, and the messages before it that a replay copies as written."""

    user: Message
    old: Message | None
    copies: list[Message]  # system text and hand-written examples since the previous turn
    # The original's replies to the turn: one, or several when its replies called tools (``old``: the last).
    exchange: list[Message] = field(default_factory=list)


def tool_exchange(messages: list[Message], start: int) -> tuple[list[Message], int]:
    """The replies answering the user turn before ``start``: its reply and, while a reply's tool calls
    were answered (``tool`` messages after it), the reply after them. Returns them and the index past them."""
    replies: list[Message] = []
    index = start
    while index < len(messages) and messages[index].role == "assistant":
        replies.append(messages[index])
        index += 1
        results = index
        while index < len(messages) and messages[index].role == TOOL_ROLE:
            index += 1
        if not replies[-1].tool_calls or index == results:
            break
    return replies, index


def turn_text(replies: list[Message]) -> str:
    """What a turn's replies are compared by: each tool call (name and arguments) on a line, then the last text.
    A turn without tool calls is its reply's text, as before."""
    calls = "".join(f"[tool call] {call.name} {call.arguments}\n" for reply in replies for call in reply.tool_calls)
    return calls + (replies[-1].content if replies else "")


def is_hand_written(message: Message | None) -> bool:
    """An assistant message added by hand (a few-shot example or prefill), not a model's reply."""
    return message is not None and message.role == "assistant" and message.provider is None


def plan(original: list[Message], until: str | None = None) -> list[Turn]:
    """The turns a replay of ``original`` runs, up to the user turn ``until`` (default: all).

    A user message answered by a hand-written assistant message is an example, copied as written
    with system messages; every other user message is a turn, re-run.
    """
    turns: list[Turn] = []
    copies: list[Message] = []
    index = 0
    while index < len(original):
        message = original[index]
        after = original[index + 1] if index + 1 < len(original) else None
        if message.role == "user" and not is_hand_written(after):
            exchange, end = tool_exchange(original, index + 1)
            turns.append(Turn(message, exchange[-1] if exchange else None, copies, exchange))
            copies = []
            index = end
            if message.id == until:
                break
            continue
        if not message.is_open:
            copies.append(message)
        index += 1
    return turns


def fixed(turns: list[Turn], turn_ids: list[str] | None) -> list[Turn]:
    """Of ``turns``, those the replay was started with (``turn_ids``; None: a replay started before they were kept)."""
    if turn_ids is None:
        return turns
    wanted = set(turn_ids)
    return [turn for turn in turns if turn.user.id in wanted]


def admit_turn(store_id: str, replay: str, turn: Turn, settings: PlaygroundSettings, user: str | None) -> Admission:
    """Pass one turn's reply through the gate (its history: the replay so far, and the turn)."""
    text = turn.user.content
    new_text = "".join(message.content for message in turn.copies) + text
    return admit(user, settings, store_id, replay, answers=text, new_text=new_text)


def send_turn(
    store_id: str,
    replay: str,
    turn: Turn,
    admission: Admission,
    user: str | None,
    until: str,
    turn_ids: list[str] | None,
    present: set[str] = frozenset(),
    refresh_keys=(),
    stored: Callable[[], None] | None = None,
    send_rate: str | None = None,
) -> Message:
    """Append one turn (and the copies before it not ``present`` yet) with a pending reply; queue the reply.

    ``send_rate``: the RATE_LIMIT_SENDS the replay's later turns are counted against (the one in force
    where it started, so web and worker pace alike; default: this process's).
    ``admission`` is the gate's for this turn (released if the turn cannot be stored). ``stored()``
    runs once the turn is stored, before its reply is queued (which may fail).
    """
    asked = msgspec.structs.replace(turn.user, created_at=time.time())  # the original's id: rows pair by it
    reply = placeholder_for(admission)
    copies = [message for message in turn.copies if message.id not in present]
    try:
        services.conversations.append(store_id, replay, *copies, asked, reply, refresh_keys=refresh_keys)
    except BaseException:
        release(admission)
        raise
    publish(store_id, "message.appended", {"playground": replay, "ids": [asked.id, reply.id]})
    if stored is not None:
        stored()
    send_rate = send_rate or current_app.config["RATE_LIMIT_SENDS"]
    enqueue_reply(
        store_id, replay, reply, admission, user, replay_until=until, replay_turns=turn_ids, send_rate=send_rate
    )
    return reply


def start_replay(
    store_id: str,
    playground: str,
    settings: PlaygroundSettings,
    user: str | None,
    refresh_keys=(),
    client_token: str | None = None,
    started: Callable[[str, list[str]], None] | None = None,
) -> str:
    """Start a replay of ``playground``'s turns with ``settings``, replacing any earlier replay; return its last turn's id.

    The turns are fixed now. ``started(until, turn_ids)`` runs once the first turn is stored (the
    view records the replay), before its reply is queued. Raises DuplicateSend (the same form twice:
    started once), NothingToReplay, ReplayRunning, the gate's refusals or ConversationFull (nothing
    queued), and QueueUnavailable when the replay started but its first reply could not be queued.
    """
    with one_submission(store_id, client_token):
        replay = replay_playground(playground)
        replayed = services.conversations.all(store_id, replay)
        if any(message.is_open for message in replayed) or paced_until(store_id, replayed) is not None:
            raise ReplayRunning("A replay is still running: stop it (or reset it) before starting another.")
        turns = plan(services.conversations.all(store_id, playground))
        if not turns:
            raise NothingToReplay("Nothing to replay: this conversation has no user messages yet.")
        until = turns[-1].user.id
        turn_ids = [turn.user.id for turn in turns]
        # The gate first: a refused replay leaves the earlier one as it was. (Its history starts empty.)
        admission = admit(user, settings, store_id, None, answers=turns[0].user.content, new_text=turns[0].user.content)
        try:
            services.conversations.clear(store_id, replay, stop_seconds=current_app.config["JOB_TIMEOUT"] + 60)
        except BaseException:
            release(admission)
            raise
        stored = (lambda: started(until, turn_ids)) if started is not None else None
        send_turn(
            store_id, replay, turns[0], admission, user, until, turn_ids, refresh_keys=refresh_keys, stored=stored
        )
    return until


def next_turn(turns: list[Turn], replayed: list[Message]) -> Turn | None:
    """The turn after the last one the replay has, or None (all done, or the original no longer has it)."""
    ids = [turn.user.id for turn in turns]
    last = next((message.id for message in reversed(replayed) if message.role == "user" and message.id in ids), None)
    if last is None:
        return turns[0] if turns else None
    position = ids.index(last) + 1
    return turns[position] if position < len(turns) else None


def after_reply(ticket, message_id: str, outcome: str) -> None:
    """In the worker, after a replay's reply: if it is done, send the next turn (one job continues, once).

    The next turn is one of those fixed when the replay started, and passes the gate like any send.
    """
    if outcome != "done":
        return  # stopped, failed, reset or not ours: the replay halts here, and the page says so
    replayed = services.conversations.all(ticket.store_id, ticket.playground)
    if not replayed or replayed[-1].id != message_id:
        return  # reset, or changed by hand meanwhile
    if replayed[-1].tool_calls:  # answered by the tools' mocks, the turn's next reply goes on; else halted
        answer_replayed_calls(ticket, replayed[-1])
        return
    original = services.conversations.all(ticket.store_id, source_playground(ticket.playground))
    if ticket.replay_turns is None:
        turns = plan(original, ticket.replay_until)
    else:
        turns = fixed(plan(original), ticket.replay_turns)
    turn = next_turn(turns, replayed)
    if turn is None:
        return
    wait_until = rate.take(ticket.user, ticket.send_rate)  # this turn's count, if the window has room
    if wait_until is not None:
        pace(ticket, message_id, wait_until)
        return
    present = {message.id for message in replayed}
    try:
        admission = admit_turn(ticket.store_id, ticket.playground, turn, ticket.settings, ticket.user)
    except Refused as problem:
        rate.give_back(ticket.user, ticket.send_rate)  # refused: it counts nothing
        halt(ticket.store_id, ticket.playground, turn, ticket.settings, str(problem), present)
        return
    try:
        send_turn(
            ticket.store_id,
            ticket.playground,
            turn,
            admission,
            ticket.user,
            ticket.replay_until,
            ticket.replay_turns,
            present,
            send_rate=ticket.send_rate,
        )
    except (ConversationFull, QueueUnavailable) as problem:
        current_app.logger.warning("replay halted: %s", problem)  # the reply (if any) shows as failed


def answer_replayed_calls(ticket: Ticket, reply: Message) -> None:
    """A replayed turn ended in tool calls: answer each with its tool's mock, which queues the turn's next
    reply (a replay's, so the replay goes on after it). A call without a mock, or too many rounds in a row,
    halts the replay with a sentence on the reply (the page shows it, and Continue sends the turn again)."""
    missing = [call.name for call in reply.tool_calls if mock_result(ticket.settings, call.name) is None]
    note = None
    if missing:
        note = f"{', '.join(sorted(set(missing)))} has no mock to answer it; give it one in the tools, then Continue."
    elif ticket.auto_rounds >= MAX_AUTO_ROUNDS:
        note = ROUNDS_REACHED
    if note is not None:
        services.conversations.update(
            ticket.store_id, ticket.playground, reply.id, lambda m: msgspec.structs.replace(m, tool_note=note)
        )
        publish(
            ticket.store_id, "message.failed", {"playground": ticket.playground, "id": reply.id, "message_id": reply.id}
        )
        return
    answer_with_mocks(
        ticket.store_id,
        ticket.playground,
        reply.id,
        ticket.settings,
        ticket.user,
        ticket.auto_rounds,
        replay_until=ticket.replay_until,
        replay_turns=ticket.replay_turns,
        send_rate=ticket.send_rate,
    )


def pace(ticket: Ticket, message_id: str, at: float) -> None:
    """The send rate's window is full: send the turn after reply ``message_id`` at ``at`` (a UNIX time)
    from a job RQ's scheduler queues then, and tell the page when."""
    config = current_app.config
    write_pace(message_id, Pace(ticket=ticket, at=at), seconds=int(at - time.time()) + config["JOB_TIMEOUT"] + 3600)
    services.queue.enqueue_at(
        datetime.fromtimestamp(at, UTC),
        "prompt_tracker.replies.job.run_paced_turn",
        message_id,
        job_id=f"paced-{message_id}-{int(at * 1000)}",
        job_timeout=config["JOB_TIMEOUT"],
        result_ttl=600,
        failure_ttl=3600,
    )
    publish(ticket.store_id, "replay.paced", {"playground": ticket.playground, "id": message_id, "at": at})


def send_paced_turn(message_id: str) -> bool:
    """In the worker, when a pace's time has come: send the turn after reply ``message_id`` (paced again if
    the window is still full). False when there is nothing to send: stopped, deleted, or sent already."""
    found = take_pace(message_id)
    if found is None:
        return False
    after_reply(found.ticket, message_id, "done")
    return True


def paced_until(store_id: str, replayed: list[Message]) -> float | None:
    """When the replay's next turn is due, if it waits for the send rate (a pace after its last reply)."""
    if not replayed:
        return None
    found = read_pace(replayed[-1].id)
    return found.at if found is not None and found.ticket.store_id == store_id else None


def stop_pacing(store_id: str, playground: str) -> bool:
    """Stop a replay that waits for the send rate: its next turn is not sent. True if one was waiting."""
    replayed = services.conversations.all(store_id, replay_playground(playground))
    return paced_until(store_id, replayed) is not None and take_pace(replayed[-1].id) is not None


def halt(store_id: str, replay: str, turn: Turn, settings: PlaygroundSettings, reason: str, present: set[str]) -> None:
    """Record why a replay stopped before ``turn``: the turn with a failed reply that says why (nothing queued)."""
    reply = msgspec.structs.replace(
        assistant_placeholder(settings.provider, settings.model, settings.params(), **settings.provenance()),
        status="failed",
        error=reason,
        finished_at=time.time(),
    )
    copies = [message for message in turn.copies if message.id not in present]
    user = msgspec.structs.replace(turn.user, created_at=time.time())
    services.conversations.append(store_id, replay, *copies, user, reply)
    publish(store_id, "message.failed", {"playground": replay, "id": reply.id, "message_id": reply.id})


def continue_replay(
    store_id: str,
    playground: str,
    settings: PlaygroundSettings,
    user: str | None,
    until: str,
    refresh_keys=(),
    turn_ids: list[str] | None = None,
) -> Turn:
    """Send the first turn the replay has no finished reply for (a failed or stopped one is replaced).

    Only the turns fixed when the replay started (``turn_ids``) count. Raises ReplayRunning,
    NothingToReplay (every turn is done), and the gate's refusals.
    """
    replay = replay_playground(playground)
    replayed = services.conversations.all(store_id, replay)
    if any(message.is_open for message in replayed) or paced_until(store_id, replayed) is not None:
        raise ReplayRunning("A replay is still running: stop it (or reset it) before continuing.")
    turns = replay_turns(services.conversations.all(store_id, playground), until, turn_ids)
    answered = new_replies(replayed)
    turn = next((turn for turn in turns if not is_done(answered.get(turn.user.id))), None)
    if turn is None:
        raise NothingToReplay("Every turn of this replay is done.")
    admission = admit_turn(store_id, replay, turn, settings, user)
    try:
        if turn.user.id in answered or any(message.id == turn.user.id for message in replayed):
            position = next(index for index, message in enumerate(replayed) if message.id == turn.user.id)
            _, end = tool_exchange(replayed, position + 1)
            for message in reversed(replayed[position + 2 : end]):  # its tool results and later replies first
                delete_message(services.conversations, store_id, replay, message.id)
            delete_message(
                services.conversations, store_id, replay, turn.user.id
            )  # the failed attempt goes (with its turn)
            replayed = services.conversations.all(store_id, replay)
    except BaseException:
        release(admission)
        raise
    send_turn(
        store_id, replay, turn, admission, user, until, turn_ids, {message.id for message in replayed}, refresh_keys
    )
    return turn


def replay_turns(original: list[Message], until: str | None, turn_ids: list[str] | None) -> list[Turn]:
    """The turns of a replay: those fixed when it started (``turn_ids``), else the original's up to ``until``."""
    return fixed(plan(original), turn_ids) if turn_ids is not None else plan(original, until)


def is_done(message: Message | None) -> bool:
    """A turn's last reply is done, and none of its tool calls waits for an answer."""
    return message is not None and message.status == "done" and not unanswered(message)


def unanswered(message: Message) -> list[str]:
    """The names of the tools ``message`` called that no result answers yet."""
    return [call.name for call in message.tool_calls if call.id not in message.answered_calls]


def new_replies(replayed: list[Message]) -> dict[str, Message]:
    """The replay's reply to each user turn, by the turn's id (the last of its tool exchange)."""
    return {user_id: exchange[-1] for user_id, exchange in new_exchanges(replayed).items()}


def new_exchanges(replayed: list[Message]) -> dict[str, list[Message]]:
    """The replay's replies to each user turn, by the turn's id (see ``tool_exchange``)."""
    exchanges = {}
    for index, message in enumerate(replayed):
        if message.role == "user":
            exchange, _ = tool_exchange(replayed, index + 1)
            if exchange:
                exchanges[message.id] = exchange
    return exchanges


def record_diff(store_id: str, replay: str, message_id: str) -> None:
    """In the worker, once a replay's reply ``message_id`` has ended: store on it its difference from the
    original's reply to the same turn (computed here, once; the page only reads it) and tell the page.

    Does nothing for a conversation that is not a replay, or a reply that did not end with its text.
    """
    if replay != replay_playground(source_playground(replay)):
        return
    replayed = services.conversations.all(store_id, replay)
    exchanges = new_exchanges(replayed)
    turn_id = next((user_id for user_id, exchange in exchanges.items() if exchange[-1].id == message_id), None)
    original = services.conversations.all(store_id, source_playground(replay))
    turn = next((turn for turn in plan(original) if turn.user.id == turn_id), None)
    new = next((message for message in replayed if message.id == message_id), None)
    if turn is None or not comparable(turn.old, new):
        return
    diff = compare(turn_text(turn.exchange), turn_text(exchanges[turn_id]))

    def with_diff(message: Message) -> Message | None:
        # Only onto the text compared: a retry or an edit meanwhile has its own (or none).
        return msgspec.structs.replace(message, diff=diff) if message.content == new.content else None

    _, stored = services.conversations.change(store_id, replay, message_id, with_diff)
    if stored:
        publish(store_id, "message.compared", {"playground": replay, "id": message_id})


def comparable(old: Message | None, new: Message | None) -> bool:
    """Whether two replies to a turn both ended with their text (done or stopped), so they can be compared."""
    return old is not None and new is not None and old.status in FINAL_WITH_TEXT and new.status in FINAL_WITH_TEXT


@dataclass
class ToolStep:
    """A tool call a turn made before its last reply, as its Replay row shows it: the tool's name, the
    arguments formatted, and the result it was given (None: none yet)."""

    name: str
    arguments: str
    result: str | None


def tool_steps(messages: list[Message], positions: dict[str, int], exchange: list[Message]) -> list[ToolStep]:
    """The tool calls of a turn's replies but the last (whose own card shows its calls), each with the result
    that answered it: the ``tool`` messages right after its reply in ``messages`` (``positions``: index by id)."""
    steps: list[ToolStep] = []
    if len(exchange) < 2:
        return steps
    for reply in exchange[:-1]:
        results = {}
        index = positions.get(reply.id, len(messages)) + 1
        while index < len(messages) and messages[index].role == TOOL_ROLE:
            results[messages[index].tool_call_id] = messages[index].content
            index += 1
        steps += [ToolStep(call.name, formatted(call.arguments), results.get(call.id)) for call in reply.tool_calls]
    return steps


def formatted(arguments: str) -> str:
    """A call's arguments as indented JSON, or as the model sent them when they are not JSON."""
    try:
        return format_json(json.loads(arguments or "{}"))
    except ValueError:
        return arguments


@dataclass
class Row:
    """One turn on the Replay page: what the user said, the old reply, the new one and their difference.

    ``diff_level`` is the stored diff's level ("words", "lines", "none"), or "missing" when the two
    replies have ended but no diff of these texts is stored (one was changed after the worker compared).
    """

    number: int
    user: Message
    old: Message | None
    new: Message | None
    diff: list[Piece] | None = None
    same: float | None = None
    diff_level: str | None = None
    # The tool calls each side's turn made before its last reply (``tool_steps``), shown above that reply.
    old_steps: list[ToolStep] = field(default_factory=list)
    new_steps: list[ToolStep] = field(default_factory=list)


@dataclass
class ReplayView:
    """What the Replay page shows: the rows, where the replay stands (a word and a sentence), its open reply."""

    status: str  # "none", "running", "done", "halted"
    sentence: str
    rows: list[Row]
    open_reply: Message | None = None
    total: int = 0


FINAL_WITH_TEXT = ("done", "stopped")


def replay_view(
    original: list[Message],
    replayed: list[Message],
    until: str | None,
    turn_ids: list[str] | None = None,
    paced_at: float | None = None,
) -> ReplayView:
    """Pair the original's turns with the replay's replies and their stored differences, say where the replay stands.

    ``paced_at``: when the next turn starts, if it waits for the send rate (``paced_until``). Nothing is
    diffed here: the worker stored each difference when its reply ended (``record_diff``).
    """
    turns = replay_turns(original, until, turn_ids)
    exchanges = new_exchanges(replayed)
    rows = []
    old_positions = {message.id: index for index, message in enumerate(original)}
    new_positions = {message.id: index for index, message in enumerate(replayed)}
    for number, turn in enumerate(turns, 1):
        new = exchanges[turn.user.id][-1] if turn.user.id in exchanges else None
        row = Row(number, turn.user, turn.old, new, old_steps=tool_steps(original, old_positions, turn.exchange))
        if new is not None:
            row.new_steps = tool_steps(replayed, new_positions, exchanges[turn.user.id])
        if comparable(turn.old, new):
            stored = new.diff
            if stored is not None and stored.digest == pair_digest(
                turn_text(turn.exchange), turn_text(exchanges[turn.user.id])
            ):
                row.diff, row.same, row.diff_level = stored.pieces, stored.same, stored.level
            else:
                row.diff_level = "missing"
        rows.append(row)
    open_reply = next((message for message in replayed if message.is_open), None)
    done = sum(1 for row in rows if is_done(row.new))
    if not replayed:
        return ReplayView("none", "No replay yet.", rows, total=len(rows))
    if open_reply is not None:
        number = next((row.number for row in rows if row.new is open_reply), done + 1)
        return ReplayView("running", f"Replaying turn {number} of {len(rows)}…", rows, open_reply, len(rows))
    if paced_at is not None and done < len(rows):
        at = datetime.fromtimestamp(paced_at, UTC).strftime("%H:%M:%S")
        sentence = f"Paced by the send limit: turn {done + 1} of {len(rows)} starts at {at} UTC."
        return ReplayView("running", sentence, rows, total=len(rows))
    if rows and done == len(rows):
        return ReplayView(
            "done", f"Replay finished: {len(rows)} turn{'s' if len(rows) != 1 else ''}.", rows, total=len(rows)
        )
    stuck = next((row for row in rows if not is_done(row.new)), None)
    if stuck is None:
        return ReplayView("halted", "The original conversation changed since this replay ran.", rows, total=len(rows))
    if stuck.new is None:
        reason = "stopped, or the original conversation changed, or a reply was retried"
        sentence = f"Halted before turn {stuck.number} of {len(rows)} ({reason}). Continue sends it."
    elif stuck.new.status == "done":  # its tool calls wait for an answer
        sentence = f"Halted at turn {stuck.number} of {len(rows)}: {stuck.new.tool_note or 'a tool call has no answer.'} Continue sends it again."
    elif stuck.new.status == "stopped":
        sentence = f"Stopped at turn {stuck.number} of {len(rows)}. Continue sends it again."
    else:
        sentence = f"Halted at turn {stuck.number} of {len(rows)}: {stuck.new.error or 'the reply failed'} Continue sends it again."
    return ReplayView("halted", sentence, rows, total=len(rows))
