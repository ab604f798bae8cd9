"""The openai and anthropic providers, through the real SDKs, against local fake servers speaking the real wire formats."""

import socket
import time
import traceback

import pytest

from prompt_tracker.domain.messages import Usage
from prompt_tracker.providers import ChatRequest, ProviderError, available_providers, get_provider

from .fake_llm_servers import ANTHROPIC_KEY, OPENAI_KEY, reply_pieces

HISTORY = [("user", "What is a prompt?"), ("assistant", "Text you give a model."), ("user", "Give an example.")]
SYSTEM = "You are terse.\nAnswer in one line."

# name → (fixture, label in messages, key variable, base URL variable, key, a model)
PROVIDERS = {
    "openai": ("fake_openai", "OpenAI", "OPENAI_API_KEY", "OPENAI_BASE_URL", OPENAI_KEY, "gpt-4o-mini"),
    "anthropic": (
        "fake_anthropic",
        "Anthropic",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        ANTHROPIC_KEY,
        "claude-haiku-4-5",
    ),
}
BOTH = pytest.mark.parametrize("name", list(PROVIDERS))


def chat(model, system_prompt=SYSTEM, messages=HISTORY, temperature=0.3, max_tokens=256):
    return ChatRequest(
        model=model,
        system_prompt=system_prompt,
        messages=list(messages),
        temperature=temperature,
        max_tokens=max_tokens,
    )


@pytest.fixture
def setup(request):
    """For a provider name: (provider, its running fake server, its table row)."""

    def make(name):
        row = PROVIDERS[name]
        return get_provider(name), request.getfixturevalue(row[0]), row

    return make


def fail(provider, request) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        list(provider.stream(request))
    return caught.value


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- streaming and usage -----------------------------------------------------------------------


@BOTH
def test_deltas_arrive_in_order_then_one_usage(setup, name):
    provider, server, (*_, model) = setup(name)
    server.script.reply = "Write a haiku about the sea, in five words."
    items = [item for item in provider.stream(chat(model)) if item != ""]  # "": an event without text
    deltas, usage = items[:-1], items[-1]
    assert deltas == reply_pieces(server.script.reply)
    assert "".join(deltas) == server.script.reply
    assert all(isinstance(delta, str) for delta in deltas)
    assert usage == Usage(input_tokens=21, output_tokens=9)


@BOTH
def test_cached_input_tokens_are_reported(setup, name):
    provider, server, (*_, model) = setup(name)
    server.script.cached_tokens = 16
    usage = list(provider.stream(chat(model)))[-1]
    assert usage == Usage(input_tokens=21, output_tokens=9, cached_tokens=16)


@BOTH
def test_deltas_are_yielded_as_they_arrive(setup, name):
    provider, server, (*_, model) = setup(name)
    server.script.chunk_delay = 0.2
    started = time.monotonic()
    first = next(delta for delta in provider.stream(chat(model)) if delta)
    assert first == "Hello"
    assert time.monotonic() - started < 1.5  # long before the whole (1.8 s) reply is sent


def test_openai_request_carries_system_prompt_history_and_settings(fake_openai):
    list(get_provider("openai").stream(chat("gpt-4o-mini", temperature=0.3, max_tokens=256)))
    (sent,) = fake_openai.requests
    assert sent.path == "/v1/chat/completions"
    assert sent.body["messages"] == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "What is a prompt?"},
        {"role": "assistant", "content": "Text you give a model."},
        {"role": "user", "content": "Give an example."},
    ]
    assert sent.body["model"] == "gpt-4o-mini"
    assert sent.body["temperature"] == 0.3
    assert sent.body["max_tokens"] == 256
    assert sent.body["stream"] is True
    assert sent.body["stream_options"] == {"include_usage": True}
    assert sent.headers["authorization"] == f"Bearer {OPENAI_KEY}"


def test_anthropic_request_carries_system_prompt_history_and_settings(fake_anthropic):
    list(get_provider("anthropic").stream(chat("claude-haiku-4-5", temperature=0.3, max_tokens=256)))
    (sent,) = fake_anthropic.requests
    assert sent.path == "/v1/messages"
    assert sent.body["system"] == SYSTEM
    assert sent.body["messages"] == [{"role": role, "content": content} for role, content in HISTORY]
    assert sent.body["model"] == "claude-haiku-4-5"
    assert sent.body["max_tokens"] == 256
    assert sent.body["temperature"] == 0.3
    assert sent.body["stream"] is True
    assert sent.sent_key() == ANTHROPIC_KEY
    assert "anthropic-version" in sent.headers


def test_empty_system_prompt_is_not_sent(fake_openai, fake_anthropic):
    list(get_provider("openai").stream(chat("gpt-4o-mini", system_prompt="")))
    list(get_provider("anthropic").stream(chat("claude-haiku-4-5", system_prompt="")))
    assert [m["role"] for m in fake_openai.requests[0].body["messages"]] == ["user", "assistant", "user"]
    assert "system" not in fake_anthropic.requests[0].body


@pytest.mark.parametrize("model", ["claude-opus-4-7", "claude-sonnet-5", "some-proxy-model"])
def test_anthropic_models_that_reject_temperature_are_not_sent_one(fake_anthropic, model):
    list(get_provider("anthropic").stream(chat(model, temperature=0.3)))
    assert "temperature" not in fake_anthropic.requests[0].body


def test_anthropic_temperature_above_one_is_refused_before_any_request(fake_anthropic):
    error = fail(get_provider("anthropic"), chat("claude-sonnet-4-6", temperature=1.5))
    assert str(error) == "Anthropic takes a temperature from 0 to 1; this one is 1.5"
    assert fake_anthropic.requests == []


def test_openai_server_without_usage_yields_no_usage(fake_openai):
    """Missing usage is unknown, not zero: the stream simply yields no Usage."""
    fake_openai.script.usage = False
    items = list(get_provider("openai").stream(chat("gpt-4o-mini")))
    assert items == reply_pieces(fake_openai.script.reply)


def test_openai_local_server_without_key_gets_a_placeholder_key(fake_openai, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    items = list(get_provider("openai").stream(chat("llama3.2")))
    assert "".join(item for item in items if isinstance(item, str)) == fake_openai.script.reply
    assert fake_openai.requests[0].headers["authorization"] == "Bearer not-needed"


# --- errors ------------------------------------------------------------------------------------


@BOTH
@pytest.mark.parametrize(
    "status, expected",
    [
        (401, "{label} answered 401: check {key_variable}"),
        (429, "{label} answered 429: rate limited, try again shortly"),
        (500, "{label} answered 500: the server had an error"),
        (503, "{label} answered 503: the server had an error"),
        (404, "{label} answered 404: check the model name and {url_variable}"),
    ],
)
def test_http_errors_give_a_specific_message(setup, name, status, expected):
    provider, server, (_, label, key_variable, url_variable, key, model) = setup(name)
    server.script.status = status
    error = fail(provider, chat(model))
    assert str(error) == expected.format(label=label, key_variable=key_variable, url_variable=url_variable)
    assert len(server.requests) == 1  # max_retries=0: the user has a Retry button


@BOTH
def test_bad_request_shows_the_servers_reason(setup, name):
    provider, server, (_, label, *_, model) = setup(name)
    server.script.status = 400
    reason = server.error_body(400)["error"]["message"]
    assert str(fail(provider, chat(model))) == f"{label} answered 400: {reason}"


def test_anthropic_overloaded_status(fake_anthropic):
    fake_anthropic.script.status = 529
    error = fail(get_provider("anthropic"), chat("claude-haiku-4-5"))
    assert str(error) == "Anthropic answered 529: the server is overloaded, try again shortly"


@BOTH
def test_timeout_names_the_limit(setup, name, monkeypatch):
    provider, server, (_, label, *_, model) = setup(name)
    monkeypatch.setenv("PROVIDER_TIMEOUT", "0.2")  # read at call time, after the provider was built
    server.script.delay_before = 5
    started = time.monotonic()
    error = fail(provider, chat(model))
    assert str(error) == f"{label} did not answer within 0.2 s"
    assert time.monotonic() - started < 3
    assert len(server.requests) == 1


@BOTH
def test_stalled_stream_times_out_too(setup, name, monkeypatch):
    provider, server, (_, label, *_, model) = setup(name)
    monkeypatch.setenv("PROVIDER_TIMEOUT", "0.2")
    server.script.chunk_delay = 2
    assert str(fail(provider, chat(model))) == f"{label} did not answer within 0.2 s"


@pytest.mark.parametrize("value", ["soon", "0", "-3", "nan"])
def test_bad_provider_timeout_is_named(fake_openai, monkeypatch, value):
    monkeypatch.setenv("PROVIDER_TIMEOUT", value)
    error = fail(get_provider("openai"), chat("gpt-4o-mini"))
    assert str(error).startswith("PROVIDER_TIMEOUT must be a positive number of seconds")
    assert fake_openai.requests == []


@BOTH
def test_connection_refused_names_the_server(name, monkeypatch):
    _, label, key_variable, url_variable, key, model = PROVIDERS[name]
    port = closed_port()
    monkeypatch.setenv(key_variable, key)
    monkeypatch.setenv(url_variable, f"http://someone:secret@127.0.0.1:{port}/v1?token=abc")
    error = fail(get_provider(name), chat(model))
    # Whatever the URL carries besides host and path (user info, query) stays out of the message.
    assert str(error) == f"Could not connect to {label} at http://127.0.0.1:{port}/v1: is the server running?"


@BOTH
def test_malformed_stream(setup, name):
    provider, server, (_, label, *_, model) = setup(name)
    server.script.malformed = True
    assert str(fail(provider, chat(model))) == f"{label} sent a malformed stream"


@BOTH
def test_connection_lost_mid_stream(setup, name):
    provider, server, (_, label, *_, model) = setup(name)
    server.script.drop_after = 5
    assert str(fail(provider, chat(model))) == f"The connection to {label} broke off mid-reply; try again"


@BOTH
def test_stream_that_ends_before_the_reply_is_complete(setup, name):
    provider, server, (_, label, *_, model) = setup(name)
    server.script.end_after = 4  # a clean end of the body, but no finish_reason / message_stop
    assert str(fail(provider, chat(model))) == f"{label}'s stream ended before the reply was complete"


@pytest.mark.parametrize(
    "name, expected",
    [
        ("openai", "OpenAI reported an error mid-reply: Upstream model overloaded"),
        ("anthropic", "Anthropic is overloaded, try again shortly"),
    ],
)
def test_error_inside_a_stream(setup, name, expected):
    provider, server, (*_, model) = setup(name)
    server.script.error_mid_stream = True
    assert str(fail(provider, chat(model))) == expected


def test_openai_without_key_or_base_url_says_so(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    error = fail(get_provider("openai"), chat("gpt-4o-mini"))
    assert (
        str(error) == "OpenAI needs OPENAI_API_KEY (or OPENAI_BASE_URL for a local server): set it in the environment"
    )


def test_anthropic_without_key_says_so(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    error = fail(get_provider("anthropic"), chat("claude-haiku-4-5"))
    assert str(error) == "Anthropic needs ANTHROPIC_API_KEY: set it in the environment"


@BOTH
@pytest.mark.parametrize("scenario", ["401", "400", "429", "malformed", "mid-stream error"])
def test_keys_never_appear_in_errors(setup, name, scenario):
    """The fake servers echo the key in their 401 body, as a careless server would."""
    provider, server, (*_, key, model) = setup(name)
    if scenario == "malformed":
        server.script.malformed = True
    elif scenario == "mid-stream error":
        server.script.error_mid_stream = True
    else:
        server.script.status = int(scenario)
    error = fail(provider, chat(model))
    assert key not in str(error)
    # Not in the traceback either (a worker logs it, RQ stores it): the SDK's exception is not chained.
    assert key not in "".join(traceback.format_exception(error))


# --- stopping ----------------------------------------------------------------------------------


@BOTH
def test_closing_the_generator_closes_the_http_stream(setup, name):
    provider, server, (*_, model) = setup(name)
    server.script.reply = " ".join(["word"] * 200)
    server.script.chunk_delay = 0.01
    stream = provider.stream(chat(model))
    text = (delta for delta in stream if delta)
    assert [next(text), next(text)] == ["word", " word"]
    stream.close()
    assert server.wait_for_disconnect(5), "the server kept streaming to a closed reply"
    assert server.progress.chunks_sent < server.progress.chunks_planned


# --- configuration and registry --------------------------------------------------------------


@pytest.mark.parametrize(
    "env, configured",
    [
        ({}, False),
        ({"OPENAI_API_KEY": "sk-x"}, True),
        ({"OPENAI_BASE_URL": "http://127.0.0.1:11434/v1"}, True),
    ],
)
def test_openai_is_configured_by_key_or_base_url(monkeypatch, env, configured):
    for variable in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(variable, raising=False)
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    assert get_provider("openai").is_configured() is configured
    assert ("openai" in [p.name for p in available_providers()]) is configured


@pytest.mark.parametrize("key, configured", [(None, False), ("sk-ant-x", True)])
def test_anthropic_is_configured_by_key(monkeypatch, key, configured):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    if key:
        monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    assert get_provider("anthropic").is_configured() is configured


@BOTH
def test_model_suggestions(name):
    models = get_provider(name).models
    assert 1 <= len(models) <= 8 and len(set(models)) == len(models)


# --- through the app -------------------------------------------------------------------------


def test_a_playground_turn_through_the_openai_provider(app, playground, fake_openai):
    playground.save_settings(provider="openai", model="gpt-4o-mini", system_prompt="Be brief.")
    playground.send("hello?")
    reply = playground.messages(app)[-1]
    assert reply.status == "done"
    assert reply.content == fake_openai.script.reply
    assert reply.usage == Usage(input_tokens=21, output_tokens=9)
    sent = fake_openai.requests[0].body["messages"]
    assert sent == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello?"}]


def test_a_failed_playground_turn_says_why(app, playground, fake_anthropic):
    fake_anthropic.script.status = 401
    playground.save_settings(provider="anthropic", model="claude-haiku-4-5")
    playground.send("hello?")
    reply = playground.messages(app)[-1]
    assert reply.status == "failed"
    assert reply.error == "Anthropic answered 401: check ANTHROPIC_API_KEY"
