"""The cost of a reply: known models get an exact price, anything unknown gets none (never a wrong one)."""

from datetime import date

import pytest

from prompt_tracker.messages import Usage
from prompt_tracker.pricing import cost_usd, model_prices, price_table


@pytest.mark.parametrize("provider, model, usage, expected", [
    ("openai", "gpt-4o-mini", Usage(input_tokens=1_000_000, output_tokens=1_000_000), 0.75),
    ("openai", "gpt-4o-mini", Usage(input_tokens=21, output_tokens=9), 0.00000855),
    ("openai", "gpt-4.1", Usage(input_tokens=2_000, output_tokens=500), 0.008),
    ("anthropic", "claude-haiku-4-5", Usage(input_tokens=1_000, output_tokens=500), 0.0035),
    ("anthropic", "claude-opus-4-1", Usage(input_tokens=10_000, output_tokens=2_000), 0.3),
    ("anthropic", "claude-sonnet-4-5", Usage(input_tokens=0, output_tokens=0), 0.0),
])
def test_cost_of_known_models(provider, model, usage, expected):
    assert cost_usd(provider, model, usage) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_cost_has_no_float_noise():
    assert cost_usd("openai", "gpt-4o-mini", Usage(input_tokens=21, output_tokens=0)) == 3.15e-06


@pytest.mark.parametrize("provider, model, usage", [
    ("openai", "gpt-4o-mini", None),  # usage unknown: the server did not report it
    ("openai", "llama3.2", Usage(input_tokens=10, output_tokens=10)),  # a local model
    ("openai", "openai/gpt-4o-mini", Usage(input_tokens=10, output_tokens=10)),  # OpenRouter's name
    ("openai", "gpt-4o-2024-05-13", Usage(input_tokens=10, output_tokens=10)),  # a snapshot priced differently
    ("openai", "claude-haiku-4-5", Usage(input_tokens=10, output_tokens=10)),  # right model, wrong provider
    ("echo", "echo-1", Usage(input_tokens=10, output_tokens=10)),
    ("nobody", "gpt-4o", Usage(input_tokens=10, output_tokens=10)),
])
def test_unknown_price_or_usage_gives_no_cost(provider, model, usage):
    assert cost_usd(provider, model, usage) is None


def test_the_table_is_dated_and_well_formed():
    table = price_table()
    assert date.fromisoformat(table["as_of"]) <= date.today()
    assert table["currency"] == "USD"
    assert set(table["sources"]) == set(table["providers"]) == {"openai", "anthropic"}
    for models in table["providers"].values():
        for prices in models.values():
            assert set(prices) == {"input", "output"}
            assert all(isinstance(value, (int, float)) and value >= 0 for value in prices.values())


def test_the_table_is_read_once():
    assert price_table() is price_table()
    assert model_prices("openai", "gpt-4o") == {"input": 2.5, "output": 10.0}
