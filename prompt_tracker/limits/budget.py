"""Daily spend per user: reserved when a reply is queued, settled when it ends, counted per UTC day.

One Redis hash per UTC day in the jobs database (``prompt_tracker:limit:usage:<day>``), with
fields ``<user>|usd``, ``<user>|tokens``, ``<user>|unpriced_tokens`` and ``<user>|replies``. Spend
is counted in USD from each reply's cost, and in tokens for models with no known price (they can't
be counted in dollars, and must not be free). The offline ``echo`` model costs nothing: it holds a
place among the open replies only, and nothing of it is recorded as spent (no reply, no token).

Replies in flight count: ``reserve`` (one Lua script, so parallel sends cannot all pass) checks the
user's open replies against MAX_OPEN_REPLIES and spent + held + this reply's estimate (input
estimate + max_tokens, at the model's price) against the budget, then holds the estimate in the
user's hash of holds (``prompt_tracker:limit:held:<user>``). ``settle`` (once per hold: the first
caller removes it) records what the reply cost: the provider's usage, or an estimate for a reply
stopped, failed or dropped. A hold never settled (its worker vanished) counts as spent once past
its deadline.
"""

import math
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from flask import current_app
from redis.exceptions import RedisError

from ..domain.holds import Hold
from ..domain.keys import held_key, usage_key
from ..domain.messages import Usage
from ..domain.pricing import cost_usd, is_priced
from ..domain.refusals import Refused
from ..extensions import services
from ..providers import UnknownProviderError, get_provider
from ..store.conversations import ConversationStore, TooManyOpenReplies
from . import in_words

RUN_HOLD = " run"  # ends the hold of a test run's call: not one of the user's open replies
KEEP_DAYS = 40  # how long `flask usage` can look back
CHARS_PER_TOKEN = 4  # an estimate's rate, where no tokenizer is at hand


class BudgetExceeded(Refused):
    """The user has spent today's budget; the message says which and when it resets."""

    status = 429


# KEYS: the user's holds, today's usage. ARGV: 1 hold id, 2 now, 3 deadline, 4 open cap (0: none),
# 5 usd, 6 tokens, 7 kind (usd|tokens|free), 8 budget usd (0: none), 9 budget tokens (0: none),
# 10 user, 11 holds' ttl, 12 usage ttl, 13 open replies this one replaces (an edit stops them), 14 " run" for a
# test run's call (not one of the open replies: a run has its own bound, EVAL_CONCURRENCY) or "".
# A hold is "<deadline> <usd> <tokens> <kind>", then " run" for a test run's.
_RESERVE = """
local held = redis.call('HGETALL', KEYS[1])
local now, count, usd, tokens = tonumber(ARGV[2]), 0, 0, 0
for i = 1, #held, 2 do
  local deadline, u, t, kind, run = string.match(held[i + 1], '^(%S+) (%S+) (%S+) (%S+)(.*)$')
  if tonumber(deadline) < now then
    -- never settled (its worker vanished): what it held counts as spent
    redis.call('HDEL', KEYS[1], held[i])
    if kind == 'usd' then redis.call('HINCRBYFLOAT', KEYS[2], ARGV[10] .. '|usd', u)
    elseif kind == 'tokens' then redis.call('HINCRBY', KEYS[2], ARGV[10] .. '|unpriced_tokens', t) end
    redis.call('EXPIRE', KEYS[2], ARGV[12])
  else
    if run == '' then count = count + 1 end
    if kind == 'usd' then usd = usd + tonumber(u) elseif kind == 'tokens' then tokens = tokens + tonumber(t) end
  end
end
local cap = tonumber(ARGV[4])
if cap > 0 and count - tonumber(ARGV[13]) >= cap then return {'open', tostring(count), '0'} end
local budget_usd, budget_tokens = tonumber(ARGV[8]), tonumber(ARGV[9])
if ARGV[7] == 'usd' and budget_usd > 0 then
  local spent = tonumber(redis.call('HGET', KEYS[2], ARGV[10] .. '|usd') or '0')
  if spent + usd + tonumber(ARGV[5]) > budget_usd then return {'usd', tostring(spent), tostring(usd)} end
end
if ARGV[7] == 'tokens' and budget_tokens > 0 then
  local spent = tonumber(redis.call('HGET', KEYS[2], ARGV[10] .. '|unpriced_tokens') or '0')
  if spent + tokens + tonumber(ARGV[6]) > budget_tokens then return {'tokens', tostring(spent), tostring(tokens)} end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3] .. ' ' .. ARGV[5] .. ' ' .. ARGV[6] .. ' ' .. ARGV[7] .. ARGV[14])
redis.call('EXPIRE', KEYS[1], ARGV[11])
return {'ok', tostring(count + 1), '0'}
"""

# KEYS: the user's holds, today's usage. ARGV: 1 hold id, 2 user, 3 replies (0|1), 4 tokens,
# 5 usd ('' for none), 6 unpriced tokens, 7 usage ttl. Only the first settle of a hold records.
_SETTLE = """
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
if ARGV[3] ~= '0' then redis.call('HINCRBY', KEYS[2], ARGV[2] .. '|replies', ARGV[3]) end
if ARGV[4] ~= '0' then redis.call('HINCRBY', KEYS[2], ARGV[2] .. '|tokens', ARGV[4]) end
if ARGV[5] ~= '' then redis.call('HINCRBYFLOAT', KEYS[2], ARGV[2] .. '|usd', ARGV[5]) end
if ARGV[6] ~= '0' then redis.call('HINCRBY', KEYS[2], ARGV[2] .. '|unpriced_tokens', ARGV[6]) end
redis.call('EXPIRE', KEYS[2], ARGV[7])
return 1
"""


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
    """Add one finished reply's tokens and cost to its user's spend of today (a reply queued without a hold)."""
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
    """Raise BudgetExceeded if ``user`` has used today's budget (in USD or in unpriced tokens), holds aside."""
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


def is_free(provider: str) -> bool:
    """Whether replies of ``provider`` cost nothing (offline: nothing is called)."""
    try:
        return get_provider(provider).free
    except UnknownProviderError:
        return False


def reserve(
    user: str | None,
    provider: str,
    model: str,
    input_tokens: int,
    max_tokens: int,
    seconds: int,
    replacing: int = 0,
    open_reply: bool = True,
) -> Hold:
    """Hold a place among ``user``'s open replies and what the reply may cost; raise if either is past its limit.

    The estimate is ``input_tokens`` + ``max_tokens``, in USD at the model's price, else in tokens;
    nothing for a free model. Raises TooManyOpenReplies (MAX_OPEN_REPLIES per user) or BudgetExceeded;
    the hold expires after ``seconds`` (counted as spent if it was never settled). ``replacing``: open
    replies the action stops (an edit's), which leave room for this one. ``open_reply`` False (a test run's
    call): held against the budget only, neither counted among the open replies nor capped by them.
    """
    config = current_app.config
    free = is_free(provider)
    priced = not free and is_priced(provider, model)
    tokens = 0 if free else input_tokens + max_tokens
    usd = (
        (cost_usd(provider, model, Usage(input_tokens=input_tokens, output_tokens=max_tokens)) or 0.0)
        if priced
        else 0.0
    )
    hold = Hold(
        id=secrets.token_hex(12),
        user=user or "",
        provider=provider,
        model=model,
        usd=usd,
        tokens=tokens,
        priced=priced,
        free=free,
        input_tokens=input_tokens,
    )
    kind = "free" if free else ("usd" if priced else "tokens")
    now = time.time()
    try:
        answer, spent, held_now = services.jobs_redis.register_script(_RESERVE)(
            keys=[held_key(hold.user), usage_key(today())],
            args=[
                hold.id,
                now,
                now + seconds,
                config["MAX_OPEN_REPLIES"] if open_reply else 0,
                f"{usd:.10f}",
                tokens,
                kind,
                config["DAILY_BUDGET_USD"] or 0,
                config["DAILY_BUDGET_TOKENS"] or 0,
                hold.user,
                seconds + 86400,
                KEEP_DAYS * 86400,
                replacing,
                "" if open_reply else RUN_HOLD,
            ],
        )
    except RedisError as error:  # jobs Redis down: the reply will fail to queue and say so
        current_app.logger.warning("budget not reserved: %s", error.__class__.__name__)
        return hold
    answer = answer.decode() if isinstance(answer, bytes) else answer
    if answer == "open":
        raise TooManyOpenReplies(ConversationStore.too_many_open_for(config["MAX_OPEN_REPLIES"]))
    if answer == "usd":
        raise BudgetExceeded(usd_sentence(config["DAILY_BUDGET_USD"], float(spent), float(held_now), usd))
    if answer == "tokens":
        raise BudgetExceeded(
            tokens_sentence(config["DAILY_BUDGET_TOKENS"], int(spent), int(held_now), tokens, f"{provider} / {model}")
        )
    return hold


def usd_sentence(budget: float, spent: float, held_now: float, estimate: float) -> str:
    """Why a reply of a priced model is refused: today's budget spent, or too little left for it."""
    if spent >= budget:
        return (
            f"You have used today's budget of ${budget:.2f} (${spent:.2f} spent); "
            f"it resets at midnight UTC, in {until_midnight()}."
        )
    return (
        f"Today's budget of ${budget:.2f} has ${max(0.0, budget - spent - held_now):.4f} left "
        f"(${held_now:.4f} held by replies being written), less than this reply may cost (up to ${estimate:.4f}); "
        f"lower Max tokens, wait for a reply to finish, or try again after midnight UTC, in {until_midnight()}."
    )


def tokens_sentence(budget: int, spent: int, held_now: int, estimate: int, model: str = "") -> str:
    """Why a reply of an unpriced model is refused: today's token budget spent, or too little left for it.

    ``model`` ("provider / model") is named as one with no known price, so the sentence says why this budget.
    """
    which = f"; {model} is one" if model else ""
    if spent >= budget:
        return (
            f"You have used today's budget of {budget:,} tokens on models with no known "
            f"price ({spent:,} used{which}); it resets at midnight UTC, in {until_midnight()}."
        )
    return (
        f"Today's budget of {budget:,} tokens on models with no known price ({model or 'this one'} is one) "
        f"has {max(0, budget - spent - held_now):,} "
        f"left ({held_now:,} held by replies being written), fewer than this reply may use (up to {estimate:,}); "
        f"lower Max tokens, wait for a reply to finish, or try again after midnight UTC, in {until_midnight()}."
    )


def settle(hold: Hold | None, usage: Usage | None, called: bool = True) -> None:
    """Record what the reply of ``hold`` cost and release the hold (only the first settle of a hold counts).

    ``usage``: the provider's, or an estimate (a reply stopped, failed or dropped); None with
    ``called`` False for a reply that never reached the provider (nothing recorded).
    """
    if hold is None:
        return
    if hold.free:  # offline, nothing billed: its place among the open replies is given back, no spend recorded
        usage, called = None, False
    tokens = (usage.input_tokens + usage.output_tokens) if usage else 0
    usd = ""
    if hold.priced and usage is not None:
        usd = f"{cost_usd(hold.provider, hold.model, usage) or 0.0:.10f}"
    unpriced = tokens if not (hold.free or hold.priced) else 0
    try:
        services.jobs_redis.register_script(_SETTLE)(
            keys=[held_key(hold.user), usage_key(today())],
            args=[hold.id, hold.user, 1 if called else 0, tokens, usd, unpriced, KEEP_DAYS * 86400],
        )
    except RedisError as error:  # the reply is written already; losing one count beats failing it
        current_app.logger.warning("spend not settled: %s", error.__class__.__name__)


def estimated_usage(hold: Hold | None, request_chars: int | None, output_chars: int) -> Usage:
    """What a reply with no reported usage cost, about: its request's characters (else the hold's estimate)
    and the text it streamed, at about four characters a token."""
    if request_chars is None:
        input_tokens = hold.input_tokens if hold else 0
    else:
        input_tokens = math.ceil(request_chars / CHARS_PER_TOKEN)
    return Usage(input_tokens=input_tokens, output_tokens=math.ceil(output_chars / CHARS_PER_TOKEN))


def held(user: str) -> list[str]:
    """Ids of ``user``'s holds: the replies queued or being written that are not settled yet."""
    return [raw.decode() for raw in services.jobs_redis.hkeys(held_key(user))]


def open_replies(user: str | None) -> int:
    """How many replies ``user`` has queued or being written (holds not past their deadline)."""
    now = time.time()
    values = services.jobs_redis.hvals(held_key(user or ""))
    return sum(1 for value in values if float(value.split(b" ", 1)[0]) >= now and not value.endswith(RUN_HOLD.encode()))


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
