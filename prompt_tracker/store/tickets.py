"""A reply's ticket in DB 0: which session and playground it belongs to, and the settings snapshot.

The RQ job carries only the message id and the attempt, so no session id reaches a job record or
a worker's log line; the worker reads the rest here.
"""

import msgspec

from ..domain.holds import Hold
from ..domain.keys import paced_key, ticket_key
from ..domain.settings import PlaygroundSettings
from .services import services


class Ticket(msgspec.Struct, kw_only=True):
    """What a worker needs to write a reply besides its id and attempt."""

    # The session's store id (SHA-256 of the cookie's id); "store" on the wire, as tickets were written before.
    store_id: str = msgspec.field(name="store")
    playground: str
    settings: PlaygroundSettings
    user: str | None = None  # whose budget the reply's cost counts against
    # Set on a replay's reply: the last user turn (its id in the original) the replay runs to;
    # when this reply is done the worker sends the next turn (``workbench.replay.after_reply``).
    replay_until: str | None = None
    # The replay's turns (the user turns' ids in the original), fixed when it started: nothing else is replayed.
    replay_turns: list[str] | None = None
    # A replay's RATE_LIMIT_SENDS where it started: its later turns, sent by the worker, count against it.
    send_rate: str | None = None
    # What the reply holds of its user's budget and open replies (``replies.gate``), settled when it ends.
    hold: Hold | None = None
    # The store id the session had before a login gave it a new one: its keys may not have moved yet.
    moved_from: str | None = None
    # How many rounds of tool calls in a row were answered with mocks before this reply (``replies.tool_results``).
    auto_rounds: int = 0


def write_ticket(message_id: str, ticket: Ticket, seconds: int, pipeline=None) -> None:
    """Store the ticket of ``message_id`` for ``seconds`` (as part of ``pipeline`` if one is given)."""
    (pipeline or services.jobs_redis).set(ticket_key(message_id), msgspec.json.encode(ticket), ex=seconds)


def read_ticket(message_id: str) -> Ticket | None:
    """The ticket of ``message_id``, or None if it expired or was never written."""
    raw = services.jobs_redis.get(ticket_key(message_id))
    return None if raw is None else msgspec.json.decode(raw, type=Ticket)


def delete_ticket(message_id: str) -> None:
    """Forget the ticket (the reply is final)."""
    services.jobs_redis.delete(ticket_key(message_id))


class Pace(msgspec.Struct, kw_only=True):
    """A replay waiting for the send rate: the ticket of its last reply, and when its next turn may go (UNIX time)."""

    ticket: Ticket
    at: float


def write_pace(message_id: str, pace: Pace, seconds: int) -> None:
    """Record that the turn after reply ``message_id`` waits until ``pace.at`` (for ``seconds``)."""
    services.jobs_redis.set(paced_key(message_id), msgspec.json.encode(pace), ex=max(1, seconds))


def read_pace(message_id: str) -> Pace | None:
    """The pace after reply ``message_id``, if its next turn is waiting."""
    raw = services.jobs_redis.get(paced_key(message_id))
    return None if raw is None else msgspec.json.decode(raw, type=Pace)


def take_pace(message_id: str) -> Pace | None:
    """Claim the pace after reply ``message_id`` (once: the one that gets it sends the turn); None if gone."""
    raw = services.jobs_redis.getdel(paced_key(message_id))
    return None if raw is None else msgspec.json.decode(raw, type=Pace)


def move_open_replies(old_store_id: str, new_store_id: str) -> int:
    """Point the tickets of session ``old_store_id``'s open replies at ``new_store_id`` (a login's new id).

    Call it before the session's keys move (``ConversationStore.move_session``): a worker that
    finds its conversation gone re-reads its ticket and looks under ``store_id``, then ``moved_from``,
    so it follows the move whenever it happens. Returns how many tickets were rewritten.
    """
    message_ids = [message_id for _playground, message_id in services.conversations.open_replies(old_store_id)]
    if not message_ids:
        return 0
    redis = services.jobs_redis
    keys = [ticket_key(message_id) for message_id in message_ids]
    moved = 0
    with redis.pipeline(transaction=False) as pipe:
        for key, raw in zip(keys, redis.mget(keys)):
            if raw is None:
                continue  # the reply ended meanwhile
            ticket = msgspec.json.decode(raw, type=Ticket)
            if ticket.store_id != old_store_id:
                continue
            ticket = msgspec.structs.replace(ticket, store_id=new_store_id, moved_from=old_store_id)
            pipe.set(key, msgspec.json.encode(ticket), xx=True, keepttl=True)  # never revive a deleted one
            moved += 1
        pipe.execute()
    return moved
