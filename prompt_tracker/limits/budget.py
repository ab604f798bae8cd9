"""Daily spend per user: recorded when a reply finishes, checked before a send or a retry.

One Redis hash per UTC day in the jobs database (``prompt_tracker:limit:usage:<day>``), with
fields ``<user>|usd``, ``<user>|tokens``, ``<user>|unpriced_tokens`` and ``<user>|replies``. Spend
is counted in USD from each reply's recorded cost, and in tokens for models with no known price
(they can't be counted in dollars, and must not be free).
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from flask import current_app
from redis.exceptions import RedisError

from ..domain.keys import usage_key
from ..domain.refusals import Refused
from ..extensions import services
from . import in_words

KEEP_DAYS = 40  # how long `flask usage` can look back


class BudgetExceeded(Refused):
    """The user has spent today's budget; the message says which and when it resets."""

    status = 429


@dataclass
class Spend:
    """What one user spent on one day."""

    usd: float = 0.0
    tokens: int = 0
    unpriced_tokens: int = 0
    replies: int = 0


def today() -> str:
    """The current UTC day, as budgets count it."""
    return datetime.now(UTC).date().isoformat()


def record(user: str | None, usage, cost_usd: float | None) -> None:
    """Add one finished reply's tokens and cost to its user's spend of today (one round trip)."""
    if not user:
        return
    tokens = (usage.input_tokens + usage.output_tokens) if usage else 0
    key = usage_key(today())
    try:
        with services.jobs_redis.pipeline(transaction=False) as pipe:
            pipe.hincrby(key, f"{user}|replies", 1)
            pipe.hincrby(key, f"{user}|tokens", tokens)
            if cost_usd is None:
                pipe.hincrby(key, f"{user}|unpriced_tokens", tokens)
            else:
                pipe.hincrbyfloat(key, f"{user}|usd", cost_usd)
            pipe.expire(key, KEEP_DAYS * 86400)
            pipe.execute()
    except RedisError as error:  # the reply is written already; losing one count beats failing it
        current_app.logger.warning("spend not recorded: %s", error.__class__.__name__)


def spent(user: str, day: str | None = None) -> Spend:
    """What ``user`` spent on ``day`` (default today)."""
    fields = ("usd", "tokens", "unpriced_tokens", "replies")
    values = services.jobs_redis.hmget(usage_key(day or today()), [f"{user}|{field}" for field in fields])
    usd, tokens, unpriced, replies = (value or 0 for value in values)
    return Spend(float(usd), int(tokens), int(unpriced), int(replies))


def check(user: str | None) -> None:
    """Raise BudgetExceeded if ``user`` has used today's budget (in USD or in unpriced tokens)."""
    config = current_app.config
    budget_usd, budget_tokens = config["DAILY_BUDGET_USD"], config["DAILY_BUDGET_TOKENS"]
    if not user or not (budget_usd or budget_tokens):
        return
    try:
        spend = spent(user)
    except RedisError as error:  # jobs Redis down: the reply will fail to queue and say so
        current_app.logger.warning("budget not checked: %s", error.__class__.__name__)
        return
    if budget_usd and spend.usd >= budget_usd:
        raise BudgetExceeded(
            f"You have used today's budget of ${budget_usd:.2f} (${spend.usd:.2f} spent); "
            f"it resets at midnight UTC, in {until_midnight()}."
        )
    if budget_tokens and spend.unpriced_tokens >= budget_tokens:
        raise BudgetExceeded(
            f"You have used today's budget of {budget_tokens:,} tokens on models with no known "
            f"price ({spend.unpriced_tokens:,} used); it resets at midnight UTC, in {until_midnight()}."
        )


def until_midnight() -> str:
    """Time left until the budgets reset, as a person says it."""
    now = datetime.now(UTC)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
    return in_words((midnight - now).total_seconds())


def usage_by_day(days: int) -> list[tuple[str, str, Spend]]:
    """(day, user, spend) for the last ``days`` days, newest first (one round trip per day)."""
    rows = []
    start = date.fromisoformat(today())
    with services.jobs_redis.pipeline(transaction=False) as pipe:
        day_names = [(start - timedelta(days=offset)).isoformat() for offset in range(days)]
        for day in day_names:
            pipe.hgetall(usage_key(day))
        results = pipe.execute()
    for day, fields in zip(day_names, results, strict=True):
        per_user: dict[str, Spend] = {}
        for raw_field, raw_value in fields.items():
            user, _, name = raw_field.decode().rpartition("|")
            spend = per_user.setdefault(user, Spend())
            setattr(spend, name, float(raw_value) if name == "usd" else int(raw_value))
        rows += [(day, user, per_user[user]) for user in sorted(per_user)]
    return rows
