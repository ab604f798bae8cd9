"""``notify(kind, payload)``: the one entry point that turns a change into signed webhook deliveries.

It hangs on the audit log: each committed ``version.created`` / ``label.moved`` audit event
(``audit.event_committed``, sent after the commit) is notified, its payload the event's data. Each URL of WEBHOOK_URLS gets a row in ``webhook_deliveries`` holding the exact body, then an RQ job
(``delivery.deliver``) that posts it. The job is retried by RQ with back-off (``Retry(max=4, interval=
WEBHOOK_RETRY_INTERVALS)``): five tries in all, each recorded on the row. The body carries the event's
id and time, which are also sent as headers; the secret never leaves the process that signs.
"""

import json
import time
import uuid
from datetime import UTC, datetime

from flask import current_app
from redis.exceptions import RedisError
from rq import Retry
from sqlalchemy.orm import Session

from ..audit import event_committed
from ..extensions import db, services
from .models import FAILED, WebhookDelivery

KINDS = ("version.created", "label.moved")
MAX_TRIES = 5  # the first attempt and four retries
DELIVER_JOB = "prompt_tracker.webhooks.delivery.deliver"


class UnknownEvent(ValueError):
    """``notify`` was called with a kind that is not a webhook event."""


def delivery_job_id(delivery_id: int) -> str:
    """The RQ job id of a delivery (RQ refuses ``:`` in ids)."""
    return f"webhook-{delivery_id}"


def event_body(kind: str, payload: dict, event_id: str, timestamp: int) -> str:
    """The JSON body of an event: id, type, time (Unix seconds and ISO 8601, UTC) and the payload as ``data``."""
    created = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return json.dumps(
        {"id": event_id, "type": kind, "timestamp": timestamp, "created_at": created, "data": payload},
        ensure_ascii=False,
        separators=(",", ":"),
    )


def notify(kind: str, payload: dict) -> list[int]:
    """Queue the event ``kind`` (``version.created``, ``label.moved``) for every URL of WEBHOOK_URLS.

    Returns the deliveries' ids (none when no URL is configured). Call it after the change is committed:
    the worker may post at once. The rows are written in a session of their own, so the caller's is
    left alone (it may be just committing: ``event_committed`` is sent from its after-commit hook). A
    queue that is down does not undo the change: its deliveries are recorded as failed, saying so.
    """
    if kind not in KINDS:
        raise UnknownEvent(f"{kind!r} is not a webhook event; the events are {', '.join(KINDS)}.")
    config = current_app.config
    urls = config.get("WEBHOOK_URLS") or []
    if not urls:
        return []
    event_id = "evt_" + uuid.uuid4().hex
    body = event_body(kind, payload, event_id, int(time.time()))
    with Session(db.engine, expire_on_commit=False) as session:
        deliveries = [WebhookDelivery(event_id=event_id, event=kind, url=url, body=body) for url in urls]
        session.add_all(deliveries)
        session.commit()
        ids = [delivery.id for delivery in deliveries]
        retry = Retry(max=MAX_TRIES - 1, interval=list(config["WEBHOOK_RETRY_INTERVALS"]))
        for delivery in deliveries:
            try:
                services.queue.enqueue(
                    DELIVER_JOB,
                    delivery.id,
                    job_id=delivery_job_id(delivery.id),
                    retry=retry,
                    job_timeout=int(config["WEBHOOK_TIMEOUT"]) + 30,
                    result_ttl=600,
                    failure_ttl=24 * 3600,
                )
            except RedisError as error:
                current_app.logger.error("could not queue webhook delivery %s: %s", delivery.id, type(error).__name__)
                delivery.status = FAILED
                delivery.last_error = f"Not queued: the job queue (Redis) was unreachable ({type(error).__name__})."
                session.commit()
    return ids


def event_data(event: dict) -> dict:
    """A webhook's ``data`` from an audit event: the prompt's slug and id, the event's details (``version``,
    ``note``; ``label``, ``from_version``, ``to_version``), who and when, and the audit event's id."""
    return {
        "slug": event["subject"],
        "prompt_id": event["prompt_id"],
        **event["detail"],
        "actor": event["actor"]["name"],
        "at": event["at"],
        "audit_event_id": event["id"],
    }


def on_event_committed(sender, event: dict) -> None:
    """Receiver of ``audit.event_committed``: notify the committed event to the webhooks."""
    notify(event["kind"], event_data(event))


# The one call site: every committed version.created and label.moved, whatever code made the change.
event_committed.connect(on_event_committed)


def recent_deliveries(limit: int = 50) -> list[WebhookDelivery]:
    """The latest deliveries, newest first (the admin page and the audit page's list)."""
    return list(
        db.session.scalars(
            db.select(WebhookDelivery)
            .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
            .limit(limit)
        )
    )
