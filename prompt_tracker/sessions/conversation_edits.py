"""Whole-list changes to a conversation, each one atomic Lua script on its Redis list."""

from collections.abc import Iterable

from ..messages import Message, decode_message, encode_message
from ..redis_keys import session_key
from .conversation_store import ConversationStore

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
    store: ConversationStore, sid: str, playground: str, messages: list[Message], refresh_keys: Iterable[str] = ()
) -> int:
    """Make ``messages`` the whole conversation in one step (readers see the old list or the new one)."""
    key = store.key(sid, playground)
    others = dict.fromkeys([session_key(store.key_prefix, sid), *refresh_keys])
    others.pop(key, None)
    script = store.redis.register_script(_REPLACE)
    return script(keys=[key, *others], args=[store.ttl_seconds, *map(encode_message, messages)])


# KEYS: the conversation. ARGV: index, expected record, and when the next message goes too (a user
# message's reply), its index and expected record. Both are checked before anything is removed.
_DELETE = """
if redis.call('LINDEX', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
if ARGV[3] and redis.call('LINDEX', KEYS[1], ARGV[3]) ~= ARGV[4] then return 0 end
local gone = '\\0deleted'
redis.call('LSET', KEYS[1], ARGV[1], gone)
if ARGV[3] then redis.call('LSET', KEYS[1], ARGV[3], gone) end
return redis.call('LREM', KEYS[1], 0, gone)
"""


def delete_message(store: ConversationStore, sid: str, playground: str, message_id: str, attempts: int = 5) -> int:
    """Remove a message (a user message with the reply after it) by id, compare-and-set; how many went.

    0 when it is not there. A reply being written at the same time finds its placeholder gone and is
    dropped, as after a Reset.
    """
    key = store.key(sid, playground)
    script = store.redis.register_script(_DELETE)
    for _ in range(attempts):
        found = store.find(sid, playground, message_id)
        if found is None:
            return 0
        index, raw, message = found
        args = [index, raw]
        if message.role == "user":
            following = store.redis.lindex(key, index + 1)
            if following is not None and decode_message(following).role == "assistant":
                args += [index + 1, following]
        removed = script(keys=[key], args=args)
        if removed:
            return removed
    raise RuntimeError(f"message {message_id} kept moving; gave up after {attempts} attempts")
