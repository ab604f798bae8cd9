"""Conversations as Redis lists beside the session blob: append, read a window, change by id, clear.

Every method takes the session's **store id** (``domain.keys.store_id``), never the cookie's id.

A send is one atomic script call (append the user message and the assistant placeholder, check the
caps, record the open reply, push the expiry), so concurrent sends never overwrite each other and
cost the same at any length. A message changes by id with a compare-and-set, so a reply that
arrives after a Reset (the list is gone, or holds other messages) is dropped instead of reappearing,
and two workers can never both claim one attempt of a reply.

Beside the list, per session (same hash tag, same TTL): ``open`` (the replies queued or being
written, for the per-session cap and Reset), and per open reply ``partial`` (its text so far) and
``stop`` (asks its worker to stop; ``stop:<id>:<attempt>`` stops only an attempt a Retry replaced).
"""

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import msgspec
from redis.cluster import RedisCluster
from redis.exceptions import NoScriptError

from ..domain.keys import (
    conversation_key,
    is_workspace_id,
    open_replies_key,
    partial_key,
    session_key,
    stop_key,
    submissions_key,
)
from ..domain.messages import Message, decode_message, encode_message
from ..domain.refusals import Refused

# KEYS: conversation, open set, then the session's other keys (blob, other conversations), whose
# expiry is pushed too (they share the {store id} hash slot).
# ARGV: ttl, message cap, open member ('' if nothing opens), deadline, now, open cap (0: none), records...
_APPEND = """
local n = redis.call('LLEN', KEYS[1])
if n + #ARGV - 6 > tonumber(ARGV[2]) then return -1 end
if ARGV[3] ~= '' then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[5])
  if tonumber(ARGV[6]) > 0 and redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[6]) then return -2 end
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
end
local len = redis.call('RPUSH', KEYS[1], unpack(ARGV, 7))
for i = 1, #KEYS do redis.call('EXPIRE', KEYS[i], ARGV[1]) end
return len
"""

# KEYS: conversation, open set, then the session's other keys to refresh.
# ARGV: limit, end (-1: the latest), ttl, playground, partial key prefix, max bytes (0: any).
# Returns the list's length, the window's records, [id, text, ...] of this playground's partials, and
# whether the first key to refresh (a session's blob) still existed (1 when there is none).
# With ARGV[7] (a conversation key prefix), the first key to refresh is a workspace's blob not read yet:
# it is returned too, and the conversations it names (its ``conversations`` map, msgpack or JSON) are
# refreshed with it, so a signed-in page view reads its workspace in the window's round trip.
# The window is the latest ``limit`` records before ``end`` whose bytes add up to at most ``max bytes``
# (the newest one always), so a page of long messages stays light. A record weighs its bytes without
# its fragment (``Message.fragment``, the first entry of its msgpack map when present): the same
# messages make the same window whether or not their records carry one.
_WINDOW = """
local FRAGMENT = string.char(168) .. 'fragment'
local function weight(record)
  local first, at = string.byte(record, 1), 2
  if first == 222 then at = 4 elseif first < 128 or first > 143 then return #record end
  if string.sub(record, at, at + 8) ~= FRAGMENT then return #record end
  local tag, b = string.byte(record, at + 9), {string.byte(record, at + 10, at + 13)}
  local header, size
  if tag >= 160 and tag <= 191 then header, size = 1, tag - 160
  elseif tag == 217 then header, size = 2, b[1]
  elseif tag == 218 then header, size = 3, b[1] * 256 + b[2]
  elseif tag == 219 then header, size = 5, ((b[1] * 256 + b[2]) * 256 + b[3]) * 256 + b[4]
  else return #record end
  -- The map's header stays as it is: msgspec sizes it by the struct's fields, not by those it writes.
  return #record - 9 - header - size
end
local total = redis.call('LLEN', KEYS[1])
local limit, stop, budget = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[6])
if stop < 0 then stop = total end
local first, last = math.max(0, stop - limit), math.min(stop, total) - 1
local records = {}
if budget <= 0 then
  if last >= first then records = redis.call('LRANGE', KEYS[1], first - total, last - total) end
else
  -- Newest first, 16 at a time, until the budget is spent: only what the page shows is copied.
  local newest_first, used = {}, 0
  while last >= first do
    local chunk = redis.call('LRANGE', KEYS[1], math.max(first, last - 15) - total, last - total)
    if #chunk == 0 then break end
    last = last - #chunk
    for i = #chunk, 1, -1 do
      local size = weight(chunk[i])
      if #newest_first > 0 and used + size > budget then last = -1; break end
      used = used + size
      newest_first[#newest_first + 1] = chunk[i]
    end
  end
  for i = #newest_first, 1, -1 do records[#records + 1] = newest_first[i] end
end
local partials = {}
for _, member in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local playground, id = string.match(member, '^(.-):(.*)$')
  if playground == ARGV[4] then
    -- Same hash tag as KEYS[1]: a key of the same session, built here because its id was unknown.
    local text = redis.call('GET', ARGV[5] .. id)
    if text then partials[#partials + 1] = id; partials[#partials + 1] = text end
  end
end
local first_refreshed = 1
for i = 3, #KEYS do
  local pushed = redis.call('EXPIRE', KEYS[i], ARGV[3])
  if i == 3 then first_refreshed = pushed end
end
local blob = false
if ARGV[7] and ARGV[7] ~= '' then
  blob = redis.call('GET', KEYS[3])
  if blob then
    local decode = string.sub(blob, 1, 1) == '{' and cjson.decode or cmsgpack.unpack
    local ok, data = pcall(decode, blob)
    if ok and type(data) == 'table' and type(data['conversations']) == 'table' then
      for name, _ in pairs(data['conversations']) do
        -- Same hash tag as KEYS[1]: a conversation of the same workspace, named in its blob.
        if type(name) == 'string' then redis.call('EXPIRE', ARGV[7] .. name, ARGV[3]) end
      end
    end
  end
end
return {total, records, partials, first_refreshed, blob}
"""

# KEYS: conversation, open set, partial, stop, and the stop key of the attempt being replaced.
# ARGV: index, expected old record, new record, open member, mode (open|reopen|final|same), deadline,
# now, open cap (0: none), ttl, seconds a replaced attempt's stop key is kept. "open" records the reply
# as open (refused past the cap unless it already is); "reopen" does too for a new attempt, whose
# partial and stop keys start empty, and stops the attempt it replaces (a worker thought dead may
# still live); "final" forgets it and deletes its partial and stop keys, in the same atomic step.
_CHANGE = """
if redis.call('LINDEX', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
if ARGV[5] == 'open' or ARGV[5] == 'reopen' then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[7])
  local cap = tonumber(ARGV[8])
  if cap > 0 and not redis.call('ZSCORE', KEYS[2], ARGV[4]) and redis.call('ZCARD', KEYS[2]) >= cap then
    return -1
  end
  redis.call('ZADD', KEYS[2], ARGV[6], ARGV[4])
  redis.call('EXPIRE', KEYS[2], ARGV[9])
  if ARGV[5] == 'reopen' then
    redis.call('DEL', KEYS[3], KEYS[4])
    redis.call('SET', KEYS[5], 1, 'EX', ARGV[10])
  end
elseif ARGV[5] == 'final' then
  redis.call('ZREM', KEYS[2], ARGV[4])
  redis.call('DEL', KEYS[3], KEYS[4])
end
redis.call('LSET', KEYS[1], ARGV[1], ARGV[3])
return 1
"""

# KEYS: conversation, partial, stop, the stop key of the flushing attempt. ARGV: text, ttl.
# Returns {conversation exists, stop requested}; the text is appended only if neither ends the reply,
# so an attempt that a Retry replaced never writes into its successor's partial.
_FLUSH = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, 0} end
if redis.call('EXISTS', KEYS[3], KEYS[4]) > 0 then return {1, 1} end
if ARGV[1] ~= '' then
  redis.call('APPEND', KEYS[2], ARGV[1])
  redis.call('EXPIRE', KEYS[2], ARGV[2])
end
return {1, 0}
"""

# A composer submission, once. KEYS: the session's submissions. ARGV: token, now, forget at, seconds.
_MARK = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
if redis.call('ZADD', KEYS[1], 'NX', ARGV[3], ARGV[1]) == 0 then return 0 end
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""

# Reset. KEYS: conversation, open set. ARGV: playground, partial prefix, stop prefix, stop ttl, and
# "keep" to leave the conversation itself (an Import replaces it).
# Sets the stop key of every open reply of the playground first, then unlinks the conversation and
# those replies' partials. Returns the ids of the replies that were open.
_CLEAR = """
local stopped = {}
for _, member in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local playground, id = string.match(member, '^(.-):(.*)$')
  if playground == ARGV[1] then
    redis.call('SET', ARGV[3] .. id, 1, 'EX', ARGV[4])
    redis.call('UNLINK', ARGV[2] .. id)
    redis.call('ZREM', KEYS[2], member)
    stopped[#stopped + 1] = id
  end
end
local existed = ARGV[5] == 'keep' and redis.call('EXISTS', KEYS[1]) or redis.call('UNLINK', KEYS[1])
return {existed, stopped}
"""

# A new session id (login). KEYS: pairs of (old key, new key); each old key that exists is renamed.
_MOVE = """
local moved = 0
for i = 1, #KEYS, 2 do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('RENAME', KEYS[i], KEYS[i + 1])
    moved = moved + 1
  end
end
return moved
"""

SEARCH_CHUNK = 64


class ConversationFull(Refused):
    """The conversation already holds the configured maximum number of messages."""

    status = 422


class TooManyOpenReplies(Refused):
    """The session already has the configured maximum of replies queued or being written."""

    status = 429


@dataclass
class Window:
    """A slice of a conversation: ``messages`` start at absolute index ``start`` of ``total``.

    ``partials`` maps the id of each reply being written to the text it has streamed so far;
    ``first_refreshed`` tells whether the first of the keys whose expiry the read pushed still existed.
    """

    messages: list[Message]
    start: int
    total: int
    partials: dict[str, str] = field(default_factory=dict)
    first_refreshed: bool = True
    blob: bytes | None = None  # the workspace blob read in passing (``window(read_blob=True)``)
    also_refreshed: bool = True  # whether every key of ``window(also_expire=...)`` still existed


def open_member(playground: str, message_id: str) -> str:
    """Member of the session's ``open`` set for one reply."""
    return f"{playground}:{message_id}"


class ConversationStore:
    """Reads and writes the conversation lists of sessions in one Redis database.

    ``render_fragment(message)`` (given by the app: the page's message HTML) is called for every
    record written final, whoever writes it (send, finish, edit, import, copies), and its result is
    stored on the record as ``fragment``; an open record is stored without one.
    """

    def __init__(
        self,
        redis,
        key_prefix: str,
        ttl_seconds: int,
        max_messages: int,
        max_open_replies: int = 3,
        open_seconds: int = 3600,
        render_fragment: Callable[[Message], str] | None = None,
        workspace_ttl_seconds: int | None = None,
    ):
        self.redis = redis
        self.render_fragment = render_fragment
        self.key_prefix = key_prefix
        self.ttl_seconds = ttl_seconds
        # A signed-in user's workspace (``domain.keys.workspace_id``) slides for longer than a session.
        self.workspace_ttl_seconds = workspace_ttl_seconds or ttl_seconds
        self.max_messages = max_messages
        self.max_open_replies = max_open_replies
        # An open reply whose worker never finished stops counting against the cap after this.
        self.open_seconds = open_seconds
        self._append = redis.register_script(_APPEND)
        self._window = redis.register_script(_WINDOW)
        self._change = redis.register_script(_CHANGE)
        self._flush = redis.register_script(_FLUSH)
        self._clear = redis.register_script(_CLEAR)
        self._mark = redis.register_script(_MARK)
        self._move = redis.register_script(_MOVE)

    def ttl_for(self, store_id: str) -> int:
        """Seconds the keys of ``store_id`` live after their last use: a workspace's lifetime, or a session's."""
        return self.workspace_ttl_seconds if is_workspace_id(store_id) else self.ttl_seconds

    def key(self, store_id: str, playground: str) -> str:
        """Redis key of one conversation."""
        return conversation_key(self.key_prefix, store_id, playground)

    def as_stored(self, message: Message) -> Message:
        """The message as it is written: final, with its fragment rendered now; open, with none."""
        if message.is_open or self.render_fragment is None:
            fragment = None
        else:
            # Rendered from the record itself (never a fragment it carries: it may be a changed copy's).
            fragment = self.render_fragment(msgspec.structs.replace(message, fragment=None))
        return message if fragment == message.fragment else msgspec.structs.replace(message, fragment=fragment)

    def record(self, message: Message) -> bytes:
        """The bytes stored for ``message`` in a conversation list (see ``as_stored``)."""
        return encode_message(self.as_stored(message))

    def append(self, store_id: str, playground: str, *messages: Message, refresh_keys: Iterable[str] = ()) -> int:
        """Append messages atomically and slide the expiry of the session (blob and ``refresh_keys``).

        An assistant message in ``messages`` that is open (a placeholder) counts against the
        session's cap of open replies. Returns the new length; raises ConversationFull or
        TooManyOpenReplies (appending nothing) past a cap.
        """
        key = self.key(store_id, playground)
        opens = self.open_key(store_id)
        others = dict.fromkeys([session_key(self.key_prefix, store_id), *refresh_keys])
        others.pop(key, None)
        others.pop(opens, None)
        placeholder = next((m for m in messages if m.role == "assistant" and m.is_open), None)
        now = time.time()
        length = self._append(
            keys=[key, opens, *others],
            args=[
                self.ttl_for(store_id),
                self.max_messages,
                open_member(playground, placeholder.id) if placeholder else "",
                now + self.open_seconds,
                now,
                self.max_open_replies,
                *map(self.record, messages),
            ],
        )
        if length == -1:
            raise ConversationFull(
                f"This conversation has reached its limit of {self.max_messages} messages. "
                "Press Reset to start a new one."
            )
        if length == -2:
            raise TooManyOpenReplies(self.too_many_open())
        return length

    def insert_before(self, store_id: str, playground: str, pivot: bytes, message: Message) -> bool:
        """Insert a final ``message`` just before the record ``pivot`` (its stored bytes: unique, each holds
        its id); False when that record is no longer there as it was. The caller checks the caps."""
        return self.redis.linsert(self.key(store_id, playground), "BEFORE", pivot, self.record(message)) > 0

    def too_many_open(self) -> str:
        """The sentence shown when a send or retry would pass the open-replies cap."""
        return self.too_many_open_for(self.max_open_replies)

    @staticmethod
    def too_many_open_for(limit: int) -> str:
        """The sentence shown when a send or retry would pass a cap of ``limit`` open replies."""
        replies = "reply" if limit == 1 else f"{limit} replies"
        return (
            f"You already have {replies} being written; wait for one to finish "
            "(or stop one) before sending another. Your message is still in the box."
        )

    def window(
        self,
        store_id: str,
        playground: str,
        limit: int,
        end: int | None = None,
        refresh_keys: Iterable[str] = (),
        max_bytes: int = 0,
        also_expire: dict[str, int] | None = None,
        read_blob: bool = False,
    ) -> Window:
        """Read at most ``limit`` messages ending before absolute index ``end`` (default: the latest),
        and of those only the newest that add up to ``max_bytes`` of records (0: no such cap).

        One round trip: the window, the partial text of the replies being written, and the expiry
        push of ``refresh_keys`` (and of ``also_expire``'s keys to their seconds: keys of another hash
        slot, such as a signed-in browser's session blob beside its user's workspace, pipelined). With
        ``read_blob``, the first of ``refresh_keys`` is the blob of a workspace: it comes back as
        ``Window.blob``, and the conversations it names are refreshed too.
        """
        key = self.key(store_id, playground)
        opens = self.open_key(store_id)
        call = dict(
            keys=[key, opens, *refresh_keys],
            args=[
                limit,
                -1 if end is None else max(0, end),
                self.ttl_for(store_id),
                playground,
                partial_key(self.key_prefix, store_id, ""),
                max_bytes,
                conversation_key(self.key_prefix, store_id, "") if read_blob else "",
            ],
        )
        result, also_refreshed = None, True
        if also_expire:
            # EVALSHA itself, not the Script: redis-py checks a pipeline's scripts with SCRIPT EXISTS
            # first, one more round trip; a server that lost the script answers NOSCRIPT, then the Script runs.
            with self.redis.pipeline(transaction=False) as pipe:
                pipe.evalsha(self._window.sha, len(call["keys"]), *call["keys"], *call["args"])
                for other, seconds in also_expire.items():
                    pipe.expire(other, seconds)
                result, *pushed = pipe.execute(raise_on_error=False)
            also_refreshed = all(value is True or value == 1 for value in pushed)
            if isinstance(result, Exception):
                if not isinstance(result, NoScriptError):
                    raise result
                result = None
        if result is None:
            result = self._window(**call)
        total, raw, flat, first_refreshed, *blob = result
        stop = total if end is None else min(max(0, end), total)
        start = max(0, stop - len(raw))
        partials = {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat), 2)}
        return Window(
            [decode_message(item) for item in raw],
            start,
            total,
            partials,
            bool(first_refreshed),
            blob[0] if blob and blob[0] else None,
            also_refreshed,
        )

    def all(self, store_id: str, playground: str) -> list[Message]:
        """Read the whole conversation (what a model is sent as history)."""
        return [decode_message(item) for item in self.redis.lrange(self.key(store_id, playground), 0, -1)]

    def count(self, store_id: str, playground: str) -> int:
        """Number of messages in the conversation."""
        return self.redis.llen(self.key(store_id, playground))

    def find(self, store_id: str, playground: str, message_id: str) -> tuple[int, bytes, Message] | None:
        """Locate a message by id, searching from the newest end; None if it is not there."""
        key = self.key(store_id, playground)
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

    def get(self, store_id: str, playground: str, message_id: str) -> Message | None:
        """Return one message by id, or None."""
        found = self.find(store_id, playground, message_id)
        return found[2] if found else None

    def change(
        self,
        store_id: str,
        playground: str,
        message_id: str,
        change: Callable[[Message], Message | None],
        attempts: int = 20,
    ) -> tuple[Message | None, bool]:
        """Replace a message by id with ``change(message)``; return (the message now stored, whether we changed it).

        ``change`` may return None to leave the message as it is. The write is a compare-and-set,
        retried if the message moved or changed in between. A reply becoming open is recorded in
        the session's ``open`` set (TooManyOpenReplies past the cap); one becoming final leaves it,
        and its partial and stop keys go. (None, False) if the message is gone.
        """
        key = self.key(store_id, playground)
        for _ in range(attempts):
            found = self.find(store_id, playground, message_id)
            if found is None:
                return None, False
            index, raw, message = found
            replacement = change(message)
            if replacement is None:
                return message, False
            replacement = self.as_stored(replacement)
            mode = "same"
            if replacement.role == "assistant" and replacement.is_open:
                mode = "open" if message.is_open and message.attempt == replacement.attempt else "reopen"
            elif replacement.role == "assistant" and message.is_open:
                mode = "final"
            now = time.time()
            written = self._change(
                keys=[
                    key,
                    self.open_key(store_id),
                    self.partial_key(store_id, message_id),
                    self.stop_key(store_id, message_id),
                    self.stop_key(store_id, message_id, message.attempt),
                ],
                args=[
                    index,
                    raw,
                    encode_message(replacement),  # as_stored above
                    open_member(playground, message_id),
                    mode,
                    now + self.open_seconds,
                    now,
                    self.max_open_replies,
                    self.ttl_for(store_id),
                    self.open_seconds,  # longer than any job: the replaced attempt's worker is gone by then
                ],
            )
            if written == -1:
                raise TooManyOpenReplies(self.too_many_open())
            if written:
                return replacement, True
        raise RuntimeError(f"message {message_id} kept changing; gave up after {attempts} attempts")

    def update(
        self, store_id: str, playground: str, message_id: str, change: Callable[[Message], Message | None]
    ) -> Message | None:
        """Like ``change``, returning only the message now stored (None if it is gone)."""
        return self.change(store_id, playground, message_id, change)[0]

    def flush(self, store_id: str, playground: str, message_id: str, attempt: int, text: str) -> tuple[bool, bool]:
        """Append ``text`` to the partial of attempt ``attempt`` of a reply; return (conversation still
        there, stop requested). Stop is requested, and nothing appended, once a Retry replaced the attempt.

        One round trip: what a worker does at each flush of its stream.
        """
        exists, stop = self._flush(
            keys=[
                self.key(store_id, playground),
                self.partial_key(store_id, message_id),
                self.stop_key(store_id, message_id),
                self.stop_key(store_id, message_id, attempt),
            ],
            args=[text, self.ttl_for(store_id)],
        )
        return bool(exists), bool(stop)

    def partial(self, store_id: str, message_id: str) -> str:
        """The text a reply has streamed so far ("" if none)."""
        return _text(self.redis.get(self.partial_key(store_id, message_id)) or b"")

    def request_stop(self, store_id: str, message_id: str, seconds: int) -> None:
        """Ask the worker writing ``message_id`` to stop at its next flush."""
        self.redis.set(self.stop_key(store_id, message_id), 1, ex=seconds)

    def clear(
        self, store_id: str, playground: str, stop_seconds: int = 600, keep_conversation: bool = False
    ) -> tuple[bool, list[str]]:
        """Reset: stop every open reply of the playground, delete the conversation and their partials.

        With ``keep_conversation`` the list itself stays (an Import replaces it next). Returns
        (whether there was a conversation, ids of the replies that were open).
        """
        existed, stopped = self._clear(
            keys=[self.key(store_id, playground), self.open_key(store_id)],
            args=[
                playground,
                self.partial_key(store_id, ""),
                self.stop_key(store_id, ""),
                stop_seconds,
                "keep" if keep_conversation else "",
            ],
        )
        return bool(existed), [_text(message_id) for message_id in stopped]

    def mark_submission(self, store_id: str, token: str, seconds: int = 600) -> bool:
        """Record a composer submission for ``seconds``; False if it was already recorded (sent twice)."""
        now = time.time()
        return bool(self._mark(keys=[self.submissions_key(store_id)], args=[token, now, now + seconds, seconds]))

    def forget_submission(self, store_id: str, token: str) -> None:
        """Forget a submission that was refused, so that sending it again works."""
        self.redis.zrem(self.submissions_key(store_id), token)

    def submissions_key(self, store_id: str) -> str:
        """Key of the session's recent composer submissions."""
        return submissions_key(self.key_prefix, store_id)

    def open_replies(self, store_id: str) -> list[tuple[str, str]]:
        """The session's replies queued or being written, as (playground, message id)."""
        members = [_text(member) for member in self.redis.zrange(self.open_key(store_id), 0, -1)]
        return [tuple(member.split(":", 1)) for member in members]

    def move_session(self, old_store_id: str, new_store_id: str, playgrounds: Iterable[str]) -> None:
        """Move a session's conversations and open replies from ``old_store_id`` to ``new_store_id``, in one step.

        For a new session id (login). The open replies' set, partial text and stop keys move too, so
        a reply being written goes on into the new id (its worker follows its ticket, see
        ``store.tickets.move_open_replies``).
        """
        pairs = [(self.key(old_store_id, playground), self.key(new_store_id, playground)) for playground in playgrounds]
        pairs.append((self.open_key(old_store_id), self.open_key(new_store_id)))
        for playground, message_id in self.open_replies(old_store_id):
            pairs.append((self.partial_key(old_store_id, message_id), self.partial_key(new_store_id, message_id)))
            pairs.append((self.stop_key(old_store_id, message_id), self.stop_key(new_store_id, message_id)))
            # The stop keys of the attempts a Retry replaced, so that their workers still stop after the move.
            message = self.get(old_store_id, playground, message_id)
            for attempt in range(1, message.attempt if message else 1):
                pairs.append(
                    (self.stop_key(old_store_id, message_id, attempt), self.stop_key(new_store_id, message_id, attempt))
                )
        if isinstance(self.redis, RedisCluster):
            self._move_across_slots(pairs)
        else:
            self._move(keys=[key for pair in pairs for key in pair])

    def adopt(self, old_store_id: str, new_store_id: str, moves: dict[str, str]) -> None:
        """Move conversations of ``old_store_id`` into ``new_store_id`` (a visitor's work joining a user's
        workspace at sign-in): ``moves`` maps each playground to its name there. The open replies of the
        moved conversations go along (their place in the open set, partial text and stop keys); the moved
        keys take the lifetime of their new home. Call ``store.tickets.move_open_replies`` first.
        """
        if not moves:
            return
        pairs = [(self.key(old_store_id, old), self.key(new_store_id, new)) for old, new in moves.items()]
        opened = []
        for playground, message_id in self.open_replies(old_store_id):
            if playground not in moves:
                continue
            opened.append((playground, message_id))
            pairs.append((self.partial_key(old_store_id, message_id), self.partial_key(new_store_id, message_id)))
            pairs.append((self.stop_key(old_store_id, message_id), self.stop_key(new_store_id, message_id)))
        if isinstance(self.redis, RedisCluster):
            self._move_across_slots(pairs)
        else:
            self._move(keys=[key for pair in pairs for key in pair])
        scores = dict(self.redis.zrange(self.open_key(old_store_id), 0, -1, withscores=True))
        seconds = self.ttl_for(new_store_id)
        with self.redis.pipeline(transaction=False) as pipe:
            for playground, message_id in opened:
                member = open_member(playground, message_id)
                score = scores.get(member.encode(), scores.get(member, time.time() + self.open_seconds))
                pipe.zadd(self.open_key(new_store_id), {open_member(moves[playground], message_id): score})
                pipe.zrem(self.open_key(old_store_id), member)
            if opened:
                pipe.expire(self.open_key(new_store_id), seconds)
            for _old_key, new_key in pairs[: len(moves)]:  # the lists (partial and stop keys keep theirs)
                pipe.expire(new_key, seconds)
            pipe.execute()

    def _move_across_slots(self, pairs: list[tuple[str, str]]) -> None:
        """On a Cluster the two store ids hash to two slots, which no one script may touch: move key by
        key (PTTL, DUMP, RESTORE with that expiry, DELETE). Not atomic: a write to an old key in between is lost.

        Never restored without an expiry (RESTORE's 0): a key gone meanwhile (PTTL -2, or DUMP finds
        nothing) is skipped, and one that had none (-1) gets the session's lifetime.
        """
        for old_key, new_key in pairs:
            milliseconds = self.redis.pttl(old_key)  # first: a key that expires after it is not dumped
            if milliseconds == -2:
                continue
            dumped = self.redis.dump(old_key)
            if dumped is None:
                continue
            if milliseconds < 0:
                milliseconds = self.ttl_seconds * 1000
            self.redis.restore(new_key, milliseconds, dumped, replace=True)
            self.redis.delete(old_key)

    def refresh(self, keys: Iterable[str], also: dict[str, int] | None = None, seconds: int | None = None) -> None:
        """Push the expiry of ``keys`` to ``seconds`` (default: a session's full lifetime) from now, and of
        ``also``'s keys to their seconds, in one round trip."""
        expiries = {**dict.fromkeys(keys, seconds or self.ttl_seconds), **(also or {})}
        if not expiries:
            return
        with self.redis.pipeline(transaction=False) as pipe:
            for key, seconds in expiries.items():
                pipe.expire(key, seconds)
            pipe.execute()

    def open_key(self, store_id: str) -> str:
        """Key of the session's set of open replies."""
        return open_replies_key(self.key_prefix, store_id)

    def partial_key(self, store_id: str, message_id: str) -> str:
        """Key of a reply's partial text."""
        return partial_key(self.key_prefix, store_id, message_id)

    def stop_key(self, store_id: str, message_id: str, attempt: int | None = None) -> str:
        """Key that asks a reply's worker to stop (with ``attempt``: only the worker of that attempt)."""
        return stop_key(self.key_prefix, store_id, message_id, attempt)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
