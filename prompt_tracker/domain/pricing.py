"""What a reply cost, in USD, and a model's context window, from the `genai-prices` package's data.

The data is the snapshot bundled with the pinned package (never updated over the network at run
time). Prices are looked up where the request went: a provider's official endpoint by the
provider's id, a custom base URL by that URL (OpenRouter, Groq... are known; a local server is not).
A provider whose model ids are its own (Anthropic's Claude) keeps its list prices behind a base URL
the data does not know (a proxy, a gateway), so a Claude model is never "a model with no known price".
No price is better than a wrong one: an unknown endpoint or model, or a reply whose usage is
unknown, has no cost (None), never a guess.
"""

from functools import cache

from ..providers import UnknownProviderError, get_provider
from ..providers.context_windows import configured_window
from .messages import Usage

# Models the UI suggests that have no price on purpose (tests check every suggestion is priced or here).
UNPRICED = {("echo", "echo-1"): "offline and free: nothing is called"}


def _model_info(provider: str, model: str):
    """genai-prices' (provider, model) for where ``provider`` sends requests now, or None if unknown."""
    try:
        chosen = get_provider(provider)
    except UnknownProviderError:
        return None
    source = chosen.price_source()
    if source is None:
        return None
    found = _lookup(model, *source)
    if found is None and source[0] is None and chosen.own_price_list:
        found = _lookup(model, chosen.own_price_list, None)  # its own model id behind a proxy or gateway
    return found


@cache
def _lookup(model: str, provider_id: str | None, api_url: str | None):
    # Imported here: only the worker (and a page showing a context window) pays for the data.
    from genai_prices.data_snapshot import get_snapshot

    try:
        return get_snapshot().find_provider_model(model, None, provider_id, api_url)
    except LookupError:
        return None


def cost_usd(provider: str, model: str, usage: Usage | None) -> float | None:
    """The cost of a reply in USD (cached input tokens at their own price), or None when unknown."""
    found = _model_info(provider, model) if usage is not None else None
    if found is None:
        return None
    import genai_prices

    found_provider, found_model = found
    priced = found_model.calc_price(
        genai_prices.Usage(
            input_tokens=usage.input_tokens,
            cache_read_tokens=usage.cached_tokens,
            output_tokens=usage.output_tokens,
        ),
        found_provider,
    )
    return round(float(priced.total_price), 10)  # Decimal to the record's float, without float noise


def context_window(provider: str, model: str) -> int | None:
    """The model's context window in tokens (input + output), or None if nothing says it.

    ``MODEL_CONTEXT_WINDOWS`` first (the operator knows best), then the price data, then what the
    provider's server reports (a local server's model list, heard in the background: never waited for).
    """
    configured = configured_window(model)
    if configured:
        return configured
    found = _model_info(provider, model)
    if found and found[1].context_window:
        return found[1].context_window
    try:
        return get_provider(provider).reported_window(model)
    except UnknownProviderError:
        return None


def is_priced(provider: str, model: str) -> bool:
    """Whether replies of ``model`` from ``provider`` (at its current endpoint) get a cost."""
    found = _model_info(provider, model)
    return found is not None and found[1].prices not in (None, [])
