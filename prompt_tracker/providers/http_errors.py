"""What both HTTP providers share: the timeout setting and user-facing, key-free error sentences."""

import os
from urllib.parse import urlsplit, urlunsplit

from .base import ProviderError

DEFAULT_TIMEOUT = 60.0


def provider_timeout() -> float:
    """Seconds to wait for the server (PROVIDER_TIMEOUT, default 60); ProviderError if it is not a positive number."""
    raw = os.environ.get("PROVIDER_TIMEOUT", "").strip()
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(raw)
    except ValueError:
        seconds = 0.0
    if not seconds > 0 or seconds == float("inf"):
        raise ProviderError(f"PROVIDER_TIMEOUT must be a positive number of seconds, not {raw[:20]!r}.")
    return seconds


def display_url(url: str) -> str:
    """The URL without user info, query or fragment: safe to show, whatever was put in it."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def redact(text: str, secret: str) -> str:
    """``text`` with every occurrence of ``secret`` blanked out."""
    return text.replace(secret, "[redacted]") if secret and len(secret) >= 4 else text


def status_text(label: str, key_variable: str, status: int, detail: str | None, url_variable: str | None = None) -> str:
    """The user-facing sentence for an HTTP error status from a provider."""
    prefix = f"{label} answered {status}"
    if status == 401:
        return f"{prefix}: check {key_variable}"
    if status == 403:
        return f"{prefix}: this key may not use this model; check {key_variable} and the model name"
    if status == 404:
        return f"{prefix}: check the model name" + (f" and {url_variable}" if url_variable else "")
    if status == 429:
        return f"{prefix}: rate limited, try again shortly"
    if status == 529:
        return f"{prefix}: the server is overloaded, try again shortly"
    if status >= 500:
        return f"{prefix}: the server had an error"
    # Other 4xx (400, 413, 422...): the server's own words are what helps, e.g. an unsupported parameter.
    return f"{prefix}: {detail}" if detail else f"{prefix}: the request was rejected"


# Words of a 400 that say the model refused the tools, or the structured output, it was sent.
_ABOUT_TOOLS = ("tool", "function")
_ABOUT_SCHEMA = ("response_format", "json_schema", "output_format", "output_config", "schema", "json")


def feature_refused(request, status: int, detail: str | None) -> str | None:
    """The sentence for a 400 refusing the request's tools or schema ("gpt-x does not support tools: …"), else None."""
    if status != 400 or not detail:
        return None
    lowered = detail.lower()
    # "Invalid schema for function 'x'…" is about what was sent, not about the model's support.
    invalid = "invalid" in lowered
    if request.tools and any(word in lowered for word in _ABOUT_TOOLS):
        return f"{request.model} {'refused the tools' if invalid else 'does not support tools'}: {detail}"
    if request.response_format != "text" and any(word in lowered for word in _ABOUT_SCHEMA):
        what = f"structured output ({request.response_format})"
        return f"{request.model} {'refused the ' + what if invalid else 'does not support ' + what}: {detail}"
    return None


def short_detail(message: object, secret: str, limit: int = 200) -> str | None:
    """A server's error message cut to one short line, with the key blanked out; None if there is none."""
    if not isinstance(message, str) or not message.strip():
        return None
    line = " ".join(redact(message, secret).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
