"""``anthropic``: the Anthropic Messages API through the official SDK.

Configured by the environment only, read on every call: ``ANTHROPIC_API_KEY``, ``ANTHROPIC_BASE_URL``
(for proxies and the tests' fake server) and ``PROVIDER_TIMEOUT`` (seconds, default 60).
"""

import json
import os
import re
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field

from .base import ChatRequest, Provider, ProviderError, ToolCall, ToolCallDelta, Usage, shared_client, turn_extra
from .http_errors import display_url, feature_refused, provider_timeout, short_detail, status_text

DEFAULT_BASE_URL = "https://api.anthropic.com"
LABEL = "Anthropic"
KEY_VARIABLE = "ANTHROPIC_API_KEY"

# Claude 3.x and 4.x up to 4.6 still honour ``temperature``; later models answer 400 to it, and SDK 1.0
# dropped it from the method signatures (it goes through ``extra_body`` for the models that take it).
_TAKES_TEMPERATURE = re.compile(r"^claude-(3-.+|(opus|sonnet|haiku)-4(-[0156])?(-\d{8}|-latest)?)$")
TEMPERATURE_MAX = 1.0
# Extended thinking with a token budget: Claude 3.7 Sonnet and Claude 4 up to 4.6, except Opus 4.6
# (the SDK deprecates budgets there in favour of adaptive thinking, as for the models after it).
_TAKES_THINKING = re.compile(r"^claude-(3-7-sonnet|(opus|sonnet|haiku)-4(-[015])?|sonnet-4-6)(-\d{8}|-latest)?$")


# Structured output (``output_config.format``, a JSON schema): Claude 4.5 models and later.
_TAKES_SCHEMA = re.compile(r"^claude-((opus|sonnet|haiku)-4-[5-9]|(opus|sonnet|haiku)-[5-9])")


def takes_schema(model: str) -> bool:
    """Whether ``model`` offers structured output with a JSON schema."""
    return bool(_TAKES_SCHEMA.match(model))


def takes_temperature(model: str) -> bool:
    """Whether ``model`` accepts a sampling temperature (newer Claude models reject one)."""
    return bool(_TAKES_TEMPERATURE.match(model))


def takes_thinking(model: str) -> bool:
    """Whether ``model`` offers extended thinking with a ``budget_tokens``."""
    return bool(_TAKES_THINKING.match(model))


def _mid_stream_text(error_type: str | None) -> str:
    """The sentence for an ``error`` event inside a 200 stream (the status line said all was well)."""
    if error_type == "overloaded_error":
        return f"{LABEL} is overloaded, try again shortly"
    if error_type == "rate_limit_error":
        return f"{LABEL} rate limited the reply, try again shortly"
    return f"{LABEL} reported an error mid-reply ({error_type or 'no details given'}); try again"


def _tool_input(arguments: str) -> dict:
    """A recorded call's arguments as the ``input`` object Anthropic takes back (a broken one as empty)."""
    try:
        value = json.loads(arguments or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _messages(turns: list) -> list[dict]:
    """The history as Messages API messages: tool calls as ``tool_use`` blocks, results as ``tool_result``
    blocks of a user message (the results of one assistant message together, as the API requires)."""
    messages: list[dict] = []
    for turn in turns:
        role, content, extra = turn[0], turn[1], turn_extra(turn)
        if "tool_call_id" in extra:
            block = {"type": "tool_result", "tool_use_id": extra["tool_call_id"], "content": content}
            previous = messages[-1] if messages else None
            if previous and previous["role"] == "user" and isinstance(previous["content"], list):
                previous["content"].append(block)
            else:
                messages.append({"role": "user", "content": [block]})
        elif extra.get("tool_calls"):
            blocks = [{"type": "text", "text": content}] if content else []
            blocks += [
                {"type": "tool_use", "id": call["id"], "name": call["name"], "input": _tool_input(call["arguments"])}
                for call in extra["tool_calls"]
            ]
            messages.append({"role": role, "content": blocks})
        else:
            messages.append({"role": role, "content": content})
    return messages


@dataclass
class AnthropicMessagesProvider(Provider):
    """Streams a reply from the Anthropic Messages API through the official SDK."""

    name: str = "anthropic"
    label: str = "Anthropic"
    models: list[str] = field(default_factory=lambda: ["claude-sonnet-4-6", "claude-haiku-4-5", "claude-opus-4-6"])
    params: tuple[str, ...] = ("temperature", "max_tokens", "top_p", "stop", "thinking_budget")
    # Claude's ids are Anthropic's alone: behind a proxy or gateway (ANTHROPIC_BASE_URL) a Claude model
    # costs what Anthropic lists. (A local OpenAI-compatible server reuses OpenAI's names: no such rule.)
    own_price_list: str | None = "anthropic"
    setup: str = "ANTHROPIC_API_KEY for Anthropic"

    def select_params(self, model: str, params: dict) -> dict:
        """Sampling only for models that take it; thinking only where offered, and then no sampling
        (Anthropic refuses a temperature or top_p chosen with thinking on)."""
        selected = super().select_params(model, params)
        if not takes_thinking(model):
            selected.pop("thinking_budget", None)
        if not takes_temperature(model) or "thinking_budget" in selected:
            selected.pop("temperature", None)
            selected.pop("top_p", None)
        return selected

    def is_configured(self) -> bool:
        """True when ANTHROPIC_API_KEY is set."""
        return bool(os.environ.get("ANTHROPIC_API_KEY"))

    def price_source(self) -> tuple[str | None, str | None]:
        """Anthropic's prices, or those of the service at ANTHROPIC_BASE_URL (none for an unknown one)."""
        base_url = os.environ.get("ANTHROPIC_BASE_URL")
        return (None, base_url) if base_url else ("anthropic", None)

    def request_body(self, request: ChatRequest) -> dict:
        """The JSON body of the Messages API request for ``request``."""
        params = self.sent_params(request)
        # The Messages API has no system role among the messages: system messages added to the
        # conversation join the system prompt, in order.
        system = [request.system_prompt] if request.system_prompt else []
        system += [turn[1] for turn in request.messages if turn[0] == "system"]
        body = {
            "model": request.model,
            "max_tokens": request.max_tokens,
            "messages": _messages([turn for turn in request.messages if turn[0] != "system"]),
        }
        if request.tools:
            body["tools"] = [
                {
                    "name": tool["name"],
                    "description": tool.get("description", ""),
                    "input_schema": tool.get("parameters") or {"type": "object", "properties": {}},
                }
                for tool in request.tools
            ]
            choice = request.tool_choice
            body["tool_choice"] = (
                {"type": {"auto": "auto", "none": "none", "required": "any"}[choice]}
                if choice in ("auto", "none", "required")
                else {"type": "tool", "name": choice}
            )
        if request.response_format == "json_schema" and request.json_schema is not None:
            body["output_config"] = {"format": {"type": "json_schema", "schema": request.json_schema}}
        if system:
            body["system"] = "\n\n".join(system)
        body.update({name: params[name] for name in ("temperature", "top_p") if name in params})
        if "stop" in params:
            body["stop_sequences"] = params["stop"]
        if "thinking_budget" in params:
            body["thinking"] = {"type": "enabled", "budget_tokens": params["thinking_budget"]}
        body["stream"] = True
        return body

    def describe(self, request: ChatRequest) -> dict:
        """The HTTP request this provider makes for ``request``; the key shows as $ANTHROPIC_API_KEY."""
        base_url = display_url(os.environ.get("ANTHROPIC_BASE_URL") or DEFAULT_BASE_URL)
        return {
            "method": "POST",
            "url": f"{base_url}/v1/messages",
            "headers": {
                "Content-Type": "application/json",
                "x-api-key": f"${KEY_VARIABLE}",
                "anthropic-version": "2023-06-01",
            },
            "body": self.request_body(request),
        }

    def client(self, key: str, base_url: str | None, timeout: float):
        """The SDK client for these settings (kept: see ``shared_client``)."""
        import anthropic

        return shared_client(
            lambda: anthropic.Anthropic(api_key=key, base_url=base_url, timeout=timeout, max_retries=0),
            "anthropic",
            key,
            base_url,
            timeout,
        )

    def warm(self) -> None:
        """Build the client for the current environment, if the provider is configured."""
        if self.is_configured():
            self.client(
                os.environ.get("ANTHROPIC_API_KEY") or "",
                os.environ.get("ANTHROPIC_BASE_URL") or None,
                provider_timeout(),
            )

    def stream(self, request: ChatRequest) -> Iterator[str | Usage]:
        """Yield the reply's text deltas, then its Usage (message_start input + message_delta output)."""
        # Imported here, not at the top: only workers pay for importing the SDK (and httpx2, its HTTP client).
        import anthropic
        import httpx2

        timeout = provider_timeout()
        key = os.environ.get("ANTHROPIC_API_KEY") or ""
        if not key:
            raise ProviderError(f"{LABEL} needs {KEY_VARIABLE}: set it in the environment")
        base_url = os.environ.get("ANTHROPIC_BASE_URL") or None
        body = self.request_body(request)
        if body.get("temperature", 0) > TEMPERATURE_MAX:
            raise ProviderError(
                f"{LABEL} takes a temperature from 0 to {TEMPERATURE_MAX:g}; this one is {request.temperature:g}"
            )
        if "thinking" in body and request.thinking_budget >= request.max_tokens:
            raise ProviderError(f"{LABEL} needs the thinking budget below max tokens ({request.max_tokens})")
        if request.response_format == "json_object":
            raise ProviderError(f"{LABEL} has no JSON mode without a schema: choose json_schema and give one")
        if "output_config" in body and not takes_schema(request.model):
            raise ProviderError(
                f"{request.model} does not support structured output with a JSON schema (Claude 4.5 models and later do)"
            )
        # temperature and top_p go in extra_body: SDK 1.0 dropped them from the method signatures. The
        # messages too, as they are: the SDK's typed transform of them costs about 0.2 ms a message.
        options = {name: value for name, value in body.items() if name not in ("temperature", "top_p", "stream")}
        sampling = {name: body[name] for name in ("temperature", "top_p") if name in body}
        options["messages"] = []
        options["extra_body"] = {**sampling, "messages": body["messages"]}
        opened = False
        try:
            with nullcontext(self.client(key, base_url, timeout)) as client:
                with client.messages.stream(**options) as events:
                    opened = True
                    started = stopped = False
                    calls: dict[int, dict] = {}  # tool_use blocks by index, their input as the JSON text streamed
                    for event in events:
                        if event.type == "message_start":
                            started = True
                        if event.type == "text" and event.text:
                            yield event.text
                            continue
                        if event.type == "content_block_start" and event.content_block.type == "tool_use":
                            block = event.content_block
                            calls[event.index] = {"id": block.id, "name": block.name, "arguments": []}
                            yield ToolCallDelta(index=event.index, id=block.id, name=block.name)
                        elif event.type == "content_block_delta" and event.delta.type == "input_json_delta":
                            calls[event.index]["arguments"].append(event.delta.partial_json)
                            yield ToolCallDelta(index=event.index, arguments=event.delta.partial_json)
                        if event.type == "message_stop":
                            stopped = True
                        # No text (extended thinking streams only thinking deltas for a while): still a
                        # moment for the worker to see a Stop, see ``Provider.stream``.
                        yield ""
                    if not started:
                        raise ProviderError(f"{LABEL} sent a malformed stream")
                    reported = events.current_message_snapshot.usage
        except (anthropic.APITimeoutError, httpx2.TimeoutException):
            raise ProviderError(f"{LABEL} did not answer within {timeout:g} s") from None
        except (anthropic.APIConnectionError, httpx2.TransportError):
            # The SDK types failures to connect; a connection lost mid-stream reaches us as httpx2's own error.
            if opened:
                raise ProviderError(f"The connection to {LABEL} broke off mid-reply; try again") from None
            where = display_url(base_url or DEFAULT_BASE_URL)
            raise ProviderError(f"Could not connect to {LABEL} at {where}: is the server running?") from None
        except anthropic.APIStatusError as error:
            if error.status_code < 400:  # an ``error`` event inside the stream
                raise ProviderError(_mid_stream_text(error.type)) from None
            detail = short_detail(error.api_message, key)
            refused = feature_refused(request, error.status_code, detail)
            raise ProviderError(
                refused or status_text(LABEL, KEY_VARIABLE, error.status_code, detail, "ANTHROPIC_BASE_URL")
            ) from None
        except (ValueError, LookupError, TypeError, RuntimeError):
            # Undecodable JSON (ValueError) or events out of order / for blocks never started: the SDK's
            # stream accumulator raises RuntimeError, IndexError or TypeError on those.
            raise ProviderError(f"{LABEL} sent a malformed stream") from None
        except anthropic.AnthropicError as error:  # e.g. a client the SDK refuses to build from this environment
            raise ProviderError(f"{LABEL} could not be called: {short_detail(str(error), key)}") from None
        if not stopped:
            raise ProviderError(f"{LABEL}'s stream ended before the reply was complete")
        for index in sorted(calls):
            call = calls[index]
            yield ToolCall(id=call["id"], name=call["name"], arguments="".join(call["arguments"]) or "{}")
        if isinstance(reported.input_tokens, int) and isinstance(reported.output_tokens, int):
            # Anthropic counts cache reads and writes apart from input_tokens; our input_tokens is all of it.
            cache_read = reported.cache_read_input_tokens if isinstance(reported.cache_read_input_tokens, int) else 0
            cache_write = (
                reported.cache_creation_input_tokens if isinstance(reported.cache_creation_input_tokens, int) else 0
            )
            yield Usage(
                input_tokens=reported.input_tokens + cache_read + cache_write,
                output_tokens=reported.output_tokens,
                cached_tokens=cache_read,
            )
