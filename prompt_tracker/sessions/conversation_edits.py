"""Whole-list changes to a conversation, each one atomic Lua script on its Redis list."""

from typing import Iterable

from ..messages import Message, encode_message
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


def replace_conversation(store: ConversationStore, sid: str, playground: str, messages: list[Message],
                         refresh_keys: Iterable[str] = ()) -> int:
    """Make ``messages`` the whole conversation in one step (readers see the old list or the new one)."""
    key = store.key(sid, playground)
    others = dict.fromkeys([session_key(store.key_prefix, sid), *refresh_keys])
    others.pop(key, None)
    script = store.redis.register_script(_REPLACE)
    return script(keys=[key, *others], args=[store.ttl_seconds, *map(encode_message, messages)])
