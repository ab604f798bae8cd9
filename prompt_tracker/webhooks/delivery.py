"""The webhook job: post a delivery's body, signed, to its URL; record the attempt; raise to be retried.

It runs on the RQ workers (``flask worker``), in an app context of its own per job. A failure (no
answer within WEBHOOK_TIMEOUT, a refused connection, any status outside 2xx, a redirect too) raises
``DeliveryFailed``, and RQ schedules the next try after the next interval of WEBHOOK_RETRY_INTERVALS.
"""

import json
import urllib.error
import urllib.request

from flask import current_app

from ..extensions import db
from .events import MAX_TRIES
from .models import DELIVERED, FAILED, MAX_ERROR_CHARS, RETRYING, WebhookDelivery, utcnow
from .signing import SIGNATURE_HEADER, signature

USER_AGENT = "Prompt-Tracker-Webhooks/1"


class DeliveryFailed(Exception):
    """An attempt did not reach a 2xx answer; RQ retries the job (or, after the last try, marks it failed)."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer that was not a 2xx: not followed (a POST turned into a GET would lose the body)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def headers_for(delivery: WebhookDelivery, body: bytes, secret: str) -> dict[str, str]:
    """The request's headers: JSON, the event's kind, id and time, the delivery's id and the signature."""
    timestamp = str(json.loads(delivery.body)["timestamp"])
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Prompt-Tracker-Event": delivery.event,
        "X-Prompt-Tracker-Event-Id": delivery.event_id,
        "X-Prompt-Tracker-Timestamp": timestamp,
        "X-Prompt-Tracker-Delivery": str(delivery.id),
        SIGNATURE_HEADER: signature(body, secret),
    }


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST ``body`` to ``url``; the answer's status (an HTTP error's too); OSError when nothing answered."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _opener.open(request, timeout=timeout) as response:
            response.read(65_536)
            return response.status
    except urllib.error.HTTPError as error:
        error.close()
        return error.code


def deliver(delivery_id: int) -> str:
    """Make one attempt at delivery ``delivery_id``; "delivered", "skipped" (gone or done), or DeliveryFailed."""
    with current_app._get_current_object().app_context():
        config = current_app.config
        delivery = db.session.get(WebhookDelivery, delivery_id)
        if delivery is None or delivery.status == DELIVERED:
            return "skipped"
        body = delivery.body.encode()
        delivery.attempts += 1
        delivery.last_attempt_at = utcnow()
        try:
            status = post(
                delivery.url, body, headers_for(delivery, body, config["WEBHOOK_SECRET"]), config["WEBHOOK_TIMEOUT"]
            )
            problem = None if 200 <= status < 300 else f"The endpoint answered {status}."
        except (OSError, ValueError) as error:  # refused, timed out, unresolvable; ValueError: a malformed URL
            status = None
            problem = f"No answer: {getattr(error, 'reason', None) or error}."
        delivery.last_status_code = status
        if problem is None:
            delivery.status, delivery.delivered_at, delivery.last_error = DELIVERED, utcnow(), ""
            db.session.commit()
            return DELIVERED
        last = delivery.attempts >= MAX_TRIES
        delivery.status = FAILED if last else RETRYING
        delivery.last_error = problem[:MAX_ERROR_CHARS]
        db.session.commit()
        current_app.logger.warning(
            "webhook delivery %s attempt %s failed%s: %s",
            delivery.id,
            delivery.attempts,
            " (last)" if last else "",
            problem,
        )
        raise DeliveryFailed(problem)
