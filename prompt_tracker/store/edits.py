"""Whole-list changes to a conversation (import, delete, edit and resend), each one atomic Lua script on its Redis list."""

import time
from collections.abc import Iterable

from ..domain.keys import session_key
from ..domain.messages import Message, decode_message
from ..domain.refusals import Refused
from .conversations import ConversationFull, ConversationStore, TooManyOpenReplies, open_member

# KEYS: the conversation, then the session's other keys (their expiry is pushed too).
# ARGV: ttl, records... Pushed in slices: Lua's unpack() has a limit on how many values it returns.
_REPLACE = """
redis.call('DEL', KEYS[1])
for first = 2, #ARGV, 1000 do
  redis.call('RPUSH', KEYS[1], unpack(ARGV, first, math.min(first + 999, #ARGV)))
end
for i = 1, #KEYS do redis.call('EXPIRE', KEYS[i], ARGV[1]) end
return #ARGV - 1
"""


def replace_conversation(
    conversations: ConversationStore,
    store_id: str,
    playground: str,
    messages: list[Message],
    refresh_keys: Iterable[str] = (),
) -> int:
    """Make ``messages`` the whole conversation in one step (readers see the old list or the new one)."""
    key = conversations.key(store_id, playground)
    others = dict.fromkeys([session_key(conversations.key_prefix, store_id), *refresh_keys])
    others.pop(key, None)
    script = conversations.redis.register_script(_REPLACE)
    return script(keys=[key, *others], args=[conversations.ttl_for(store_id), *map(conversations.record, messages)])


# KEYS: the conversation, the session's open set. ARGV: 1 playground, 2 partial prefix, 3 stop prefix,
# 4 stop ttl, 5 index, 6 expected record, 7 id of the reply being written among what goes ('' if none),
# and when the next message goes too (a user message's reply), 8 its index and 9 expected record. Both
# are checked before anything is removed. An open reply that goes stops at its worker's next flush, as
# after a Reset: its stop key is set, its partial text and its place in the open set go at once.
_DELETE = """
if redis.call('LINDEX', KEYS[1], ARGV[5]) ~= ARGV[6] then return 0 end
if ARGV[8] and redis.call('LINDEX', KEYS[1], ARGV[8]) ~= ARGV[9] then return 0 end
if ARGV[7] ~= '' then
  redis.call('SET', ARGV[3] .. ARGV[7], 1, 'EX', ARGV[4])
  redis.call('UNLINK', ARGV[2] .. ARGV[7])
  redis.call('ZREM', KEYS[2], ARGV[1] .. ':' .. ARGV[7])
end
local gone = '\\0deleted'
redis.call('LSET', KEYS[1], ARGV[5], gone)
if ARGV[8] then redis.call('LSET', KEYS[1], ARGV[8], gone) end
return redis.call('LREM', KEYS[1], 0, gone)
"""


def delete_message(
    conversations: ConversationStore,
    store_id: str,
    playground: str,
    message_id: str,
    attempts: int = 5,
    stop_seconds: int | None = None,
) -> int:
    """Remove a message (a user message with the reply after it) by id, compare-and-set; how many went.

    0 when it is not there. A reply being written among them is stopped as by a Reset: its worker
    closes the provider stream at its next flush, its slot and partial text go now. ``stop_seconds``:
    how long the stop request is kept (default: as long as an open reply counts, longer than any job).
    """
    key = conversations.key(store_id, playground)
    script = conversations.redis.register_script(_DELETE)
    for _ in range(attempts):
        found = conversations.find(store_id, playground, message_id)
        if found is None:
            return 0
        index, raw, message = found
        removed = [message]
        args = [index, raw]
        if message.role == "user":
            following = conversations.redis.lindex(key, index + 1)
            if following is not None and (reply := decode_message(following)).role == "assistant":
                args += [index + 1, following]
                removed.append(reply)
        open_reply = next((m.id for m in removed if m.role == "assistant" and m.is_open), "")
        gone = script(
            keys=[key, conversations.open_key(store_id)],
            args=[
                playground,
                conversations.partial_key(store_id, ""),
                conversations.stop_key(store_id, ""),
                stop_seconds or conversations.open_seconds,
                *args[:2],
                open_reply,
                *args[2:],
            ],
        )
        if gone:
            return gone
    raise RuntimeError(f"message {message_id} kept moving; gave up after {attempts} attempts")


def removed_with(conversations: ConversationStore, store_id: str, playground: str, message_id: str) -> list[Message]:
    """What deleting ``message_id`` would remove now: the message, and after a user message its reply (if
    an assistant message follows it); [] if it is not there. What the page says before a delete."""
    found = conversations.find(store_id, playground, message_id)
    if found is None:
        return []
    index, _raw, message = found
    if message.role != "user":
        return [message]
    following = conversations.redis.lindex(conversations.key(store_id, playground), index + 1)
    reply = decode_message(following) if following is not None else None
    return [message, reply] if reply is not None and reply.role == "assistant" else [message]


class NotAUserMessage(Refused, ValueError):
    """Only the user's own messages can be edited and resent."""

    status = 409

    def __init__(self, sentence: str = "Only your own messages can be edited and resent."):
        super().__init__(sentence)


class UnconfirmedRemoval(Refused):
    """More messages follow the edited one than the person agreed to remove; ``count`` is how many.

    ``confirmed``: the person had agreed to remove fewer (more arrived since the form was shown). The
    page's script asks with its Resend button, a form without script with its check box.
    """

    status = 409

    def __init__(self, count: int, confirmed: int = 0):
        self.count = count
        many = f"{count} message{'' if count == 1 else 's'}"
        if confirmed:
            sentence = json_sentence = (
                f"{many.capitalize()} now follow this one (more arrived since the form was shown); confirm again."
            )
        else:
            sentence = f"Resending removes the {many} after this one: tick the box to confirm."
            json_sentence = f"Resending removes the {many} after this one: press Resend again to confirm."
        super().__init__(sentence, removes=count)
        self.json_sentence = json_sentence

    def json(self) -> dict:
        return {**super().json(), "error": self.json_sentence}


# Edit a user message and resend from there. KEYS: the conversation, the session's open set, then
# the session's other keys (their expiry is pushed too).
# ARGV: 1 index, 2 expected record there, 3 edited record, 4 placeholder record, 5 placeholder's open
# member, 6 deadline, 7 now, 8 open cap (0: none), 9 message cap, 10 ttl, 11 playground, 12 partial prefix,
# 13 stop prefix, 14 stop ttl, 15 how many records follow, 16.. those records, then the ids of the
# open replies among them. Every record from the index on must be as read (a reply written at the
# same time changes its record: the caller reads again and retries). Returns 1, 0 (changed in
# between), -1 (conversation full) or -2 (too many open replies); nothing is written unless 1.
_EDIT = """
local index, following = tonumber(ARGV[1]), tonumber(ARGV[15])
if redis.call('LINDEX', KEYS[1], index) ~= ARGV[2] then return 0 end
if redis.call('LLEN', KEYS[1]) ~= index + 1 + following then return 0 end
local tail = redis.call('LRANGE', KEYS[1], index + 1, -1)
for i = 1, following do
  if tail[i] ~= ARGV[15 + i] then return 0 end
end
if index + 2 > tonumber(ARGV[9]) then return -1 end
local open_ids = 16 + following
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[7])
local open = redis.call('ZCARD', KEYS[2])
for i = open_ids, #ARGV do
  if redis.call('ZSCORE', KEYS[2], ARGV[11] .. ':' .. ARGV[i]) then open = open - 1 end
end
if tonumber(ARGV[8]) > 0 and open >= tonumber(ARGV[8]) then return -2 end
-- The replies that go stop at their worker's next flush, as after a Reset; their text so far goes.
for i = open_ids, #ARGV do
  redis.call('SET', ARGV[13] .. ARGV[i], 1, 'EX', ARGV[14])
  redis.call('UNLINK', ARGV[12] .. ARGV[i])
  redis.call('ZREM', KEYS[2], ARGV[11] .. ':' .. ARGV[i])
end
if index == 0 then redis.call('DEL', KEYS[1]) else redis.call('LTRIM', KEYS[1], 0, index - 1) end
redis.call('RPUSH', KEYS[1], ARGV[3], ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[6], ARGV[5])
for i = 1, #KEYS do redis.call('EXPIRE', KEYS[i], ARGV[10]) end
return 1
"""


def resend_from(
    conversations: ConversationStore,
    store_id: str,
    playground: str,
    message_id: str,
    edited: Message,
    placeholder: Message,
    removals_confirmed: int,
    refresh_keys: Iterable[str] = (),
    stop_seconds: int = 600,
    attempts: int = 20,
) -> list[Message] | None:
    """Replace user message ``message_id`` by ``edited``, drop every message after it, append ``placeholder``.

    One compare-and-set: the message and everything after it must be as read, else it reads again.
    Open replies among the dropped messages are asked to stop and their partial text goes. Returns the
    dropped messages, or None if ``message_id`` is not in the conversation. Raises NotAUserMessage,
    UnconfirmedRemoval (more than ``removals_confirmed`` messages would go), ConversationFull or
    TooManyOpenReplies, with nothing changed.
    """
    key = conversations.key(store_id, playground)
    others = dict.fromkeys([session_key(conversations.key_prefix, store_id), *refresh_keys])
    others.pop(key, None)
    others.pop(conversations.open_key(store_id), None)
    script = conversations.redis.register_script(_EDIT)
    for _ in range(attempts):
        found = conversations.find(store_id, playground, message_id)
        if found is None:
            return None
        index, raw, message = found
        if message.role != "user":
            raise NotAUserMessage()
        tail = conversations.redis.lrange(key, index + 1, -1)
        if len(tail) > removals_confirmed:
            raise UnconfirmedRemoval(len(tail), removals_confirmed)
        dropped = [decode_message(record) for record in tail]
        open_ids = [m.id for m in dropped if m.role == "assistant" and m.is_open]
        now = time.time()
        written = script(
            keys=[key, conversations.open_key(store_id), *others],
            args=[
                index,
                raw,
                conversations.record(edited),
                conversations.record(placeholder),
                open_member(playground, placeholder.id),
                now + conversations.open_seconds,
                now,
                conversations.max_open_replies,
                conversations.max_messages,
                conversations.ttl_for(store_id),
                playground,
                conversations.partial_key(store_id, ""),
                conversations.stop_key(store_id, ""),
                stop_seconds,
                len(tail),
                *tail,
                *open_ids,
            ],
        )
        if written == -1:
            raise ConversationFull(
                f"This conversation has reached its limit of {conversations.max_messages} messages. "
                "Press Reset to start a new one."
            )
        if written == -2:
            raise TooManyOpenReplies(conversations.too_many_open())
        if written == 1:
            return dropped
    raise RuntimeError(f"message {message_id} kept moving; gave up after {attempts} attempts")
