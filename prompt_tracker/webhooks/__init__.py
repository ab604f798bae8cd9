"""Signed webhooks: ``notify(kind, payload)`` records and queues a delivery per WEBHOOK_URLS; the RQ workers post
them signed (HMAC-SHA256 of the body under WEBHOOK_SECRET) and retry with back-off."""

from .events import KINDS, MAX_TRIES, notify, recent_deliveries

__all__ = ["KINDS", "MAX_TRIES", "notify", "recent_deliveries"]
