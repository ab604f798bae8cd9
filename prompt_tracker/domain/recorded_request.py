"""A reply's recorded request (``Message.request``): how it is stored, and how the page shows it
(JSON, and a curl command).

The record does not copy the history it sent: each reply would then hold the whole conversation
before it, and a conversation of n turns would weigh n² in Redis and in every page view's window.
It keeps what cannot be found elsewhere — the provider's endpoint and headers (keys as $VARIABLES),
the model, system prompt and parameters — and, for the history, how many messages went, how many
the history cap left out, and a digest of them. The request view rebuilds the messages from the
conversation (the messages before the reply are what it was sent) and checks the digest, so it
shows exactly what was sent, or says that the conversation has changed since.
"""

import dataclasses
import hashlib
import json
import re
import shlex
import typing
from typing import Annotated

import msgspec

from ..providers import ChatRequest, all_providers, get_provider
from .history import history_before
from .messages import Message

HTTP_URL = re.compile(r"https?://", re.IGNORECASE)
# The environment variables a recorded header may name for a key (the providers' own), as a whole word.
KEY_VARIABLE = re.compile(r"\$(OPENAI_API_KEY|ANTHROPIC_API_KEY)(?![A-Za-z0-9_])")

HISTORY_CHANGED = (
    "The messages before this reply have changed since it was sent (deleted, regenerated or added): "
    "the messages below are the conversation as it is now, not exactly what was sent."
)


class RecordedHistory(msgspec.Struct, forbid_unknown_fields=True):
    """What a record keeps of the history it sent: how many messages, how many the cap left out, their digest."""

    count: Annotated[int, msgspec.Meta(ge=0)]
    dropped: Annotated[int, msgspec.Meta(ge=0)]
    digest: str


def _chat_fields() -> list[tuple]:
    """ChatRequest's fields but the history, as msgspec field specs: the ``chat`` of a record."""
    hints = typing.get_type_hints(ChatRequest)
    fields = []
    for field in dataclasses.fields(ChatRequest):
        if field.name == "messages":
            continue
        if field.default is not dataclasses.MISSING:
            fields.append((field.name, hints[field.name], field.default))
        elif field.default_factory is not dataclasses.MISSING:
            fields.append((field.name, hints[field.name], msgspec.field(default_factory=field.default_factory)))
        else:
            fields.append((field.name, hints[field.name]))
    return fields


# Derived from ChatRequest, so that a record's chat always rebuilds one (``sent_request``).
RecordedChat = msgspec.defstruct("RecordedChat", _chat_fields(), kw_only=True, forbid_unknown_fields=True)

HeaderName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")]  # an HTTP token
HeaderValue = Annotated[str, msgspec.Meta(pattern=r"^[^\r\n\x00]*$")]  # one line
HttpUrl = Annotated[str, msgspec.Meta(pattern=r"^https?://")]


class RecordedRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """The shape of ``Message.request`` as ``record_request`` writes it (and as it was written before the
    history was left out: ``body`` whole, no ``chat`` or ``history``). Imported records are checked
    against it, so the request view and its curl command only ever meet records of this shape."""

    provider: str
    method: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]+$")] | None = None
    url: HttpUrl | None = None
    headers: dict[HeaderName, HeaderValue] = {}
    chat: RecordedChat | None = None
    history: RecordedHistory | None = None
    body: dict | None = None

    def __post_init__(self):
        known = [provider.name for provider in all_providers()]
        if self.provider not in known:
            raise ValueError(f"Unknown provider {self.provider!r} (known: {', '.join(known)})")


def history_digest(messages: list[tuple[str, str]]) -> str:
    """SHA-256 of the (role, text) pairs a request carried."""
    return hashlib.sha256(msgspec.msgpack.encode(messages)).hexdigest()


def record_request(provider: str, request: ChatRequest, dropped: int) -> dict:
    """What a finished reply stores of its request: everything but the history's text."""
    recorded = get_provider(provider).describe(dataclasses.replace(request, messages=[]))
    recorded.pop("body", None)
    fields = dataclasses.asdict(request)
    del fields["messages"]
    return {
        **recorded,
        "provider": provider,
        "chat": fields,
        "history": {"count": len(request.messages), "dropped": dropped, "digest": history_digest(request.messages)},
    }


def sent_request(message: Message, conversation: list[Message]) -> tuple[dict, bool]:
    """The request the reply ``message`` was sent, rebuilt from ``conversation``; and whether the
    history still matches what was sent (False: the conversation changed since)."""
    record = dict(message.request)
    history = record.pop("history", None)
    chat = record.pop("chat", None)
    if history is None or chat is None:
        return record, True  # recorded whole (before the history was left out of the record)
    messages = history_before(conversation, message.id)[history["dropped"] :]
    body = get_provider(record["provider"]).describe(ChatRequest(messages=messages, **chat))["body"]
    return {**record, "body": body}, history_digest(messages) == history["digest"]


def request_json(record: dict) -> str:
    """The recorded request as indented JSON."""
    return json.dumps(record, indent=2, ensure_ascii=False)


def curl_command(record: dict) -> str | None:
    """A curl command that sends the same request (keys read from the environment); None without an
    http(s) URL.

    Every value is single-quoted for the shell: a record can come from an imported file, and copying
    its command must never run anything. Only ``$OPENAI_API_KEY`` and ``$ANTHROPIC_API_KEY`` in a
    header are left for the shell to expand, each in double quotes of its own.
    """
    url = record.get("url")
    if not isinstance(url, str) or not HTTP_URL.match(url):
        return None  # the offline echo provider makes no HTTP request; curl would take "-o…" as an option
    lines = [f"curl {shlex.quote(url)}"]
    for name, value in record.get("headers", {}).items():
        lines.append(f"-H {shell_word(f'{name}: {value}')}")
    lines.append(f"-d {shlex.quote(json.dumps(record.get('body', {}), ensure_ascii=False))}")
    return " \\\n  ".join(lines)


def shell_word(text: str) -> str:
    """``text`` as one shell word: single-quoted, but for the key variables, which expand."""
    pieces = KEY_VARIABLE.split(text)  # odd indexes: the variables' names
    return (
        "".join(f'"${piece}"' if index % 2 else shlex.quote(piece) for index, piece in enumerate(pieces) if piece)
        or "''"
    )
