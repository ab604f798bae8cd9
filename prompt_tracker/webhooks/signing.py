"""The webhook signature: HMAC-SHA256 of the raw body under WEBHOOK_SECRET, as ``sha256=<hex>`` (GitHub's scheme)."""

import hashlib
import hmac

SIGNATURE_HEADER = "X-Prompt-Tracker-Signature"


def signature(body: bytes, secret: str) -> str:
    """The value of the signature header for ``body``: ``sha256=`` and the HMAC's hex digest."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, secret: str, header: str | None) -> bool:
    """Whether ``header`` is the signature of ``body`` under ``secret`` (compared in constant time)."""
    return bool(header) and hmac.compare_digest(signature(body, secret), header)
