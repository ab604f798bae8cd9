"""The provider contract: ``stream(request)`` yields text deltas (``""`` for an event with no text) and,
while tool calls stream, their pieces (``ToolCallDelta``, so the page can show them assemble), then the
reply's tool calls (``ToolCall``, each assembled whole), then one ``Usage``."""

from collections.abc import Iterator
from dataclasses import dataclass, field

import msgspec

# Every parameter a reply can be sent with (ChatRequest fields), in the order the page shows them.
PARAM_NAMES = (
    "temperature",
    "max_tokens",
    "top_p",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "thinking_budget",
)


class Usage(msgspec.Struct, omit_defaults=True):
    """Tokens a provider reported for one reply."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0


class ToolCall(msgspec.Struct, kw_only=True):
    """One call of a tool a reply asked for: ``arguments`` is the JSON text the model sent, as sent."""

    id: str
    name: str
    arguments: str = "{}"


class ToolCallDelta(msgspec.Struct, kw_only=True):
    """A piece of a tool call as it streams: which call (``index``, the provider's own order), its id and
    name when first known, and more of its arguments' JSON text. What is kept is the whole ``ToolCall``
    yielded at the end; these only show the call assembling."""

    index: int
    id: str = ""
    name: str = ""
    arguments: str = ""


# A turn of ``ChatRequest.messages``: (role, content), or (role, content, extra) where ``extra`` is
# ``{"tool_calls": [{"id", "name", "arguments"}]}`` on an assistant turn that called tools, or
# ``{"tool_call_id": id}`` on a ``tool`` turn (a tool's result). Plain turns stay pairs, so the digest
# of a history without tools is what it was before tools existed.
def turn_extra(turn) -> dict:
    """The tool fields of a turn (empty for a plain one)."""
    return turn[2] if len(turn) > 2 else {}


# The request fields that describe tools and structured output (ChatRequest fields, sent when set).
TOOL_FIELDS = ("tools", "tool_choice", "response_format", "schema_name", "json_schema", "strict")
RESPONSE_FORMATS = ("text", "json_object", "json_schema")


@dataclass(frozen=True)
class ChatRequest:
    """Everything a provider is sent for one reply: the whole history, in order, and the settings."""

    model: str
    system_prompt: str
    messages: list[tuple]  # (role, content) or (role, content, extra), oldest first: see ``turn_extra``
    temperature: float | None = None
    max_tokens: int = 1024
    # None / empty: not sent. Only parameters the provider accepts get here (``Provider.select_params``).
    top_p: float | None = None
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    thinking_budget: int | None = None
    # Function tools ({"name", "description", "parameters": JSON Schema}), and which one to call
    # ("auto", "none", "required" or a tool's name); sent only when there are tools.
    tools: list[dict] = field(default_factory=list)
    tool_choice: str = "auto"
    # Structured output: "text" (nothing sent), "json_object", or "json_schema" with the schema below.
    response_format: str = "text"
    schema_name: str = ""
    json_schema: dict | None = None
    strict: bool = True


class ProviderError(Exception):
    """A provider call failed; the message is short and safe to show the user."""


class UnknownProviderError(KeyError):
    """No provider is registered under that name."""

    def __str__(self) -> str:
        return f"Unknown provider {self.args[0]!r}."


@dataclass
class Provider:
    """Base class for providers: a name, a label, model suggestions, and ``stream``."""

    name: str = ""
    label: str = ""
    models: list[str] = field(default_factory=list)
    # The parameters (names of ChatRequest fields) this provider sends; the page shows only these.
    params: tuple[str, ...] = ("temperature", "max_tokens")
    # Costs nothing (offline: nothing is called), so its replies never count against a budget.
    free: bool = False
    # Whose price list (a genai-prices provider id) prices this provider's own model ids when its base
    # URL is one the data does not know (a proxy or gateway): None, names alone prove nothing.
    own_price_list: str | None = None
    # How to set it up, for the settings panel when it is not: the environment variables it reads.
    setup: str = ""

    def is_configured(self) -> bool:
        """Whether this provider can be used here (its key is set, say)."""
        return True

    def select_params(self, model: str, params: dict) -> dict:
        """Of ``params`` (name → value), those this provider sends for ``model``."""
        return {name: value for name, value in params.items() if name in self.params}

    def sent_params(self, request: ChatRequest) -> dict:
        """The parameters of ``request`` that are set and that this provider sends for its model."""
        chosen = {name: getattr(request, name) for name in PARAM_NAMES}
        chosen = {name: value for name, value in chosen.items() if value is not None and value != []}
        return self.select_params(request.model, chosen)

    def describe(self, request: ChatRequest) -> dict:
        """What this provider is sent for ``request`` (method, URL, headers with keys as $VARIABLES, body)."""
        return {
            "provider": self.name,
            "body": {
                "model": request.model,
                "system": request.system_prompt,
                "messages": [list(turn) for turn in request.messages],
                **self.sent_params(request),
                **sent_tool_fields(request),
            },
        }

    def reported_window(self, model: str) -> int | None:
        """The context window of ``model`` as the provider's server reports it (never waits for it), if it does."""
        return None

    def price_source(self) -> tuple[str | None, str | None] | None:
        """Where prices are looked up: (provider id, None) or (None, API base URL); None for no price."""
        return None

    def warm(self) -> None:
        """Build what a call needs (the SDK client for the current environment) ahead of the first call."""

    def stream(self, request: ChatRequest) -> Iterator[str | ToolCallDelta | ToolCall | Usage]:
        """Yield the reply as text deltas (and tool-call pieces as they stream), then its tool calls, then at
        most one Usage; raise ProviderError on failure.

        No Usage means the provider reported none: unknown, not zero (and so no cost is shown). An
        empty string is no text but a sign of life (an event without text, as while a model thinks):
        the worker checks for Stop then too, so yield one for every such event of the stream.
        """
        raise NotImplementedError


def sent_tool_fields(request: ChatRequest) -> dict:
    """The tool and structured-output fields of ``request`` that are set, as a provider-neutral dict."""
    fields = {}
    if request.tools:
        fields["tools"] = request.tools
        fields["tool_choice"] = request.tool_choice
    if request.response_format != "text":
        fields["response_format"] = request.response_format
    if request.response_format == "json_schema":
        fields.update(schema_name=request.schema_name, json_schema=request.json_schema, strict=request.strict)
    return fields


def schema_name(request: ChatRequest) -> str:
    """The name a response schema is sent under (OpenAI requires one)."""
    return request.schema_name or "response"


_registry: dict[str, Provider] = {}
_clients: dict[tuple, object] = {}


def shared_client(build, *settings):
    """The SDK client for ``settings`` (SDK, key, URL, timeout), built once per process and kept.

    Building one (its HTTP pool and TLS context) took tens of milliseconds of every reply's first
    token. The worker builds them before it forks (``Provider.warm``), so each work-horse starts
    with them; the environment is still read on every call, and a new setting gets a new client.
    """
    client = _clients.get(settings)
    if client is None:
        client = _clients[settings] = build()
    return client


def register(provider: Provider) -> Provider:
    """Add a provider to the registry under its name."""
    _registry[provider.name] = provider
    return provider


def get_provider(name: str) -> Provider:
    """Return the provider registered as ``name``; raise UnknownProviderError otherwise."""
    try:
        return _registry[name]
    except KeyError:
        raise UnknownProviderError(name) from None


def all_providers() -> list[Provider]:
    """Every registered provider, configured here or not, in registration order."""
    return list(_registry.values())


def setup_hint() -> str:
    """How to add the providers not configured here: the environment variables each one reads."""
    missing = [provider.setup for provider in _registry.values() if provider.setup and not provider.is_configured()]
    return (
        "To add a provider, set in the environment of the web and worker processes, then restart them: "
        + "; ".join(missing)
        + ". A local model's context window: MODEL_CONTEXT_WINDOWS=model=tokens,…"
    )


def available_providers() -> list[Provider]:
    """Providers that are configured on this machine, in registration order."""
    return [provider for provider in _registry.values() if provider.is_configured()]
