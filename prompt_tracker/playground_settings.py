"""The settings of one playground (system prompt and model), kept in the session blob."""

import msgspec

STANDALONE = "standalone"  # the playground at /playground; prompts get their own slug later

TEMPERATURE_RANGE = (0.0, 2.0)
MAX_TOKENS_RANGE = (1, 32_000)
MAX_MODEL_CHARS = 200


class PlaygroundSettings(msgspec.Struct, kw_only=True):
    """System prompt, provider, model and sampling parameters used by the next turn."""

    system_prompt: str = ""
    provider: str = "echo"
    model: str = "echo-1"
    temperature: float = 0.7
    max_tokens: int = 1024

    def params(self) -> dict:
        """Sampling parameters recorded on each assistant message."""
        return {"temperature": self.temperature, "max_tokens": self.max_tokens}


def load_settings(session, playground: str) -> PlaygroundSettings:
    """Read a playground's settings from the session; defaults if none (or unreadable) are stored."""
    stored = session.get("settings", {}).get(playground)
    if not stored:
        return PlaygroundSettings()
    try:
        return msgspec.convert(stored, PlaygroundSettings)
    except msgspec.ValidationError:
        return PlaygroundSettings()


def store_settings(session, playground: str, settings: PlaygroundSettings) -> None:
    """Write a playground's settings into the session."""
    all_settings = dict(session.get("settings", {}))
    all_settings[playground] = msgspec.to_builtins(settings)
    session["settings"] = all_settings
