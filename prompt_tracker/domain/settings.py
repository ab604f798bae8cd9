"""The settings of one playground (system prompt, model, parameters), kept in the session blob."""

import hashlib

import msgspec

from ..providers import PARAM_NAMES, UnknownProviderError, get_provider
from .refusals import Refused
from .tools import sent_tools

STANDALONE = "standalone"  # the playground at /playground; a prompt's is "prompt-<id>"

TEMPERATURE_RANGE = (0.0, 2.0)
MAX_TOKENS_RANGE = (1, 32_000)
MAX_MODEL_CHARS = 200
TOP_P_RANGE = (0.0, 1.0)
PENALTY_RANGE = (-2.0, 2.0)
SEED_RANGE = (0, 2**63 - 1)
THINKING_BUDGET_RANGE = (1024, MAX_TOKENS_RANGE[1])  # Anthropic's minimum; below max tokens too
MAX_STOP_SEQUENCES = 4  # OpenAI's limit (Anthropic takes more)
MAX_STOP_CHARS = 100


class StaleSettings(Refused):
    """Another tab saved the settings after this form was loaded: saving now would silently undo its save."""

    status = 409

    def __init__(self, sentence: str = "Not saved: another tab saved different settings after this form was loaded."):
        super().__init__(sentence)


class SettingsChanged(StaleSettings):
    """A Send from a page that shows older settings than the saved ones: held, unless the user confirms them.

    The page keeps the typed text and offers two choices: load the saved settings, or send with them
    anyway (``confirm_settings=1``). JSON: ``{"error": ..., "settings_changed": true}``.
    """

    def __init__(self):
        super().__init__(
            "Settings changed in another tab: nothing was sent. Load them, or send with them anyway.",
        )
        self.details = {"settings_changed": True}


class PlaygroundSettings(msgspec.Struct, kw_only=True):
    """System prompt, provider, model and sampling parameters used by the next turn."""

    system_prompt: str = ""
    provider: str = "echo"
    model: str = "echo-1"
    temperature: float = 0.7
    max_tokens: int = 1024
    # Unset (None / empty) means "not sent": the provider's default applies.
    top_p: float | None = None
    stop: list[str] = []
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    thinking_budget: int | None = None
    # Values of the system prompt's template variables, kept per playground.
    variables: dict[str, str] = {}
    # The prompt version these settings are: stored only when a version was restored (a save of the
    # settings form clears it); on the settings a turn is sent with, always set, or ``draft``.
    version: int | None = None
    draft: bool = False
    # Function tools ({"name", "description", "parameters", "mock"?}: checked by ``domain.tools``),
    # which one the model should call, and structured output (see ``ChatRequest``).
    tools: list[dict] = []
    tool_choice: str = "auto"
    response_format: str = "text"
    schema_name: str = ""
    json_schema: dict | None = None
    strict: bool = True
    # Answer calls to tools that have a ``mock`` with it, by the worker (``replies.tool_results``).
    auto_mock: bool = False

    def params(self) -> dict:
        """The parameters the next reply is sent with (and recorded with): set, and accepted by provider and model."""
        chosen = {name: getattr(self, name) for name in PARAM_NAMES}
        chosen = {name: value for name, value in chosen.items() if value is not None and value != []}
        try:
            return get_provider(self.provider).select_params(self.model, chosen)
        except UnknownProviderError:
            return chosen  # the send is refused anyway; nothing is sent

    def tool_fields(self) -> dict:
        """The ChatRequest fields for tools and structured output (tools without their mocks)."""
        return {
            "tools": sent_tools(self.tools),
            "tool_choice": self.tool_choice if self.tools else "auto",
            "response_format": self.response_format,
            "schema_name": self.schema_name,
            "json_schema": self.json_schema if self.response_format == "json_schema" else None,
            "strict": self.strict,
        }

    def provenance(self) -> dict:
        """What a reply records of where its settings came from: version or draft, and variable values."""
        return {"version": self.version, "draft": self.draft, "variables": self.variables or None}


# Fields left out of the stored blob at their default (they came later; the blob reads as before).
_DEFAULTS = {"tool_choice": "auto", "response_format": "text", "schema_name": "", "strict": True, "auto_mock": False}


def load_settings(session, playground: str, default: PlaygroundSettings | None = None) -> PlaygroundSettings:
    """Read a playground's settings from the session; ``default`` if none (or unreadable) are stored."""
    default = default or PlaygroundSettings()
    stored = session.get("settings", {}).get(playground)
    if not stored:
        return default
    try:
        return msgspec.convert(stored, PlaygroundSettings)
    except msgspec.ValidationError:
        return default


def store_settings(session, playground: str, settings: PlaygroundSettings) -> None:
    """Write a playground's settings into the session."""
    all_settings = dict(session.get("settings", {}))
    # Unset parameters are left out: the blob stays small and reads the same as before they existed.
    # draft describes a reply being sent, never the stored settings.
    stored = {
        name: value
        for name, value in msgspec.to_builtins(settings).items()
        if value is not None and value != [] and value != {} and name != "draft" and _DEFAULTS.get(name) != value
    }
    all_settings[playground] = stored
    session["settings"] = all_settings


def settings_version(settings: PlaygroundSettings) -> str:
    """A short fingerprint of the saved settings a settings form (and its page's Send) shows.

    Content-addressed, so it needs no storage of its own: the same settings have the same version
    wherever they are kept. Variable values are left out (their panel is sent with each message).
    """
    stored = msgspec.structs.replace(settings, variables={}, version=None, draft=False)
    return hashlib.sha256(msgspec.msgpack.encode(stored)).hexdigest()[:16]


def check_settings_shown(shown: str | None, saved: PlaygroundSettings, confirmed: bool = False) -> None:
    """Raise SettingsChanged when a Send came from a page showing settings other than ``saved``.

    ``shown`` is the version the page carried (none: a client that does not say, as before);
    ``confirmed`` is the user's "send with them anyway".
    """
    if shown and not confirmed and shown != settings_version(saved):
        raise SettingsChanged()
