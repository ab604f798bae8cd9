"""Request rates per user (Flask-Limiter, counters in the jobs Redis, DB 0): who is asking, and the 429 answer.

RATE_LIMIT_SENDS counts what reaches the workers: a request of the send rate (send, retry, edit,
Compare, Replay) is counted when it arrives, atomically (Flask-Limiter's ``hit``: parallel sends of one
user cannot all pass), and what it did not queue is given back when it is answered (``give_back_unsent``):
a send refused for any reason (budget, allow-list, context, stale settings, a full conversation, the
open replies, the rate itself) counts nothing. (Flask-Limiter's ``deduct_when`` tests first and counts
after the view, so parallel sends would all pass its test.)
"""

from flask import current_app, g, jsonify, request, session

from ..extensions import limiter
from ..limits.rate import SENDS, uncount
from .errors import wants_json
from .identity import current_user_name


def init_app(app, jobs_redis) -> None:
    """Bind Flask-Limiter: counters in the jobs Redis (DB 0) beside the app's other DB 0 keys."""
    if not app.config.get("RATELIMIT_STORAGE_URI", "").startswith("memory://"):
        # Reuse the app's own client (plain or Sentinel, 1 s timeouts) rather than a URL of limits' syntax.
        app.config["RATELIMIT_STORAGE_URI"] = "redis://"
        app.config["RATELIMIT_STORAGE_OPTIONS"] = {"connection_pool": jobs_redis.connection_pool}
    limiter.init_app(app)
    # Bound after Flask-Limiter's hook, so it runs before it: the rate headers count what was given back.
    app.after_request(give_back_unsent)


def limit_owner() -> str | None:
    """Whom the limits (send rate, budget, open replies) count against: the signed-in user, or without
    sign-in (AUTH_MODE=none) the browser's session by its store id, so no visitor shares another's limits."""
    if current_app.config["AUTH_MODE"] == "none":
        return f"browser:{session.own_store_id}"
    return current_user_name()


def user_key() -> str:
    """Rate-limit key of the person asking: whom their limits count against, or their address when anonymous."""
    owner = limit_owner() if current_user_name() else None
    return f"user:{owner}" if owner else f"ip:{request.remote_addr}"


def client_ip() -> str:
    """Rate-limit key of the client's address (after ProxyFix, when behind a trusted proxy)."""
    return f"ip:{request.remote_addr}"


def charged(cost: int) -> int:
    """What this request counts against RATE_LIMIT_SENDS (a cost callable's answer), remembered for the answer."""
    g.sends_charged = cost
    return cost


def not_queued(count: int = 1) -> None:
    """Of what this request was charged, ``count`` replies were not queued after all (a Compare reply refused)."""
    g.sends_not_queued = g.get("sends_not_queued", 0) + count


def give_back_unsent(response):
    """After a request of the send rate: give back what it counted and did not queue (all of it when refused)."""
    charged_now = g.get("sends_charged", 0)
    if not charged_now:
        return response
    refused = response.status_code >= 400 or g.get("refusal") is not None
    unsent = charged_now if refused else min(charged_now, g.get("sends_not_queued", 0))
    if unsent:
        try:
            for limit in limiter.current_limits:
                if limit.request_args[-1] == SENDS:
                    uncount(limit.limit, limit.request_args, unsent)
        except Exception as error:  # the counters are down: Flask-Limiter swallows that too
            current_app.logger.warning("send rate not given back: %s", error.__class__.__name__)
    return response


def refuse(sentence: str, render_page=None):
    """A 429 answer: JSON for the page's fetch calls, else the page (``render_page``) with the sentence."""
    if wants_json() or render_page is None:
        response = jsonify(error=sentence)
    else:
        response = render_page(sentence)
    response.status_code = 429
    current_app.logger.info("refused by a limit: %s", sentence)
    return response
