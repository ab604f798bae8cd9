"""Webhook deliveries: one row per event and URL, updated at each attempt (what the admin page shows)."""

from datetime import datetime

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..domain.times import utcnow
from ..extensions import db

MAX_URL_CHARS = 2_000
MAX_ERROR_CHARS = 500


QUEUED, RETRYING, DELIVERED, FAILED = "queued", "retrying", "delivered", "failed"


class WebhookDelivery(db.Model):
    """An event sent (or being sent) to one webhook URL: the exact body, and how its attempts went."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_created_at", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(40))
    event: Mapped[str] = mapped_column(String(40))
    url: Mapped[str] = mapped_column(String(MAX_URL_CHARS))
    # The body as sent, byte for byte at every attempt: the signature is over these bytes.
    body: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(default=0)
    status: Mapped[str] = mapped_column(String(20), default=QUEUED)
    last_error: Mapped[str] = mapped_column(String(MAX_ERROR_CHARS), default="")
    last_status_code: Mapped[int | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)

    def __repr__(self) -> str:
        return f"<WebhookDelivery {self.id} {self.event} {self.status}>"
