"""``echo``: an offline, deterministic provider, so the playground works with no network or key."""

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from .base import ChatRequest, Provider, Usage


def _words(text: str) -> int:
    return len(text.split())


@dataclass
class EchoProvider(Provider):
    """Replies with what it was asked, word by word, and counts words as tokens."""

    name: str = "echo"
    label: str = "Echo (offline)"
    models: list[str] = field(default_factory=lambda: ["echo-1"])
    free: bool = True

    def stream(self, request: ChatRequest) -> Iterator[str | Usage]:
        """Stream a reply that repeats the last user message and names the settings used."""
        # ECHO_DELAY (seconds per word) makes streaming and Stop visible by hand and in tests.
        delay = float(os.environ.get("ECHO_DELAY", "0"))
        last_user = next((content for role, content in reversed(request.messages) if role == "user"), "")
        turns = sum(1 for role, _ in request.messages if role == "user")
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
        prompt_tokens = _words(request.system_prompt) + sum(_words(content) for _, content in request.messages)
        yield Usage(input_tokens=prompt_tokens, output_tokens=_words(reply))
