"""Recording audit events (in the caller's transaction) and reading them back.

``record_event`` adds the event to the database session: the caller's commit writes it together with
the change it records, so there is never a change without its event nor an event without its change.
Nothing here updates or deletes an event; the tables' triggers refuse it anyway.
"""

import getpass
from datetime import datetime

from blinker import Namespace
from flask import current_app
from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..extensions import db
from .models import MAX_ACTOR_CHARS, MAX_SUBJECT_CHARS, AuditEvent

# Every kind the app records, in the order the /audit filter lists them.
EVENT_KINDS = (
    "prompt.created",
    "prompt.renamed",
    "prompt.edited",
    "prompt.archived",
    "prompt.restored",
    "prompt.imported",
    "version.created",
    "label.moved",
    "user.created",
    "user.disabled",
    "user.enabled",
    "user.admin_granted",
    "user.admin_revoked",
    "user.password_changed",
    "token.created",
    "token.revoked",
    "case.created",
    "case.edited",
    "case.deleted",
    "cases.imported",
)

# The kinds webhooks deliver (issue 20: ``version.created`` and ``label.moved``).
WEBHOOK_KINDS = frozenset({"version.created", "label.moved"})

PENDING_KEY = "audit_events_to_announce"  # in Session.info: events of the open transaction, announced at commit

signals = Namespace()
# Sent once per committed event of WEBHOOK_KINDS, with ``event=`` (AuditEvent.payload()), after the commit
# that wrote it, so a job enqueued by a receiver always finds the row. THE call site for webhooks: the
# webhooks package connects its delivery here (it lives in a layer above, so it is a signal, not a call).
event_committed = signals.signal("audit-event-committed")


def actor_fields(actor) -> tuple[int | None, str]:
    """(id, name) of whoever acts: a user (anything with ``id`` and ``email``) or a plain name ("local", "cli:…")."""
    if actor is None:
        return None, "system"
    if isinstance(actor, str):
        return None, actor[:MAX_ACTOR_CHARS]
    return actor.id, actor.email[:MAX_ACTOR_CHARS]


def cli_actor() -> str:
    """The actor of a ``flask`` command: ``cli:`` and the operating-system user who ran it."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name in a bare container
        return "cli"


def record_event(kind: str, actor, prompt=None, *, subject: str | None = None, **detail) -> AuditEvent:
    """Add an audit event to the current transaction (the caller commits it with the change it records).

    ``prompt`` (a Prompt, possibly just added) gives the event its prompt id and, by default, its subject
    (the slug at the time). The event is flushed at once, so its id is known and a failure shows here.
    """
    if kind not in EVENT_KINDS:
        raise ValueError(f"unknown audit event kind {kind!r}")
    if prompt is not None and prompt.id is None:
        db.session.flush()  # a prompt created in this transaction: its id first
    actor_id, actor_name = actor_fields(actor)
    recorded = AuditEvent(
        actor_id=actor_id,
        actor_name=actor_name,
        kind=kind,
        prompt_id=prompt.id if prompt is not None else None,
        subject=(subject if subject is not None else (prompt.slug if prompt is not None else ""))[:MAX_SUBJECT_CHARS],
        detail=detail,
    )
    db.session.add(recorded)
    db.session.flush()
    if kind in WEBHOOK_KINDS:
        # The payload now: after the commit the object is expired and may not query any more.
        db.session.info.setdefault(PENDING_KEY, []).append(recorded.payload())
    return recorded


@sa_event.listens_for(Session, "after_commit")
def _announce_committed(session) -> None:
    for payload in session.info.pop(PENDING_KEY, []):
        announce_committed(payload)


@sa_event.listens_for(Session, "after_rollback")
def _forget_rolled_back(session) -> None:
    session.info.pop(PENDING_KEY, None)


def announce_committed(payload: dict) -> None:
    """Hand a committed ``version.created`` / ``label.moved`` event to the webhooks (``event_committed``)."""
    event_committed.send(current_app._get_current_object(), event=payload)


def events_query(
    *,
    prompt_id: int | None = None,
    actor_name: str | None = None,
    kind: str | None = None,
    since: datetime | None = None,
):
    """A select of events, newest first, filtered by prompt, actor name, kind and time."""
    statement = select(AuditEvent)
    if prompt_id is not None:
        statement = statement.where(AuditEvent.prompt_id == prompt_id)
    if actor_name:
        statement = statement.where(AuditEvent.actor_name == actor_name.strip().lower())
    if kind:
        statement = statement.where(AuditEvent.kind == kind)
    if since is not None:
        statement = statement.where(AuditEvent.at >= since)
    return statement.order_by(AuditEvent.id.desc())


def list_events(page: int = 1, per_page: int = 100, **filters):
    """One page of events, newest first (Flask-SQLAlchemy pagination); ``filters`` as ``events_query``."""
    return db.paginate(events_query(**filters), page=page, per_page=per_page, error_out=False, max_per_page=500)
