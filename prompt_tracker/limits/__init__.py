"""Limits that protect the operator: the daily budget, the model allow-list and ceilings, and how a limit is said.

Request rates per user are Flask-Limiter's, bound in ``web.rate_limits`` (they key on who is asking).
"""

import time

from flask_limiter import RequestLimit
from limits import RateLimitItem

from ..domain.refusals import Refused


class TooManySends(Refused):
    """Past the per-user rate of replies (send, retry, edit, Compare, Replay): Flask-Limiter's breach, refused."""

    status = 429


def in_words(seconds: float) -> str:
    """A wait as a person says it: "40 seconds", "3 minutes"."""
    seconds = max(1, round(seconds))
    if seconds < 90:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"{minutes} minutes"
    return f"{round(minutes / 60)} hours"


def rate_in_words(rate: RateLimitItem) -> str:
    """A rate as a person says it: "5 per 15 minutes", "20 per minute" (``str(rate)`` says "5 per 15 minute")."""
    unit = rate.GRANULARITY.name
    return f"{rate.amount} per {unit if rate.multiples == 1 else f'{rate.multiples} {unit}s'}"


def limit_sentence(what: str, limit: RequestLimit) -> str:
    """What limit was reached and when it resets, in one sentence."""
    return (
        f"Too many {what}: the limit is {rate_in_words(limit.limit)}. "
        f"Try again in {in_words(limit.reset_at - time.time())}."
    )
