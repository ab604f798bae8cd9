"""``openai``: any OpenAI-compatible Chat Completions endpoint (OpenAI, Ollama, vLLM, LM Studio, llama.cpp, OpenRouter).

Configured by the environment only, read on every call: ``OPENAI_API_KEY``, ``OPENAI_BASE_URL`` and
``PROVIDER_TIMEOUT`` (seconds, default 60).
"""

import os
import socket
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field

from .base import (
    ChatRequest,
    Provider,
    ProviderError,
    ToolCall,
    ToolCallDelta,
    Usage,
    schema_name,
    shared_client,
    turn_extra,
)
from .context_windows import fetch_model_list, reported_window
from .http_errors import display_url, feature_refused, provider_timeout, short_detail, status_text

DEFAULT_BASE_URL = "https://api.openai.com/v1"
# A local server (Ollama, llama.cpp...) may want no key, but the SDK refuses to start without one.
NO_KEY = "not-needed"
LABEL = "OpenAI"
KEY_VARIABLE = "OPENAI_API_KEY"


def _error_message(body: object) -> object:
    """``message`` of an OpenAI error body (the SDK hands over its inner ``error`` object, or the whole body)."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]
    return body.get("message") if isinstance(body, dict) else None


@dataclass
class OpenAIChatProvider(Provider):
    """Streams a chat completion from an OpenAI-compatible server through the official SDK."""

    name: str = "openai"
    label: str = "OpenAI-compatible"
    # Models that take ``max_tokens`` and a free ``temperature``; o-series and GPT-5 models want
    # ``max_completion_tokens`` instead and are left out of the suggestions for that reason.
    models: list[str] = field(
        default_factory=lambda: ["gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "gpt-4.1", "gpt-4.1-nano"]
    )
    params: tuple[str, ...] = (
        "temperature",
        "max_tokens",
        "top_p",
        "stop",
        "seed",
        "presence_penalty",
        "frequency_penalty",
    )

    setup: str = (
        "OPENAI_API_KEY for OpenAI, or OPENAI_BASE_URL for an OpenAI-compatible server: "
        "Ollama (http://localhost:11434/v1), vLLM (http://localhost:8000/v1), llama.cpp (http://localhost:8080/v1), "
        "LM Studio, OpenRouter (with its key in OPENAI_API_KEY)"
    )

    def is_configured(self) -> bool:
        """True when OPENAI_API_KEY or OPENAI_BASE_URL is set (a local server may need no key)."""
        return bool(os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL"))

    def reported_window(self, model: str) -> int | None:
        """The window the server at OPENAI_BASE_URL lists for ``model`` (vLLM, llama.cpp...); OpenAI's own list has none."""
        base_url = os.environ.get("OPENAI_BASE_URL")
        return reported_window(base_url, os.environ.get("OPENAI_API_KEY") or "", model) if base_url else None

    def price_source(self) -> tuple[str | None, str | None]:
        """OpenAI's prices, or those of the service at OPENAI_BASE_URL (none for a local server)."""
        base_url = os.environ.get("OPENAI_BASE_URL")
        return (None, base_url) if base_url else ("openai", None)

    def request_body(self, request: ChatRequest) -> dict:
        """The JSON body of the Chat Completions request for ``request`` (the SDK sends it as is)."""
        messages = [{"role": "system", "content": request.system_prompt}] if request.system_prompt else []
        messages += [_message(turn) for turn in request.messages]
        body = {
            "model": request.model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            **self.sent_params(request),
        }
        if request.tools:
            body["tools"] = [{"type": "function", "function": tool} for tool in request.tools]
            choice = request.tool_choice
            body["tool_choice"] = (
                choice if choice in ("auto", "none", "required") else {"type": "function", "function": {"name": choice}}
            )
        if request.response_format == "json_object":
            body["response_format"] = {"type": "json_object"}
        elif request.response_format == "json_schema" and request.json_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": schema_name(request), "schema": request.json_schema, "strict": request.strict},
            }
        return body

    def describe(self, request: ChatRequest) -> dict:
        """The HTTP request this provider makes for ``request``; the key shows as $OPENAI_API_KEY."""
        base_url = display_url(os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL)
        return {
            "method": "POST",
            "url": f"{base_url}/chat/completions",
            "headers": {"Content-Type": "application/json", "Authorization": f"Bearer ${KEY_VARIABLE}"},
            "body": self.request_body(request),
        }

    def client(self, key: str, base_url: str | None, timeout: float):
        """The SDK client for these settings (kept: see ``shared_client``)."""
        import openai

        return shared_client(
            lambda: openai.OpenAI(api_key=key or NO_KEY, base_url=base_url, timeout=timeout, max_retries=0),
            "openai",
            key,
            base_url,
            timeout,
        )

    def warm(self) -> None:
        """Build the client for the current environment and what the SDK builds on its first call.

        The SDK loads its resources and builds the pydantic schemas of the streamed chunks lazily:
        about 100 ms of the first reply of every work-horse, unless done here, before the fork.
        """
        if not self.is_configured():
            return
        if os.environ.get("OPENAI_BASE_URL"):  # the windows of a local server's models, for the first replies
            fetch_model_list(os.environ["OPENAI_BASE_URL"], os.environ.get("OPENAI_API_KEY") or "")
        import openai
        from openai.types.chat import ChatCompletionChunk

        client = self.client(
            os.environ.get("OPENAI_API_KEY") or "", os.environ.get("OPENAI_BASE_URL") or None, provider_timeout()
        )
        # One call to a closed local port: the request path (parameters, headers) without the network.
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            closed = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
        try:
            client.with_options(base_url=closed, timeout=1.0).chat.completions.create(
                model="warm",
                messages=[{"role": "user", "content": "warm"}],
                stream=True,
                stream_options={"include_usage": True},
                max_tokens=1,
                temperature=0.0,
            )
        except openai.APIConnectionError:
            pass
        ChatCompletionChunk.model_validate(
            {
                "id": "warm",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": "warm",
                "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
                "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
            }
        )

    def stream(self, request: ChatRequest) -> Iterator[str | Usage]:
        """Yield the reply's text deltas, then its Usage if the server reported one; ProviderError on failure.

        A server that reports no usage (some local servers ignore ``include_usage``) gets no Usage
        yielded at all: the caller keeps ``usage=None``, meaning unknown, never zero.
        """
        import openai  # here, not at the top: only workers pay for importing the SDK

        timeout = provider_timeout()
        key = os.environ.get("OPENAI_API_KEY") or ""
        base_url = os.environ.get("OPENAI_BASE_URL") or None
        if not key and not base_url:
            raise ProviderError(
                f"{LABEL} needs {KEY_VARIABLE} (or OPENAI_BASE_URL for a local server): set it in the environment"
            )
        body = self.request_body(request)
        # The messages go as they are, through ``extra_body``: the SDK's typed transform of the
        # ``messages`` argument walks every message (about 0.2 ms each, 12 ms of a 60-message
        # conversation before the request leaves), and ours are plain JSON already.
        messages = body.pop("messages")
        opened = False
        try:
            with nullcontext(self.client(key, base_url, timeout)) as client:
                with client.chat.completions.create(**body, messages=[], extra_body={"messages": messages}) as chunks:
                    opened = True
                    usage = None
                    finished = False
                    calls: dict[int, dict] = {}  # tool calls by index, assembled from their deltas
                    for chunk in chunks:
                        pieces: list[ToolCallDelta] = []
                        text, finish_reason, chunk_usage = _read_chunk(chunk, calls, pieces)
                        if chunk_usage is not None:
                            usage = chunk_usage
                        finished = finished or finish_reason is not None
                        if text or calls:  # no text while tool calls stream: still a moment to see a Stop
                            yield text
                        yield from pieces
        except openai.APITimeoutError:
            raise ProviderError(f"{LABEL} did not answer within {timeout:g} s") from None
        except openai.APIConnectionError:
            if opened:
                raise ProviderError(f"The connection to {LABEL} broke off mid-reply; try again") from None
            where = display_url(base_url or DEFAULT_BASE_URL)
            raise ProviderError(f"Could not connect to {LABEL} at {where}: is the server running?") from None
        except openai.APIStatusError as error:
            detail = short_detail(_error_message(error.body), key)
            refused = feature_refused(request, error.status_code, detail)
            raise ProviderError(
                refused or status_text(LABEL, KEY_VARIABLE, error.status_code, detail, "OPENAI_BASE_URL")
            ) from None
        except openai.APIError as error:
            # An ``{"error": ...}`` object inside a 200 stream (OpenRouter does this when a model fails).
            detail = short_detail(error.message, key)
            raise ProviderError(f"{LABEL} reported an error mid-reply: {detail or 'no details given'}") from None
        except _MalformedChunk:
            raise ProviderError(f"{LABEL} sent a malformed stream") from None
        except ValueError:  # json.JSONDecodeError and UnicodeDecodeError while decoding the stream
            raise ProviderError(f"{LABEL} sent a malformed stream") from None
        except openai.OpenAIError as error:  # e.g. a client the SDK refuses to build from this environment
            raise ProviderError(f"{LABEL} could not be called: {short_detail(str(error), key)}") from None
        if not finished:
            raise ProviderError(f"{LABEL}'s stream ended before the reply was complete")
        for index in sorted(calls):
            call = calls[index]
            yield ToolCall(id=call["id"] or f"call_{index}", name=call["name"], arguments="".join(call["arguments"]))
        if usage is not None:
            yield usage


class _MalformedChunk(Exception):
    """A streamed chunk parsed as JSON but does not have the shape of a chat completion chunk."""


def _message(turn) -> dict:
    """One turn of the history as a Chat Completions message (tool calls and tool results included)."""
    role, content, extra = turn[0], turn[1], turn_extra(turn)
    if "tool_call_id" in extra:
        return {"role": "tool", "tool_call_id": extra["tool_call_id"], "content": content}
    if extra.get("tool_calls"):
        calls = [
            {"id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": call["arguments"]}}
            for call in extra["tool_calls"]
        ]
        return {"role": role, "content": content or None, "tool_calls": calls}
    return {"role": role, "content": content}


def _read_chunk(
    chunk, calls: dict[int, dict], pieces: list[ToolCallDelta] | None = None
) -> tuple[str, str | None, Usage | None]:
    """Text delta, finish reason and usage carried by one streamed chunk; its tool-call deltas are
    added to ``calls`` (by index: parallel calls stream side by side, the id and name in the first)
    and to ``pieces`` as they came."""
    try:
        text = ""
        finish_reason = None
        for choice in chunk.choices or []:
            if choice.index not in (0, None):
                continue  # we ask for one choice; ignore any others
            if choice.delta is not None and isinstance(choice.delta.content, str):
                text += choice.delta.content
            for delta in (choice.delta.tool_calls if choice.delta is not None else None) or []:
                call = calls.setdefault(delta.index or 0, {"id": "", "name": "", "arguments": []})
                call["id"] = delta.id or call["id"]
                if delta.function is not None:
                    call["name"] = delta.function.name or call["name"]
                    if isinstance(delta.function.arguments, str):
                        call["arguments"].append(delta.function.arguments)
                if pieces is not None:
                    function = delta.function
                    name = function.name if function is not None and isinstance(function.name, str) else ""
                    arguments = function.arguments if function is not None else None
                    pieces.append(
                        ToolCallDelta(
                            index=delta.index or 0,
                            id=delta.id if isinstance(delta.id, str) else "",
                            name=name,
                            arguments=arguments if isinstance(arguments, str) else "",
                        )
                    )
            finish_reason = choice.finish_reason or finish_reason
        usage = None
        reported = getattr(chunk, "usage", None)
        if reported is not None:
            prompt_tokens, completion_tokens = reported.prompt_tokens, reported.completion_tokens
            if isinstance(prompt_tokens, int) and isinstance(completion_tokens, int):
                # prompt_tokens counts the cached ones too (as our Usage.input_tokens does).
                details = getattr(reported, "prompt_tokens_details", None)
                cached = getattr(details, "cached_tokens", None) if details is not None else None
                usage = Usage(
                    input_tokens=prompt_tokens,
                    output_tokens=completion_tokens,
                    cached_tokens=cached if isinstance(cached, int) else 0,
                )
        return text, finish_reason, usage
    except (AttributeError, TypeError) as error:
        raise _MalformedChunk() from error
