"""``echo``: an offline, deterministic provider, so the playground works with no network or key.

With tools offered, a message of lines ``/call <tool> <json arguments>`` is answered with those calls
(several lines: a parallel set); with a JSON schema asked for, the reply is a minimal instance of it.
"""

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from .base import ChatRequest, Provider, ToolCall, Usage, turn_extra
from .schema_instance import minimal_instance

CALL_PREFIX = "/call "


def _words(text: str) -> int:
    return len(text.split())


def requested_calls(request: ChatRequest, text: str, turn: int) -> list[ToolCall]:
    """The tool calls a user's ``/call`` lines ask for (tools offered, tool choice not ``none``)."""
    if not request.tools or request.tool_choice == "none":
        return []
    names = {tool.get("name") for tool in request.tools}
    calls = []
    for line in text.splitlines():
        if not line.startswith(CALL_PREFIX):
            continue
        name, _, arguments = line[len(CALL_PREFIX) :].strip().partition(" ")
        if name in names:
            calls.append(
                ToolCall(id=f"call_echo_{turn}_{len(calls) + 1}", name=name, arguments=arguments.strip() or "{}")
            )
    return calls


@dataclass
class EchoProvider(Provider):
    """Replies with what it was asked, word by word, and counts words as tokens."""

    name: str = "echo"
    label: str = "Echo (offline)"
    models: list[str] = field(default_factory=lambda: ["echo-1"])
    free: bool = True

    def stream(self, request: ChatRequest) -> Iterator[str | ToolCall | Usage]:
        """Stream a reply that repeats the last user message and names the settings used (or the tool
        calls it asks for, or a minimal instance of the schema asked for)."""
        # ECHO_DELAY (seconds per word) makes streaming and Stop visible by hand and in tests.
        delay = float(os.environ.get("ECHO_DELAY", "0"))
        last_user = next((turn[1] for turn in reversed(request.messages) if turn[0] == "user"), "")
        turns = sum(1 for turn in request.messages if turn[0] == "user")
        prompt_tokens = _words(request.system_prompt) + sum(_words(turn[1]) for turn in request.messages)
        last = request.messages[-1] if request.messages else ("user", "")
        calls = requested_calls(request, last_user, turns) if last[0] == "user" else []
        if calls:
            yield from calls
            yield Usage(input_tokens=prompt_tokens, output_tokens=sum(_words(call.arguments) + 1 for call in calls))
            return
        if request.response_format == "json_schema" and isinstance(request.json_schema, dict):
            reply = json.dumps(minimal_instance(request.json_schema), ensure_ascii=False)
        elif request.response_format == "json_object":
            reply = json.dumps({"you_said": last_user}, ensure_ascii=False)
        elif last[0] == "tool":
            reply = f"Tool result for {turn_extra(last).get('tool_call_id', '')}: {last[1]}"
        else:
            reply = f"You said: {last_user}"
            if request.system_prompt:
                reply += f"\n\n(system prompt: {len(request.system_prompt)} characters; turn {turns})"
            else:
                reply += f"\n\n(turn {turns})"
        pieces = reply.split(" ")
        for index, piece in enumerate(pieces):
            if delay:
                time.sleep(delay)
            yield piece if index == 0 else " " + piece
        yield Usage(input_tokens=prompt_tokens, output_tokens=_words(reply))
