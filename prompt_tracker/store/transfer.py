"""A conversation as a file: export to JSON (complete) or Markdown, import JSON back (validated first).

The JSON holds every message record as stored (roles, content, alternatives, parameters, usage,
costs, the recorded requests) and the playground's settings. A reply with several attempts holds the
chosen one (‹ 2/3 ›: what later turns send) in its own fields, names it in ``chosen_attempt``, and
keeps the others in ``alternatives``; an import shows the attempt the file names as chosen.

An import is checked whole before anything is written: a file that is not an export, is malformed or
too large is refused with a sentence, and nothing of it is stored.

An import obeys the caps of a send: at most ``MAX_CONVERSATION_MESSAGES`` messages, each (and each
earlier attempt) at most ``MAX_MESSAGE_CHARS`` characters, in a file of at most ``MAX_IMPORT_BYTES``.
(Not ``MAX_HISTORY_CHARS``: that caps what one request carries, not a conversation, which may grow
past it by sending; its own export must import again.) Its replies' Markdown renders within
``IMPORT_RENDER_SECONDS`` in all (each within its own limit, ``rendering.RENDER_TIME_LIMIT``): past
it, a reply is shown as escaped text.

A message's recorded request is checked like the rest (``RecordedRequest``: its fields, their types, an
http(s) URL, one-line headers, a known provider): a file with one malformed record is refused whole,
naming the message and the field, rather than imported without it. A record is shown back as JSON and as
a curl command someone copies into a shell, so it is data we check, not something we pass on.
"""

import re
import time
from datetime import UTC, datetime
from typing import Literal

import msgspec

from ..domain.messages import ROLES, STATUSES, TOOL_ROLE, Alternative, Message, new_message_id, with_attempt
from ..domain.recorded_request import RecordedRequest
from ..domain.refusals import Refused
from ..domain.rendering import RENDER_TIME_LIMIT, plain_html, render_reply
from ..domain.settings import PlaygroundSettings

FORMAT = "prompt-tracker/conversation"
VERSION = 1


class ExportedMessage(Message, kw_only=True, omit_defaults=True):
    """A message as the file holds it: a reply with other attempts names the chosen one (its own fields)."""

    chosen_attempt: int | None = None


class ConversationExport(msgspec.Struct, kw_only=True):
    """The export file: what it is, when it was made, the settings and every message."""

    format: Literal["prompt-tracker/conversation"] = FORMAT
    version: Literal[1] = VERSION
    exported_at: str = ""
    playground: str = ""
    settings: dict | None = None
    messages: list[ExportedMessage]


class ImportedAlternative(Alternative, kw_only=True, omit_defaults=True):
    """Another attempt as a file holds it: its recorded request is checked as a message's is."""

    request: RecordedRequest | None = None


class ImportedMessage(ExportedMessage, kw_only=True, omit_defaults=True):
    """A message as a file holds it: its recorded request must have the shape the app writes."""

    request: RecordedRequest | None = None
    alternatives: list[ImportedAlternative] = []


class ConversationImport(ConversationExport, kw_only=True):
    """An export file as it is read back: every message checked, its recorded request included."""

    messages: list[ImportedMessage]


# Seconds the Markdown of one import's replies may take to render, in all.
IMPORT_RENDER_SECONDS = 2.0

# Where a validation error points into a message's recorded request ("- at `$.messages[3].request…`").
IN_A_REQUEST = re.compile(r"`\$\.messages\[(\d+)\](?:\.alternatives\[\d+\])?\.request")


class ImportRefused(Refused, ValueError):
    """The file cannot be imported; the text says why, in one sentence."""

    status = 422


def export_json(playground: str, settings: PlaygroundSettings, messages: list[Message]) -> bytes:
    """The conversation and its settings as indented JSON."""
    export = ConversationExport(
        exported_at=datetime.now(UTC).isoformat(timespec="seconds"),
        playground=playground,
        settings=msgspec.to_builtins(settings),
        # A record's page HTML is ours to render (an import renders it again): not in the file.
        # Nor a replay's stored diff: the worker computes it, and an import never takes it from a file.
        messages=[_exported(message) for message in messages],
    )
    return msgspec.json.format(msgspec.json.encode(export), indent=2)


def _exported(message: Message) -> ExportedMessage:
    """A record as the file holds it: no page HTML, no stored diff (of any attempt), the chosen attempt named."""
    alternatives = [msgspec.structs.replace(alternative, diff=None) for alternative in message.alternatives]
    fields = msgspec.structs.asdict(message) | {"fragment": None, "diff": None, "alternatives": alternatives}
    return ExportedMessage(**fields, chosen_attempt=message.attempt if alternatives else None)


def export_markdown(playground: str, settings: PlaygroundSettings, messages: list[Message]) -> str:
    """The conversation as a Markdown document: one section per message, the reply's details under it."""
    lines = [
        f"# Conversation ({playground})",
        "",
        f"Exported {datetime.now(UTC):%Y-%m-%d %H:%M} UTC from Prompt Tracker · {settings.provider} / {settings.model}",
        "",
    ]
    if settings.system_prompt:
        lines += ["## System prompt", "", settings.system_prompt, ""]
    for message in messages:
        heading = {"user": "You", "assistant": "Assistant", "system": "System"}.get(message.role, message.role)
        if message.role == "assistant" and message.model:
            heading += f" · {message.provider} / {message.model}"
        if message.role == TOOL_ROLE:
            heading = f"Tool result · `{message.tool_call_id}`"
        lines += [f"## {heading}", ""]
        if message.content or not message.tool_calls:
            lines += [message.content or f"_({message.status}, no text)_", ""]
        for call in message.tool_calls:
            fence = "`" * max([3, *(len(run) + 1 for run in re.findall(r"`+", call.arguments))])
            lines += [f"**Tool call** `{call.name}` (`{call.id}`)", "", f"{fence}json", call.arguments, fence, ""]
        details = _details(message)
        if message.alternatives:
            attempts = message.attempts()
            chosen = f"attempt {attempts.index(message.attempt) + 1} of {len(attempts)}, chosen"
            details = f"{details} · {chosen}" if details else chosen
        if details:
            lines += [f"*{details}*", ""]
        for alternative in message.alternatives:
            when = "Earlier" if alternative.attempt < message.attempt else "Later"
            lines += [f"### {when} attempt {alternative.attempt}", "", alternative.content or "_(no text)_", ""]
    return "\n".join(lines).rstrip() + "\n"


def _details(message: Message) -> str:
    """One line about a reply: status, parameters, tokens, time and cost."""
    if message.role != "assistant":
        return ""
    parts = [] if message.status == "done" else [message.status + (f": {message.error}" if message.error else "")]
    parts += [f"{name}={value}" for name, value in (message.params or {}).items()]
    if message.usage:
        parts.append(f"{message.usage.input_tokens} in / {message.usage.output_tokens} out")
    if message.latency_ms is not None:
        parts.append(f"{message.latency_ms / 1000:.1f} s")
    if message.cost_usd is not None:
        parts.append(f"${message.cost_usd:.6f}")
    return " · ".join(parts)


def parse_import(data: bytes, max_messages: int, max_message_chars: int = 0) -> list[Message]:
    """The messages of an export file, made safe to store; ImportRefused (a sentence) if it cannot be used.

    ``max_message_chars`` is the send's cap of a message (0: none).
    """
    try:
        export = msgspec.json.decode(data, type=ConversationImport)
    except msgspec.ValidationError as error:
        in_request = IN_A_REQUEST.search(str(error))
        if in_request:
            raise ImportRefused(
                f"Message {int(in_request.group(1)) + 1} has a recorded request Prompt Tracker does not write "
                f"({error}). Nothing was imported."
            ) from None
        raise ImportRefused(
            f"This is not a Prompt Tracker conversation export ({error}). Nothing was imported."
        ) from None
    except (msgspec.DecodeError, UnicodeDecodeError):  # msgspec raises the latter for bytes in a string
        raise ImportRefused("This file is not valid JSON (UTF-8), so nothing was imported.") from None
    except RecursionError:  # msgspec stops at Python's recursion limit, cleanly: no export nests this deep
        raise ImportRefused(
            "This file nests its data too deeply (hundreds of levels) to be an export, so nothing was imported."
        ) from None
    if len(export.messages) > max_messages:
        raise ImportRefused(
            f"The file has {len(export.messages):,} messages; a conversation holds at most "
            f"{max_messages:,}. Nothing was imported."
        )
    for index, message in enumerate(export.messages):
        if message.role not in (*ROLES, TOOL_ROLE) or message.status not in STATUSES:
            raise ImportRefused(
                f"Message {index + 1} has an unknown role or status "
                f"({message.role!r}, {message.status!r}). Nothing was imported."
            )
        if (message.role == TOOL_ROLE) != bool(message.tool_call_id) or (
            message.tool_calls and message.role != "assistant"
        ):
            raise ImportRefused(
                f"Message {index + 1} mixes up tool use: a tool message names the call it answers "
                "(tool_call_id), and only a reply makes tool calls. Nothing was imported."
            )
        _check_length(index, "", message.content, max_message_chars)
        for alternative in message.alternatives:
            _check_length(index, "an earlier attempt of ", alternative.content, max_message_chars)
        if message.chosen_attempt is not None and message.chosen_attempt not in message.attempts():
            raise ImportRefused(
                f"Message {index + 1} names attempt {message.chosen_attempt} as chosen, and has no such attempt. "
                "Nothing was imported."
            )
    deadline = time.monotonic() + IMPORT_RENDER_SECONDS
    return [_imported(message, deadline) for message in export.messages]


def _check_length(index: int, what: str, content: str, limit: int) -> None:
    """Refuse the file if message ``index``'s ``content`` is longer than a send allows."""
    if limit and len(content) > limit:
        raise ImportRefused(
            f"Message {index + 1} has {what}{len(content):,} characters; a message holds at most {limit:,}. "
            "Nothing was imported."
        )


def _imported(message: ImportedMessage, deadline: float) -> Message:
    """A message from a file as we store it: a fresh id, no open status, HTML rendered here (never taken
    from the file: the page shows stored HTML as is), the checked request as plain data."""
    status = "stopped" if message.status in ("pending", "streaming") else message.status
    alternatives = [
        Alternative(
            **msgspec.structs.asdict(alternative)
            | {
                "fragment": None,
                "diff": None,
                "html": _html(message.role, alternative.content, deadline),
                "request": None if alternative.request is None else msgspec.to_builtins(alternative.request),
            }
        )
        for alternative in message.alternatives
    ]
    fields = msgspec.structs.asdict(message)
    chosen = fields.pop("chosen_attempt")
    imported = Message(
        **fields
        | {
            "fragment": None,  # rendered when stored, never taken from the file
            "diff": None,  # computed by the worker for a replay's reply, never taken from the file
            "id": new_message_id(),
            "status": status,
            "html": _html(message.role, message.content, deadline),
            "alternatives": alternatives,
            "finished_at": message.finished_at or (time.time() if status != message.status else None),
            "request": None if message.request is None else msgspec.to_builtins(message.request),
        }
    )
    return with_attempt(imported, chosen) if chosen is not None else imported  # (parse_import checked it)


def _html(role: str, content: str, deadline: float) -> str | None:
    """A reply's HTML, rendered in the import's time left (escaped text once it is spent)."""
    if role != "assistant" or not content:
        return None
    left = min(RENDER_TIME_LIMIT, deadline - time.monotonic())
    return render_reply(content, time_limit=left) if left > 0 else plain_html(content)
