"""The message record stored in a conversation list: a msgspec Struct, msgpack on the wire."""

import secrets
import time

import msgspec

from ..providers import ToolCall, Usage
from .text_diff import StoredDiff

ROLES = ("system", "user", "assistant")
# A tool's result, answering one call of an assistant message (``Message.tool_call_id``).
TOOL_ROLE = "tool"
# pending: queued, no worker yet; streaming: a worker is writing it; the rest are final.
STATUSES = ("pending", "streaming", "done", "failed", "stopped")
OPEN_STATUSES = ("pending", "streaming")


class AttemptResult(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What one attempt of a reply holds: its text, how it ended, and its provenance and costs.

    A Message holds the current attempt, an Alternative an earlier one. Both encode as maps by field
    name, so the shared fields read and write as they did when each struct declared its own.
    """

    # A message's HTML as the page shows it (``web.playground.fragments``), rendered when the
    # record is written final, with markers for the page's CSRF token and URL; None while open and
    # on alternatives. First of all fields, so the window script can leave it out of a record's
    # weight (``store.conversations``): it is here, not on Message, because base fields come first.
    fragment: str | None = None
    content: str = ""
    # Rendered once when the text is final (Markdown for replies); the page never re-renders.
    html: str | None = None
    status: str = "done"
    error: str | None = None
    provider: str | None = None
    model: str | None = None
    params: dict | None = None
    usage: Usage | None = None
    first_token_ms: int | None = None
    latency_ms: int | None = None
    cost_usd: float | None = None
    finished_at: float | None = None
    # The tools a reply called (id, name, arguments as the JSON text the model sent); its text may be empty.
    tool_calls: list[ToolCall] = []
    # The ids of those calls already answered by a ``tool`` message (the form under each goes), and
    # why the rest wait for the user when the automatic answers stopped (``replies.tool_results``).
    answered_calls: list[str] = []
    tool_note: str | None = None


# Fields of Message that belong to one attempt too, not to the message: an Alternative keeps them, so
# that choosing it again (``with_attempt``) brings back its request, provenance and replay difference.
ATTEMPT_FIELDS = ("request", "history_dropped", "version", "draft", "variables", "diff")


class Alternative(AttemptResult, kw_only=True, omit_defaults=True):
    """Another attempt of a regenerated reply (earlier, or later than the one chosen), kept so the page
    can switch to it (‹ 1/2 ›)."""

    attempt: int
    # As on Message (ATTEMPT_FIELDS); after ``attempt``, so records without them encode as before.
    request: dict | None = None
    history_dropped: int = 0
    version: int | None = None
    draft: bool = False
    variables: dict | None = None
    diff: StoredDiff | None = None

    @classmethod
    def of(cls, message: "Message", **changes) -> "Alternative":
        """The attempt ``message`` holds now, kept as an alternative (``changes`` replace result fields)."""
        fields = (*AttemptResult.__struct_fields__, *ATTEMPT_FIELDS)
        result = {name: getattr(message, name) for name in fields}
        return cls(attempt=message.attempt, **(result | {"fragment": None} | changes))


class Message(AttemptResult, kw_only=True, omit_defaults=True):
    """One chat message; assistant messages carry the reply's provenance and costs (AttemptResult)."""

    id: str
    role: str
    # Which attempt of this reply the record holds; a job for any other attempt does nothing.
    attempt: int = 1
    alternatives: list[Alternative] = []
    # What the provider was sent (system prompt after variables, messages, params; keys masked).
    request: dict | None = None
    # How many of the oldest messages the history cap left out of the request (limits.history).
    history_dropped: int = 0
    # Which prompt version produced the reply (None with ``draft``: unsaved settings), and the
    # template variable values it used.
    version: int | None = None
    draft: bool = False
    variables: dict | None = None
    # A replay's reply: its difference from the original's reply to the same turn, computed once by
    # the worker when it ended (``replies.replay.record_diff``); the Replay page only reads it.
    diff: StoredDiff | None = None
    created_at: float
    # On a ``tool`` message: the id of the call (in the assistant message before it) it answers.
    tool_call_id: str | None = None

    @property
    def is_open(self) -> bool:
        """True while the reply is still expected (queued or being written)."""
        return self.status in OPEN_STATUSES

    def attempts(self) -> list[int]:
        """The numbers of every attempt this reply has kept, in order (the one it holds among them)."""
        return sorted([self.attempt, *(alternative.attempt for alternative in self.alternatives)])

    def next_attempt(self) -> int:
        """The number of a new attempt (a Retry): past every one kept, whichever is chosen."""
        return max(self.attempts()) + 1


class NoSuchAttempt(LookupError):
    """The reply has no attempt of that number."""


def with_attempt(message: Message, attempt: int) -> Message:
    """``message`` holding its attempt ``attempt`` (what the page shows and later turns send); the one it
    held becomes an alternative. Raises NoSuchAttempt. Its fragment is rendered again when it is stored."""
    if attempt == message.attempt:
        return message
    chosen = next((alternative for alternative in message.alternatives if alternative.attempt == attempt), None)
    if chosen is None:
        raise NoSuchAttempt(attempt)
    others = [alternative for alternative in message.alternatives if alternative.attempt != attempt]
    others = sorted([*others, Alternative.of(message)], key=lambda alternative: alternative.attempt)
    fields = (*AttemptResult.__struct_fields__, *ATTEMPT_FIELDS)
    result = {name: getattr(chosen, name) for name in fields} | {"fragment": None}
    return msgspec.structs.replace(message, **result, attempt=attempt, alternatives=others)


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Message)


def encode_message(message: Message) -> bytes:
    """Serialize a message for the conversation list."""
    return _encoder.encode(message)


def decode_message(data: bytes) -> Message:
    """Deserialize a message read from the conversation list."""
    return _decoder.decode(data)


def new_message_id() -> str:
    """Return a fresh, unguessable message id."""
    return secrets.token_hex(8)


def user_message(content: str) -> Message:
    """Build the record of what the user typed."""
    return Message(id=new_message_id(), role="user", content=content, created_at=time.time())


def assistant_placeholder(
    provider: str,
    model: str,
    params: dict,
    version: int | None = None,
    draft: bool = False,
    variables: dict | None = None,
) -> Message:
    """Build the pending assistant message a worker will fill in."""
    return Message(
        id=new_message_id(),
        role="assistant",
        status="pending",
        provider=provider,
        model=model,
        params=params,
        version=version,
        draft=draft,
        variables=variables,
        created_at=time.time(),
    )
