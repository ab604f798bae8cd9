"""What a reply cost, in USD, from the price table in ``prices.json`` (USD per million tokens).

No price is better than a wrong one: an unknown provider or model, or a reply whose usage is
unknown, has no cost (None), never a guess.
"""

import json
from functools import cache
from importlib import resources

from .messages import Usage

PER_TOKENS = 1_000_000


@cache
def price_table() -> dict:
    """The parsed ``prices.json`` (read once per process): ``as_of``, ``sources`` and per-provider prices."""
    return json.loads(resources.files(__package__).joinpath("prices.json").read_text(encoding="utf-8"))


def model_prices(provider: str, model: str) -> dict | None:
    """USD per million ``input`` and ``output`` tokens for a provider's model, or None if unknown."""
    return price_table()["providers"].get(provider, {}).get(model)


def cost_usd(provider: str, model: str, usage: Usage | None) -> float | None:
    """The cost of a reply in USD, or None when the model's price or the reply's usage is unknown."""
    prices = model_prices(provider, model)
    if prices is None or usage is None:
        return None
    cost = (usage.input_tokens * prices["input"] + usage.output_tokens * prices["output"]) / PER_TOKENS
    return round(cost, 10)  # drop float noise (3.15e-06, not 3.1500000000000004e-06); far below a cent
