"""Audit events: one row per change to durable data, never updated nor deleted."""

from datetime import datetime

from sqlalchemy import DDL, JSON, Index, String, event
from sqlalchemy.orm import Mapped, mapped_column

from ..domain.times import utcnow
from ..extensions import db

MAX_KIND_CHARS = 40
MAX_ACTOR_CHARS = 254
MAX_SUBJECT_CHARS = 254


class AuditEvent(db.Model):
    """Who (actor) did what (kind, detail) to which prompt or user (subject), when (at).

    No foreign keys: the log outlives what it names (an ON DELETE would have to edit it), so the actor's
    name and the subject are kept as they were at the time, beside the ids.
    """

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_prompt_id_id", "prompt_id", "id"),
        Index("ix_audit_events_kind_id", "kind", "id"),
        Index("ix_audit_events_actor_name_id", "actor_name", "id"),
        Index("ix_audit_events_at", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(default=None)
    actor_name: Mapped[str] = mapped_column(String(MAX_ACTOR_CHARS))
    kind: Mapped[str] = mapped_column(String(MAX_KIND_CHARS))
    prompt_id: Mapped[int | None] = mapped_column(default=None)
    subject: Mapped[str] = mapped_column(String(MAX_SUBJECT_CHARS), default="")
    detail: Mapped[dict] = mapped_column(JSON, default=dict)

    def payload(self) -> dict:
        """The event as plain JSON-able data (the CLI's --json, webhooks)."""
        return {
            "id": self.id,
            "at": self.at.isoformat() + "Z",
            "actor": {"id": self.actor_id, "name": self.actor_name},
            "kind": self.kind,
            "prompt_id": self.prompt_id,
            "subject": self.subject,
            "detail": dict(self.detail or {}),
        }

    def __repr__(self) -> str:
        return f"<AuditEvent {self.id} {self.kind}>"


# Append-only in the database itself, not only in the code: an UPDATE or DELETE of an event fails.
# (Migration 0005 creates the same triggers; these serve ``create_all`` in the tests.)
APPEND_ONLY_SQLITE = [
    f"CREATE TRIGGER audit_events_no_{verb.lower()} BEFORE {verb} ON audit_events "
    "BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END"
    for verb in ("UPDATE", "DELETE")
]
APPEND_ONLY_POSTGRESQL = [
    "CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'audit events are append-only'; END $$",
    "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
    "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()",
]
for statement in APPEND_ONLY_SQLITE:
    event.listen(AuditEvent.__table__, "after_create", DDL(statement).execute_if(dialect="sqlite"))
for statement in APPEND_ONLY_POSTGRESQL:
    event.listen(AuditEvent.__table__, "after_create", DDL(statement).execute_if(dialect="postgresql"))
event.listen(
    AuditEvent.__table__,
    "after_drop",
    DDL("DROP FUNCTION IF EXISTS audit_events_append_only()").execute_if(dialect="postgresql"),
)
