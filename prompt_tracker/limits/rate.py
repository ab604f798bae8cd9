"""The send rate (RATE_LIMIT_SENDS) outside Flask-Limiter's decorator: what a refused send counted, given
back, and a replay's later turns, which the worker counts as it sends them.

The views count sends with Flask-Limiter (``web.rate_limits``); a replay's first turn is counted there,
and each later turn here, in the worker, on the same counter (same storage, key and scope), when it
is about to be sent. A turn the window has no room for waits for the window to allow it (the replay
is paced: ``replies.replay``), never refused.
"""

import time

from flask import current_app
from limits import RateLimitItem, parse
from limits.strategies import FixedWindowRateLimiter
from redis.exceptions import RedisError

from ..extensions import LIMIT_PREFIX, limiter

SENDS = "sends"  # the scope the send rate's counter is shared under (send, retry, edit, Compare, Replay)


def send_rate(text: str | None = None) -> RateLimitItem:
    """``text`` (a rate a replay started with), else RATE_LIMIT_SENDS, parsed."""
    return parse(text or current_app.config["RATE_LIMIT_SENDS"])


def identifiers_of(owner: str) -> tuple[str, str, str]:
    """The counter of ``owner``'s sends, as Flask-Limiter names it (prefix, ``web.rate_limits.user_key``, scope)."""
    return (LIMIT_PREFIX, f"user:{owner}", SENDS)


def uncount(rate: RateLimitItem, identifiers, count: int) -> None:
    """Take ``count`` off the current window of a fixed-window counter: what a send counted and did not send.

    Never below zero, and not once the window has ended (the next one owes nothing). Raises RedisError.
    """
    strategy = limiter.limiter
    if not isinstance(strategy, FixedWindowRateLimiter):  # the configured strategy; others cannot give back
        return
    key = rate.key_for(*identifiers)
    counted = strategy.storage.get(key)
    if counted > 0:
        strategy.storage.incr(key, rate.get_expiry(), amount=-min(count, counted))


def take(owner: str | None, rate_text: str | None = None) -> float | None:
    """Count one send of ``owner`` now against ``rate_text`` (default RATE_LIMIT_SENDS); None when it fits the
    window, else when the window allows one (a UNIX time; nothing is counted then)."""
    if not owner:
        return None  # a reply queued before replies knew whose limits they count against
    rate, identifiers = send_rate(rate_text), identifiers_of(owner)
    strategy = limiter.limiter
    try:
        if strategy.hit(rate, *identifiers):
            return None
        uncount(rate, identifiers, 1)  # a fixed window counts a refused hit too: not this one
        reset, _remaining = strategy.get_window_stats(rate, *identifiers)
    except RedisError as error:  # the counters are down: sent uncounted, as the views do (RATELIMIT_SWALLOW_ERRORS)
        current_app.logger.warning("send rate not counted: %s", error.__class__.__name__)
        return None
    return max(reset, time.time() + 0.1)


def give_back(owner: str | None, rate_text: str | None = None) -> None:
    """Take back the send ``take`` counted for ``owner`` when its turn was refused after all (by the gate)."""
    if not owner:
        return
    try:
        uncount(send_rate(rate_text), identifiers_of(owner), 1)
    except RedisError as error:
        current_app.logger.warning("send rate not given back: %s", error.__class__.__name__)
