"""The message record stored in a conversation list: a msgspec Struct, msgpack on the wire."""

import secrets
import time

import msgspec

from ..providers import Usage

ROLES = ("system", "user", "assistant")
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


class Alternative(AttemptResult, kw_only=True, omit_defaults=True):
    """An earlier attempt of a regenerated reply, kept so the page can switch back to it (‹ 1/2 ›)."""

    attempt: int

    @classmethod
    def of(cls, message: "Message", **changes) -> "Alternative":
        """The attempt ``message`` holds now, kept as an alternative (``changes`` replace result fields)."""
        result = {name: getattr(message, name) for name in AttemptResult.__struct_fields__}
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
    created_at: float

    @property
    def is_open(self) -> bool:
        """True while the reply is still expected (queued or being written)."""
        return self.status in OPEN_STATUSES


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
