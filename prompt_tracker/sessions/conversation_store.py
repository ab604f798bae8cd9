"""Conversations as Redis lists beside the session blob: append, read a window, update by id, clear.

A send is one atomic script call (append the user message and the assistant placeholder, check the
cap, push the expiry), so concurrent sends never overwrite each other and cost the same at any
length. The worker replaces its placeholder by id with a compare-and-set, so a reply that arrives
after a Reset (the list is gone, or holds other messages) is dropped instead of reappearing.
"""

from dataclasses import dataclass
from typing import Callable, Iterable

from ..messages import Message, decode_message, encode_message
from ..redis_keys import conversation_key, session_key

# KEYS: the conversation, then the session's other keys (blob, other conversations), whose expiry
# is pushed too (they share the {sid} hash slot). ARGV: ttl, cap, records...
_APPEND = """
local n = redis.call('LLEN', KEYS[1])
if n + #ARGV - 2 > tonumber(ARGV[2]) then return -1 end
local len = redis.call('RPUSH', KEYS[1], unpack(ARGV, 3))
for i = 1, #KEYS do redis.call('EXPIRE', KEYS[i], ARGV[1]) end
return len
"""

# KEYS: conversation. ARGV: index, expected old record, new record.
_COMPARE_AND_SET = """
if redis.call('LINDEX', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('LSET', KEYS[1], ARGV[1], ARGV[3])
  return 1
end
return 0
"""

SEARCH_CHUNK = 64


class ConversationFull(Exception):
    """The conversation already holds the configured maximum number of messages."""


@dataclass
class Window:
    """A slice of a conversation: ``messages`` start at absolute index ``start`` of ``total``."""

    messages: list[Message]
    start: int
    total: int


class ConversationStore:
    """Reads and writes the conversation lists of sessions in one Redis database."""

    def __init__(self, redis, key_prefix: str, ttl_seconds: int, max_messages: int):
        self.redis = redis
        self.key_prefix = key_prefix
        self.ttl_seconds = ttl_seconds
        self.max_messages = max_messages
        self._append = redis.register_script(_APPEND)
        self._compare_and_set = redis.register_script(_COMPARE_AND_SET)

    def key(self, sid: str, playground: str) -> str:
        """Redis key of one conversation."""
        return conversation_key(self.key_prefix, sid, playground)

    def append(self, sid: str, playground: str, *messages: Message, refresh_keys: Iterable[str] = ()) -> int:
        """Append messages atomically and slide the expiry of the session (blob and ``refresh_keys``).

        Returns the new length; raises ConversationFull (appending nothing) past the cap.
        """
        key = self.key(sid, playground)
        others = dict.fromkeys([session_key(self.key_prefix, sid), *refresh_keys])
        others.pop(key, None)
        length = self._append(
            keys=[key, *others],
            args=[self.ttl_seconds, self.max_messages, *map(encode_message, messages)],
        )
        if length == -1:
            raise ConversationFull(
                f"This conversation has reached its limit of {self.max_messages} messages. "
                "Press Reset to start a new one."
            )
        return length

    def window(self, sid: str, playground: str, limit: int, end: int | None = None,
               refresh_keys: Iterable[str] = ()) -> Window:
        """Read at most ``limit`` messages ending before absolute index ``end`` (default: the latest).

        One round trip; ``refresh_keys`` get their expiry pushed in the same pipeline.
        """
        key = self.key(sid, playground)
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.llen(key)
            if end is None:
                pipe.lrange(key, -limit, -1)
            elif end > 0:
                pipe.lrange(key, max(0, end - limit), end - 1)
            else:
                pipe.lrange(key, 1, 0)  # nothing lies before the first message ("0 -1" would be all)
            for refresh_key in refresh_keys:
                pipe.expire(refresh_key, self.ttl_seconds)
            total, raw, *_ = pipe.execute()
        stop = total if end is None else min(end, total)
        start = max(0, stop - len(raw))
        return Window([decode_message(item) for item in raw], start, total)

    def all(self, sid: str, playground: str) -> list[Message]:
        """Read the whole conversation (what a model is sent as history)."""
        return [decode_message(item) for item in self.redis.lrange(self.key(sid, playground), 0, -1)]

    def count(self, sid: str, playground: str) -> int:
        """Number of messages in the conversation."""
        return self.redis.llen(self.key(sid, playground))

    def find(self, sid: str, playground: str, message_id: str) -> tuple[int, bytes, Message] | None:
        """Locate a message by id, searching from the newest end; None if it is not there."""
        key = self.key(sid, playground)
        end = None  # absolute index one past the chunk being searched
        while True:
            with self.redis.pipeline(transaction=True) as pipe:
                pipe.llen(key)
                if end is None:
                    pipe.lrange(key, -SEARCH_CHUNK, -1)
                else:
                    pipe.lrange(key, max(0, end - SEARCH_CHUNK), end - 1)
                total, raw = pipe.execute()
            if not raw:
                return None
            if end is None:
                end = total
            first = end - len(raw)
            for offset in range(len(raw) - 1, -1, -1):
                message = decode_message(raw[offset])
                if message.id == message_id:
                    return first + offset, raw[offset], message
            if first <= 0:
                return None
            end = first

    def get(self, sid: str, playground: str, message_id: str) -> Message | None:
        """Return one message by id, or None."""
        found = self.find(sid, playground, message_id)
        return found[2] if found else None

    def update(self, sid: str, playground: str, message_id: str,
               change: Callable[[Message], Message | None], attempts: int = 20) -> Message | None:
        """Replace a message by id with ``change(message)``; None if the message is gone.

        ``change`` may return None to leave the message as it is. The write is a compare-and-set,
        retried if the message moved or changed in between.
        """
        key = self.key(sid, playground)
        for _ in range(attempts):
            found = self.find(sid, playground, message_id)
            if found is None:
                return None
            index, raw, message = found
            replacement = change(message)
            if replacement is None:
                return message
            if self._compare_and_set(keys=[key], args=[index, raw, encode_message(replacement)]):
                return replacement
        raise RuntimeError(f"message {message_id} kept changing; gave up after {attempts} attempts")

    def clear(self, sid: str, playground: str) -> bool:
        """Delete the conversation now; True if there was one."""
        return bool(self.redis.unlink(self.key(sid, playground)))

    def refresh(self, keys: Iterable[str]) -> None:
        """Push the expiry of ``keys`` to the full lifetime from now, in one round trip."""
        keys = list(keys)
        if not keys:
            return
        with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.expire(key, self.ttl_seconds)
            pipe.execute()
