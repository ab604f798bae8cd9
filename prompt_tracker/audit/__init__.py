"""The audit log: who changed what durable data, and when (append-only events in the database)."""

from .events import (
    EVENT_KINDS,
    WEBHOOK_KINDS,
    cli_actor,
    event_committed,
    list_events,
    record_event,
)
from .models import AuditEvent

__all__ = ["EVENT_KINDS", "WEBHOOK_KINDS", "AuditEvent", "cli_actor", "event_committed", "list_events", "record_event"]
