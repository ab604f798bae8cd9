"""The cost of a reply from genai-prices' data: known models get a price, anything unknown gets none."""

import pytest

from prompt_tracker.domain.messages import Usage
from prompt_tracker.domain.pricing import UNPRICED, context_window, cost_usd, is_priced
from prompt_tracker.providers import all_providers, get_provider


@pytest.fixture(autouse=True)
def official_endpoints(monkeypatch):
    """Requests go to the providers' own APIs unless a test says otherwise."""
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)


@pytest.mark.parametrize(
    "provider, model, usage, expected",
    [
        ("openai", "gpt-4o-mini", Usage(input_tokens=1_000_000, output_tokens=1_000_000), 0.75),
        ("openai", "gpt-4o-mini", Usage(input_tokens=21, output_tokens=9), 0.00000855),
        ("openai", "gpt-4o-mini-2024-07-18", Usage(input_tokens=21, output_tokens=9), 0.00000855),
        ("openai", "gpt-4.1", Usage(input_tokens=2_000, output_tokens=500), 0.008),
        ("anthropic", "claude-haiku-4-5", Usage(input_tokens=1_000, output_tokens=500), 0.0035),
        ("anthropic", "claude-opus-4-1", Usage(input_tokens=10_000, output_tokens=2_000), 0.3),
        ("anthropic", "claude-sonnet-4-5", Usage(input_tokens=0, output_tokens=0), 0.0),
    ],
)
def test_cost_of_known_models(provider, model, usage, expected):
    assert cost_usd(provider, model, usage) == pytest.approx(expected, rel=1e-9, abs=1e-15)


def test_cached_input_tokens_are_priced_at_the_cache_price():
    # gpt-4o-mini: $0.15 per million input tokens, $0.075 per million read from the cache.
    uncached = cost_usd("openai", "gpt-4o-mini", Usage(input_tokens=1_000_000, output_tokens=0))
    cached = cost_usd("openai", "gpt-4o-mini", Usage(input_tokens=1_000_000, output_tokens=0, cached_tokens=800_000))
    assert uncached == pytest.approx(0.15)
    assert cached == pytest.approx(0.2 * 0.15 + 0.8 * 0.075)


def test_cost_has_no_float_noise():
    assert cost_usd("openai", "gpt-4o-mini", Usage(input_tokens=21, output_tokens=0)) == 3.15e-06


@pytest.mark.parametrize(
    "provider, model, usage",
    [
        ("openai", "gpt-4o-mini", None),  # usage unknown: the server did not report it
        ("openai", "llama3.2", Usage(input_tokens=10, output_tokens=10)),  # a local model
        ("openai", "gpt-4o-mini-banana", Usage(input_tokens=10, output_tokens=10)),  # no fuzzy guess
        ("openai", "claude-haiku-4-5", Usage(input_tokens=10, output_tokens=10)),  # right model, wrong provider
        ("echo", "echo-1", Usage(input_tokens=10, output_tokens=10)),
        ("nobody", "gpt-4o", Usage(input_tokens=10, output_tokens=10)),
    ],
)
def test_unknown_price_or_usage_gives_no_cost(provider, model, usage):
    assert cost_usd(provider, model, usage) is None


def test_a_local_server_gets_no_cost_even_for_a_known_model_name(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1")
    assert cost_usd("openai", "gpt-4o-mini", Usage(input_tokens=10, output_tokens=10)) is None
    assert context_window("openai", "gpt-4o-mini") is None


def test_a_known_service_behind_the_base_url_gets_its_own_prices(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "https://openrouter.ai/api/v1")
    assert cost_usd("openai", "openai/gpt-4o-mini", Usage(input_tokens=1_000_000, output_tokens=0)) == pytest.approx(
        0.15
    )


def test_every_suggested_model_is_priced_or_listed_as_unpriced():
    for provider in all_providers():
        for model in provider.models:
            assert is_priced(provider.name, model) or (provider.name, model) in UNPRICED, (provider.name, model)
    # and the unpriced list holds no stale entry: each is still suggested and really has no price
    for provider, model in UNPRICED:
        assert model in get_provider(provider).models and not is_priced(provider, model)


def test_context_windows_come_from_the_same_data():
    assert context_window("openai", "gpt-4o-mini") == 128_000
    assert context_window("anthropic", "claude-haiku-4-5") == 200_000
    assert context_window("echo", "echo-1") is None


def test_the_meta_line_shows_cached_tokens_cost_and_context(app, playground):
    import time

    from prompt_tracker.domain.messages import Message, new_message_id
    from prompt_tracker.domain.settings import STANDALONE
    from prompt_tracker.extensions import services

    playground.page()
    with playground.client.session_transaction() as session:
        session.add_playground(STANDALONE)
    usage = Usage(input_tokens=20_000, output_tokens=1_000, cached_tokens=16_000)
    reply = Message(
        id=new_message_id(),
        role="assistant",
        content="ok",
        provider="anthropic",
        model="claude-haiku-4-5",
        usage=usage,
        cost_usd=cost_usd("anthropic", "claude-haiku-4-5", usage),
        created_at=time.time(),
        finished_at=time.time(),
    )
    with app.app_context():
        services.store.append(playground.store(), STANDALONE, reply)
    page = playground.page().get_data(as_text=True)
    assert "20000 in (16000 cached) / 1000 out" in page
    assert "$0.0106" in page  # (4,000 × $1 + 16,000 × $0.10 + 1,000 × $5) per million
    assert '<meter min="0" max="200000" value="21000"></meter> 10.5% of 200,000 context' in page
