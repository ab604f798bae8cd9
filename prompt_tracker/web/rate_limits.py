"""Request rates per user (Flask-Limiter, counters in the jobs Redis, DB 0): who is asking, and the 429 answer."""

from flask import current_app, jsonify, request

from ..extensions import limiter
from .errors import wants_json
from .identity import current_user_name


def init_app(app, jobs_redis) -> None:
    """Bind Flask-Limiter: counters in the jobs Redis (DB 0) beside the app's other DB 0 keys."""
    if app.config.get("RATELIMIT_STORAGE_URI", "").startswith("memory://"):
        limiter.init_app(app)
        return
    # Reuse the app's own client (plain or Sentinel, 1 s timeouts) rather than a URL of limits' syntax.
    app.config["RATELIMIT_STORAGE_URI"] = "redis://"
    app.config["RATELIMIT_STORAGE_OPTIONS"] = {"connection_pool": jobs_redis.connection_pool}
    limiter.init_app(app)


def user_key() -> str:
    """Rate-limit key of the person asking: their user name, or their address when anonymous."""
    name = current_user_name()
    return f"user:{name}" if name else f"ip:{request.remote_addr}"


def client_ip() -> str:
    """Rate-limit key of the client's address (after ProxyFix, when behind a trusted proxy)."""
    return f"ip:{request.remote_addr}"


def refuse(sentence: str, render_page=None):
    """A 429 answer: JSON for the page's fetch calls, else the page (``render_page``) with the sentence."""
    if wants_json() or render_page is None:
        response = jsonify(error=sentence)
    else:
        response = render_page(sentence)
    response.status_code = 429
    current_app.logger.info("refused by a limit: %s", sentence)
    return response
