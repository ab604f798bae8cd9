"""Which providers and models this deployment allows, and the ceiling on max_tokens."""

from fnmatch import fnmatchcase

from flask import current_app

from ..domain.refusals import Refused


class ModelNotAllowed(Refused, ValueError):
    """The chosen provider or model is outside the deployment's allow-list (the message says which)."""

    status = 422


def allowed_patterns() -> list[str]:
    """``provider:model`` patterns (``*`` wildcards) from ALLOWED_MODELS; empty means every model."""
    return current_app.config["ALLOWED_MODELS"]


def model_allowed(provider: str, model: str) -> bool:
    """True if ``provider``/``model`` matches the allow-list (or there is none)."""
    patterns = allowed_patterns()
    return not patterns or any(fnmatchcase(f"{provider}:{model}", pattern) for pattern in patterns)


def provider_allowed(provider: str) -> bool:
    """True if some model of ``provider`` is allowed."""
    patterns = allowed_patterns()
    return not patterns or any(pattern.split(":", 1)[0] in (provider, "*") for pattern in patterns)


def check_model(provider: str, model: str) -> None:
    """Refuse a provider/model outside the allow-list with a sentence that names what is allowed."""
    if not model_allowed(provider, model):
        raise ModelNotAllowed(f"{provider} / {model} is not allowed here; allowed: {', '.join(allowed_patterns())}.")


def max_tokens_ceiling(default: int) -> int:
    """The largest max_tokens a reply may ask for (MAX_TOKENS_CEILING, else ``default``)."""
    return min(current_app.config.get("MAX_TOKENS_CEILING") or default, default)
