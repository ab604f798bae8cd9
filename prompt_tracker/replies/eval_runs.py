"""Test runs on the workers: one version of a prompt over its cases, ``repeat`` times each (DESIGN, "Test runs").

- **Start** (``start_run``): one ``EvalResult`` row per case and repetition (queued), their ids in the run's
  backlog (a Redis list), then ``dispatch`` hands at most EVAL_CONCURRENCY of them to the workers. Each
  job that ends frees its slot and dispatches the next, so a run never has more in flight, and its jobs
  go to a queue of their own (RQ_EVAL_QUEUE) that the workers take *after* the replies' queue: a
  playground reply queued behind 600 results is the next job a worker takes.
- **The job** (``run_result``): claims its result once (a compare-and-set in SQL: ``queued → running``
  for its attempt), renders the version's system prompt with the case's variables in the sandbox, and
  makes one provider call through the gate (``gate.admit_run_call``: the checks of every reply, the
  cost reserved before and settled after); tool calls are answered with the version's mocks, one more
  call a round, at most EVAL_MAX_TOOL_ROUNDS rounds. The output's HTML is rendered once; the checks
  run (a judge is one more call through the gate, its cost added); the result is written with one
  compare-and-set, and ``eval.result`` is published to the run's room.
- **Limits**: each call counts against RATE_LIMIT_EVAL_CALLS (per user) and the daily budget. A run
  that reaches one is *paused* with the limit's sentence; its queued results stay queued until
  ``resume_run``. ``stop_run`` stops the queued ones (those running finish); ``retry_failed`` queues
  the failed and errored ones again with a new attempt. A run is finished when nothing is queued or running.

A result's error is a sentence (the provider refused, timed out, the template could not be rendered),
never a crash of the worker.
"""

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec
from flask import current_app
from limits import parse
from redis.exceptions import RedisError
from rq import Queue
from rq.serializers import JSONSerializer
from rq.timeouts import JobTimeoutException
from sqlalchemy import exists, select, update

from ..domain.checks import JUDGE_SCHEMA, CheckOutcome, Observed, judge_messages, judge_outcome, passed, run_checks
from ..domain.keys import eval_backlog_key, eval_inflight_key, eval_job_id, eval_start_key
from ..domain.messages import Usage
from ..domain.pricing import cost_usd
from ..domain.refusals import Refused
from ..domain.settings import PlaygroundSettings
from ..domain.times import utcnow
from ..evals.models import MAX_TAG_CHARS, EvalResult, EvalRun, TestCase
from ..extensions import LIMIT_PREFIX, db, limiter, services
from ..limits import in_words, rate_in_words
from ..limits.budget import CHARS_PER_TOKEN, BudgetExceeded, settle
from ..limits.rate import uncount
from ..prompts.labels import resolve_version
from ..prompts.models import Prompt, PromptVersion
from ..prompts.settings import settings_from_version
from ..prompts.variables import TemplateProblem, render
from ..providers import ChatRequest, ProviderError, ToolCall, get_provider
from .gate import admit_run_call, effective_settings
from .live import publish
from .reply import estimate, reply_html
from .tool_results import mock_result

RUN_JOB = "prompt_tracker.replies.eval_runs.run_result"
MAX_REPEAT = 10
EVAL_CALLS = "eval_calls"  # the scope of the test runs' call rate (RATE_LIMIT_EVAL_CALLS), per user
OPEN_RESULTS = ("queued", "running")
INTERNAL_ERROR = "The case failed with an internal error; see the worker log."
WORKER_LOST = "The worker stopped before finishing this case; press Retry failed to run it again."
CASE_GONE = "The case was deleted before it ran."

# KEYS: the run's backlog, its in-flight set. ARGV: 1 now, 2 a slot's deadline, 3 EVAL_CONCURRENCY, 4 keys' ttl.
# Slots past their deadline (a job lost with its worker) are free again; then up to the limit, the oldest
# waiting results are moved from the backlog to the in-flight set and returned (one script: never more).
_TAKE_SLOTS = """
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
local free = tonumber(ARGV[3]) - redis.call('ZCARD', KEYS[2])
local taken = {}
while free > 0 do
  local member = redis.call('LPOP', KEYS[1])
  if not member then break end
  if redis.call('ZADD', KEYS[2], ARGV[2], member) == 1 then
    table.insert(taken, member)
    free = free - 1
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return taken
"""


class RunRefused(Refused):
    """A run cannot be started or changed as asked; the sentence says why."""

    status = 422


class RunConflict(Refused):
    """The run is not in a state that allows this (resume a run that is not paused, say)."""

    status = 409


class Paused(Exception):
    """A limit was reached before a call: the result goes back to the queue and the run pauses with ``sentence``."""

    def __init__(self, sentence: str):
        super().__init__(sentence)
        self.sentence = sentence


class CallFailed(Exception):
    """A call of the case could not be made or failed; ``sentence`` becomes the result's error."""

    def __init__(self, sentence: str):
        super().__init__(sentence)
        self.sentence = sentence


# --- starting a run ----------------------------------------------------------------------------------


def check_repeat(repeat) -> int:
    """The number of repetitions asked for, or RunRefused when it is not a whole number from 1 to 10."""
    try:
        value = int(str(repeat).strip())
    except (TypeError, ValueError):
        value = 0
    if not 1 <= value <= MAX_REPEAT:
        raise RunRefused(f"Repeat must be a whole number from 1 to {MAX_REPEAT}.")
    return value


def is_row_id(value) -> bool:
    """Whether ``value`` (a form's text, a number) can be a row's id: digits that fit a database integer."""
    text = str(value).strip()
    return text.isdigit() and int(text) < 2**31


def cases_of(prompt: Prompt, tag: str | None) -> list[TestCase]:
    """The prompt's cases (those tagged ``tag`` when given), by name."""
    cases = db.session.scalars(select(TestCase).where(TestCase.prompt_id == prompt.id).order_by(TestCase.name)).all()
    return [case for case in cases if not tag or tag in (case.tags or [])]


def start_run(
    prompt: Prompt,
    version=None,
    label: str | None = None,
    repeat=1,
    tag: str | None = None,
    baseline_id=None,
    owner: str = "",
    created_by: str = "",
    client_token: str | None = None,
) -> EvalRun:
    """Create a run of one version (by number or label; neither: the latest) over the prompt's cases and queue it.

    One queued result per case and repetition; at most EVAL_CONCURRENCY of them are handed to the
    workers at once. Raises RunRefused (no cases, a bad repeat or baseline), VersionNotFound,
    AmbiguousVersion, and the gate's refusals of the version's model (unknown provider, not allowed).

    ``client_token`` (the Start form's, one per page) makes a submission start one run: a second (a double
    click, a resent form) returns the run the first started, since every run costs its calls.
    """
    if client_token:
        key = eval_start_key(owner, client_token[:64])
        if not services.jobs_redis.set(key, "", nx=True, ex=START_TOKEN_SECONDS):
            return first_run_of(prompt, key)
        try:
            run = start_run(prompt, version, label, repeat, tag, baseline_id, owner, created_by)
        except BaseException:
            services.jobs_redis.delete(key)  # refused: the corrected form may be sent again
            raise
        services.jobs_redis.set(key, run.id, ex=START_TOKEN_SECONDS)
        return run
    repeat = check_repeat(repeat)
    tag = (tag or "").strip() or None
    if tag and len(tag) > MAX_TAG_CHARS:
        raise RunRefused(f"Tags are at most {MAX_TAG_CHARS} characters; this one has {len(tag):,}.")
    if version not in (None, "") and not is_row_id(version):
        raise RunRefused(f"Prompt {prompt.slug!r} has no version {str(version)[:20]!r}.")
    chosen = resolve_version(prompt, (label or "").strip() or None, version)
    effective_settings(settings_from_version(chosen))  # a model the gate refuses is said now, not 600 times
    baseline = None
    if baseline_id not in (None, ""):
        baseline = db.session.get(EvalRun, int(baseline_id)) if is_row_id(baseline_id) else None
        if baseline is None or baseline.prompt_id != prompt.id:
            raise RunRefused(f"Prompt {prompt.slug!r} has no run {str(baseline_id)[:20]!r} to compare with.")
    cases = cases_of(prompt, tag)
    if not cases:
        which = f" tagged {tag!r}" if tag else ""
        raise RunRefused(f"Prompt {prompt.slug!r} has no test cases{which}; add some on its Tests page first.")
    most = current_app.config["EVAL_MAX_RESULTS"]
    if len(cases) * repeat > most:
        raise RunRefused(
            f"A run holds at most {most:,} results; this one would hold {len(cases) * repeat:,} "
            f"({len(cases):,} cases × {repeat}). Run the cases of one tag, or fewer repetitions."
        )
    run = EvalRun(
        prompt_id=prompt.id,
        version_id=chosen.id,
        version_number=chosen.number,
        label=(label or "").strip().lower() or None,
        tag=tag,
        repeat=repeat,
        baseline_id=baseline.id if baseline else None,
        status="queued",
        status_reason="",
        owner=owner,
        created_by=created_by,
    )
    run.results = [
        EvalResult(case_id=case.id, case_name=case.name, case_hash=case.content_hash, repetition=number)
        for case in cases
        for number in range(1, repeat + 1)
    ]
    db.session.add(run)
    db.session.commit()
    queue_results(run, [(result.id, result.attempt) for result in run.results])
    return run


START_TOKEN_SECONDS = 3600


def first_run_of(prompt: Prompt, key: str) -> EvalRun:
    """The run an earlier submission of the same Start form created (waiting a moment while it is created)."""
    deadline = time.monotonic() + 10
    while True:
        found = services.jobs_redis.get(key)
        if found is None:
            raise RunRefused("This run could not be started; send the form again.")
        if found not in (b"", ""):
            run = db.session.get(EvalRun, int(found))
            if run is not None and run.prompt_id == prompt.id:
                return run
            raise RunRefused("This form started a run of another prompt; open the runs page again.")
        if time.monotonic() > deadline:
            raise RunRefused("This run is still being started; open the runs page in a moment.")
        time.sleep(0.05)


# --- handing results to the workers ---------------------------------------------------------------


def eval_queue() -> Queue:
    """The RQ queue of test-run jobs (RQ_EVAL_QUEUE), on the jobs Redis, JSON-serialized like the replies' queue."""
    return Queue(
        current_app.config["RQ_EVAL_QUEUE"],
        connection=services.jobs_redis,
        is_async=services.queue.is_async,
        serializer=JSONSerializer,
    )


def job_timeout() -> int:
    """Seconds one result's job may take: its calls (tool rounds and a judge included) at JOB_TIMEOUT each."""
    config = current_app.config
    return config["JOB_TIMEOUT"] * (config["EVAL_MAX_TOOL_ROUNDS"] + 2)


def queue_results(run: EvalRun, members: list[tuple[int, int]], front: bool = False) -> None:
    """Add results (id, attempt) to the run's backlog and dispatch; a jobs Redis that is down pauses the run."""
    if members:
        encoded = [f"{result_id}:{attempt}" for result_id, attempt in members]
        try:
            if front:
                services.jobs_redis.lpush(eval_backlog_key(run.id), *reversed(encoded))
            else:
                services.jobs_redis.rpush(eval_backlog_key(run.id), *encoded)
        except RedisError as error:
            current_app.logger.error("could not queue run %s: %s", run.id, error.__class__.__name__)
            pause_run(run.id, "The job queue (Redis) was unreachable; press Resume to go on.")
            return
    dispatch(run.id)


_inline = threading.local()  # jobs run inline (the test config): the outermost dispatch runs them, in a loop


def dispatch(run_id: int) -> int:
    """Hand the run's next waiting results to the workers, up to EVAL_CONCURRENCY in flight; return how many."""
    queue = eval_queue()
    if not queue.is_async and getattr(_inline, "running", False):
        return 0  # inside an inline job: the loop below takes the next one when it returns
    handed = 0
    _inline.running = not queue.is_async
    try:
        while True:
            status = db.session.scalar(select(EvalRun.status).where(EvalRun.id == run_id))
            db.session.commit()  # end the read: the run's status is read fresh each time
            if status not in ("queued", "running"):
                return handed
            members = take_slots(run_id)
            if not members:
                return handed
            for member in members:
                result_id, attempt = (int(part) for part in member.split(":"))
                queue.enqueue(
                    RUN_JOB,
                    result_id,
                    attempt,
                    job_id=eval_job_id(result_id, attempt),
                    job_timeout=job_timeout(),
                    result_ttl=600,
                    failure_ttl=3600,
                )
                handed += 1
            if queue.is_async:
                return handed
    except RedisError as error:
        current_app.logger.error("could not dispatch run %s: %s", run_id, error.__class__.__name__)
        pause_run(run_id, "The job queue (Redis) was unreachable; press Resume to go on.")
        return handed
    finally:
        _inline.running = False


def take_slots(run_id: int) -> list[str]:
    """Move up to the free slots' worth of waiting results from the backlog to the in-flight set (one script)."""
    now = time.time()
    taken = services.jobs_redis.register_script(_TAKE_SLOTS)(
        keys=[eval_backlog_key(run_id), eval_inflight_key(run_id)],
        args=[now, now + job_timeout() + 60, current_app.config["EVAL_CONCURRENCY"], 7 * 86400],
    )
    return [member.decode() if isinstance(member, bytes) else member for member in taken]


def free_slot(run_id: int, member: str) -> None:
    """The job of ``member`` ended: its slot is free."""
    try:
        services.jobs_redis.zrem(eval_inflight_key(run_id), member)
    except RedisError as error:  # the slot lapses at its deadline anyway
        current_app.logger.warning("eval slot not freed: %s", error.__class__.__name__)


# --- the job ----------------------------------------------------------------------------------------


def run_result(result_id: int, attempt: int) -> str:
    """RQ job: run attempt ``attempt`` of one result and dispatch the run's next; return the outcome.

    "passed", "failed", "error", "paused" (a limit reached: the result waits in the backlog) or
    "skipped" (another job has it, or it was stopped or retried meanwhile).
    """
    with current_app._get_current_object().app_context():
        member = f"{result_id}:{attempt}"
        run_id = db.session.scalar(select(EvalResult.run_id).where(EvalResult.id == result_id))
        if run_id is None:
            return "skipped"
        try:
            outcome = run_claimed(run_id, result_id, attempt)
        finally:
            free_slot(run_id, member)
            db.session.rollback()
        if outcome != "paused":
            dispatch(run_id)
        return outcome


def run_claimed(run_id: int, result_id: int, attempt: int) -> str:
    """Check the run and the limits, claim the result, run it and record it."""
    run = db.session.get(EvalRun, run_id)
    if run.status == "paused":
        queue_back(run_id, result_id, attempt)
        return "paused"
    if run.status not in ("queued", "running"):
        return "skipped"
    wait = take_call(run.owner)
    if wait is not None:
        queue_back(run_id, result_id, attempt)
        pause_run(run_id, wait)
        return "paused"
    first = run.status == "queued"
    if not claim(result_id, attempt):
        return "skipped"
    if first:  # the run's first claim (a write per result would queue every worker on SQLite's lock)
        db.session.execute(
            update(EvalRun)
            .where(EvalRun.id == run_id, EvalRun.status == "queued")
            .values(status="running", started_at=utcnow())
        )
        db.session.commit()
    result = db.session.get(EvalResult, result_id)
    case = db.session.get(TestCase, result.case_id) if result.case_id is not None else None
    version = db.session.get(PromptVersion, run.version_id)
    owner = run.owner
    db.session.commit()
    try:
        fields = CASE_GONE_FIELDS if case is None else execute(owner, version, case)
        if case is not None:
            fields["case_hash"] = case.content_hash  # the case as it ran (edited since the run started, say)
    except Paused as paused:
        unclaim(result_id, attempt)
        queue_back(run_id, result_id, attempt)
        pause_run(run_id, paused.sentence)
        return "paused"
    except Exception:
        current_app.logger.exception("eval result %s failed", result_id)
        fields = {"status": "error", "error": INTERNAL_ERROR}
    return record(run_id, result_id, attempt, fields)


CASE_GONE_FIELDS = {"status": "error", "error": CASE_GONE}  # copied by ``record``, never changed


def claim(result_id: int, attempt: int) -> bool:
    """Take the result for this job: ``queued → running`` for its attempt, once (a second claim changes nothing)."""
    claimed = db.session.execute(
        update(EvalResult)
        .where(EvalResult.id == result_id, EvalResult.status == "queued", EvalResult.attempt == attempt)
        .values(status="running", started_at=utcnow())
    ).rowcount
    db.session.commit()
    return claimed == 1


def unclaim(result_id: int, attempt: int) -> None:
    """Give the result back (a limit was reached before its call): ``running → queued``."""
    db.session.rollback()
    db.session.execute(
        update(EvalResult)
        .where(EvalResult.id == result_id, EvalResult.status == "running", EvalResult.attempt == attempt)
        .values(status="queued", started_at=None)
    )
    db.session.commit()


def queue_back(run_id: int, result_id: int, attempt: int) -> None:
    """Put a result that did not run at the front of the run's backlog (a paused run takes it first on resume)."""
    try:
        services.jobs_redis.lpush(eval_backlog_key(run_id), f"{result_id}:{attempt}")
    except RedisError as error:  # resume rebuilds the backlog from the database
        current_app.logger.warning("eval result not queued back: %s", error.__class__.__name__)


def take_call(owner: str) -> str | None:
    """Count one call of ``owner``'s test runs; None when it fits RATE_LIMIT_EVAL_CALLS, else the pause's sentence."""
    if not owner:
        return None
    rate = parse(current_app.config["RATE_LIMIT_EVAL_CALLS"])
    identifiers = (LIMIT_PREFIX, f"user:{owner}", EVAL_CALLS)
    try:
        if limiter.limiter.hit(rate, *identifiers):
            return None
        uncount(rate, identifiers, 1)  # a fixed window counts a refused hit too: this call was not made
        reset, _remaining = limiter.limiter.get_window_stats(rate, *identifiers)
    except RedisError as error:  # the counters are down: counted nowhere, as the views do
        current_app.logger.warning("eval call rate not counted: %s", error.__class__.__name__)
        return None
    return (
        f"Paused: test runs may make {rate_in_words(rate)} model calls per user (RATE_LIMIT_EVAL_CALLS); "
        f"press Resume in {in_words(reset - time.time())}."
    )


def count_call(owner: str) -> None:
    """Count one more call of a result already running (a tool round, a judge): counted, never refused."""
    if owner:
        try:
            limiter.limiter.hit(
                parse(current_app.config["RATE_LIMIT_EVAL_CALLS"]), LIMIT_PREFIX, f"user:{owner}", EVAL_CALLS
            )
        except RedisError:
            pass


# --- one case: the calls, the tool rounds, the checks -------------------------------------------------


@dataclass
class Call:
    """What one provider call answered: its text, tool calls, usage and cost."""

    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: Usage | None = None
    cost: float | None = None
    request: ChatRequest | None = None


def call_model(owner: str, settings: PlaygroundSettings, turns: list[tuple]) -> Call:
    """One provider call through the gate: the cost reserved before, settled after with the provider's usage.

    Raises Paused (the budget), CallFailed (a refusal of the gate, a provider error, a timeout).
    """
    fixed = len(settings.system_prompt) + sum(len(str(turn[1])) for turn in turns)
    try:
        admission = admit_run_call(owner, settings, math.ceil(fixed / CHARS_PER_TOKEN))
    except BudgetExceeded as refusal:
        raise Paused(f"Paused: {refusal.sentence}") from None
    except Refused as refusal:
        raise CallFailed(refusal.sentence) from None
    sent = admission.settings
    request = ChatRequest(
        model=sent.model, system_prompt=sent.system_prompt, messages=turns, **sent.params(), **sent.tool_fields()
    )
    call = Call(request=request)
    parts: list[str] = []
    stream = get_provider(sent.provider).stream(request)
    try:
        for item in stream:
            if isinstance(item, Usage):
                call.usage = item
            elif isinstance(item, ToolCall):
                call.tool_calls.append(item)
            elif isinstance(item, str) and item:  # not a ToolCallDelta: the whole call comes at the end
                parts.append(item)
    except ProviderError as error:
        settle(admission.hold, call.usage or estimate(admission.hold, request, parts))
        raise CallFailed(str(error)) from None
    except JobTimeoutException:
        settle(admission.hold, call.usage or estimate(admission.hold, request, parts))
        raise CallFailed(f"The model did not answer within {job_timeout()} seconds.") from None
    except Exception:
        settle(admission.hold, call.usage or estimate(admission.hold, request, parts))
        raise
    finally:
        stream.close()
    call.text = "".join(parts)
    settle(admission.hold, call.usage or estimate(admission.hold, request, parts))
    call.cost = cost_usd(sent.provider, sent.model, call.usage)
    return call


def case_turns(messages: list) -> list[tuple]:
    """A case's messages as a request's turns: (role, content), plus the tool fields where a message has them."""
    turns = []
    for message in messages or []:
        if not isinstance(message, dict):
            continue
        role, content = str(message.get("role", "user")), message.get("content") or ""
        content = content if isinstance(content, str) else msgspec.json.encode(content).decode()
        if message.get("tool_calls"):
            calls = [
                {"id": str(call.get("id", "")), "name": str(call.get("name", "")), "arguments": call_arguments(call)}
                for call in message["tool_calls"]
                if isinstance(call, dict)
            ]
            turns.append((role, content, {"tool_calls": calls}))
        elif message.get("tool_call_id"):
            turns.append((role, content, {"tool_call_id": str(message["tool_call_id"])}))
        else:
            turns.append((role, content))
    return turns


def call_arguments(call: dict) -> str:
    """A stored tool call's arguments as the JSON text a provider is sent."""
    arguments = call.get("arguments", "{}")
    return arguments if isinstance(arguments, str) else msgspec.json.encode(arguments).decode()


def case_settings(version: PromptVersion, case: TestCase) -> PlaygroundSettings:
    """The version as settings, its system prompt rendered with the case's variables (over the version's defaults)."""
    settings = settings_from_version(version)
    values = {str(name): "" if value is None else str(value) for name, value in (version.variables or {}).items()}
    values.update({str(name): "" if value is None else str(value) for name, value in (case.variables or {}).items()})
    return msgspec.structs.replace(settings, system_prompt=render(settings.system_prompt, values), variables=values)


def execute(owner: str, version: PromptVersion, case: TestCase) -> dict:
    """Run one case: its calls (tool rounds answered with mocks), then its checks; the result's fields.

    Raises Paused when a limit is reached before the first call (nothing was spent).
    """
    started = time.monotonic()
    try:
        settings = case_settings(version, case)
    except TemplateProblem as problem:
        return {"status": "error", "error": problem.sentence}
    turns = case_turns(case.messages)
    if not turns:
        return {"status": "error", "error": "The case has no message to answer."}
    calls: list[Call] = []
    tool_calls: list[dict] = []
    error = ""
    rounds = current_app.config["EVAL_MAX_TOOL_ROUNDS"]
    try:
        while True:
            if calls:
                count_call(owner)
            call = call_model(owner, settings, turns)
            calls.append(call)
            tool_calls += [msgspec.to_builtins(tool_call) for tool_call in call.tool_calls]
            if not call.tool_calls or len(calls) > rounds:
                break
            answers = [mock_result(settings, tool_call.name) for tool_call in call.tool_calls]
            if any(answer is None for answer in answers):
                break  # a tool without a mock: the reply ends with its calls, as the checks see it
            turns = turns + [
                ("assistant", call.text, {"tool_calls": [msgspec.to_builtins(c) for c in call.tool_calls]}),
                *[("tool", answer, {"tool_call_id": c.id}) for c, answer in zip(call.tool_calls, answers)],
            ]
    except Paused:
        if not calls:
            raise
        error = "A limit was reached during this case's tool rounds; press Retry failed to run it again."
    except CallFailed as failed:
        error = failed.sentence
    latency_ms = int((time.monotonic() - started) * 1000)
    last = calls[-1] if calls else Call()
    usage = total_usage(calls)
    cost = total_cost(calls)
    fields = {
        "output": last.text,
        "output_html": reply_html(last.request, last.text, last.tool_calls) if last.request else "",
        "tool_calls": tool_calls,
        "usage": usage,
        "cost_usd": cost,
        "latency_ms": latency_ms,
    }
    observed = Observed(
        output=last.text,
        tool_calls=tuple(tool_calls),
        latency_ms=latency_ms,
        cost_usd=cost,
        error=error,
        schema=settings.json_schema,
    )
    judge_costs: list[float] = []
    judge = judge_with(owner, settings, case, last.text, judge_costs)
    outcomes = run_checks(case.checks or [], observed, judge)
    if judge_costs:
        fields["cost_usd"] = (cost or 0.0) + sum(judge_costs)
    ok = passed(outcomes, observed)
    fields["check_results"] = [outcome.to_dict() for outcome in outcomes]
    if error:
        return {**fields, "status": "error", "error": error, "passed": False}
    return {**fields, "passed": ok, "status": "passed" if ok else "failed"}


def last_user_text(messages: list) -> str:
    """The text of the case's last user message (what a judge's rubric calls ``input``)."""
    for message in reversed(messages or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return str(message.get("content") or "")
    return ""


def judge_with(owner: str, settings: PlaygroundSettings, case: TestCase, output: str, costs: list[float]) -> Callable:
    """The judge of the case's ``llm_judge`` checks: one call through the gate with structured output
    (JUDGE_SCHEMA), on the check's ``model`` (and ``provider``; else the version's); its cost goes to ``costs``."""

    def judge(check: dict) -> CheckOutcome:
        system, message = judge_messages(
            check, input_text=last_user_text(case.messages), output=output, expected=case.expected
        )
        judged = PlaygroundSettings(
            system_prompt=system,
            provider=str(check.get("provider") or "") or settings.provider,
            model=str(check.get("model") or "") or settings.model,
            temperature=0.0,
            max_tokens=512,
            response_format="json_schema",
            schema_name="judgement",
            json_schema=JUDGE_SCHEMA,
            strict=True,
        )
        count_call(owner)
        try:
            call = call_model(owner, judged, [("user", message)])
        except (Paused, CallFailed) as failed:
            return CheckOutcome("llm_judge", False, f"The judge could not answer: {failed.sentence}")
        if call.cost:
            costs.append(call.cost)
        return judge_outcome(call.text)

    return judge


def total_usage(calls: list[Call]) -> dict:
    """The tokens of all the case's calls together."""
    usage = {"input_tokens": 0, "output_tokens": 0}
    for call in calls:
        if call.usage is not None:
            usage["input_tokens"] += call.usage.input_tokens
            usage["output_tokens"] += call.usage.output_tokens
    return usage


def total_cost(calls: list[Call]) -> float | None:
    """What the case's calls cost together; None when none of them has a known price."""
    costs = [call.cost for call in calls if call.cost is not None]
    return sum(costs) if costs else None


def record(run_id: int, result_id: int, attempt: int, fields: dict) -> str:
    """Write the result once (``running → final`` for its attempt), publish it, finish the run if it was the last."""
    fields = {**fields, "finished_at": utcnow()}
    changed = db.session.execute(
        update(EvalResult)
        .where(EvalResult.id == result_id, EvalResult.status == "running", EvalResult.attempt == attempt)
        .values(**fields)
    ).rowcount
    db.session.commit()
    if not changed:
        return "skipped"
    announce(run_id, result_id, fields["status"])
    finish_if_done(run_id)
    return fields["status"]


# --- the run's life -------------------------------------------------------------------------------------


def finish_if_done(run_id: int) -> bool:
    """Mark the run finished when none of its results is queued or running any more (once)."""
    still_open = exists().where(EvalResult.run_id == run_id, EvalResult.status.in_(OPEN_RESULTS))
    if db.session.scalar(select(still_open)):  # a read first: the write (and its lock) only for the last one
        db.session.commit()
        return False
    changed = db.session.execute(
        update(EvalRun)
        .where(EvalRun.id == run_id, EvalRun.status.in_(("queued", "running")), ~still_open)
        .values(status="finished", finished_at=utcnow(), status_reason="")
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    if changed:
        announce(run_id, None, "finished")
    return bool(changed)


def pause_run(run_id: int, sentence: str) -> None:
    """Pause the run with the limit's sentence (its queued results wait for ``resume_run``)."""
    changed = db.session.execute(
        update(EvalRun)
        .where(EvalRun.id == run_id, EvalRun.status.in_(("queued", "running")))
        .values(status="paused", status_reason=sentence)
    ).rowcount
    db.session.commit()
    if changed:
        announce(run_id, None, "paused")


def resume_run(run: EvalRun) -> EvalRun:
    """Go on with a paused run: its queued results are handed to the workers again."""
    if run.status != "paused":
        raise RunConflict("Only a paused run can be resumed.")
    run.status = "running" if run.started_at else "queued"
    run.status_reason = ""
    db.session.commit()
    rebuild_backlog(run)
    announce(run.id, None, run.status)
    return run


def rebuild_backlog(run: EvalRun) -> None:
    """The backlog from the database: every queued result, in order (a result also in flight is taken once)."""
    queued = db.session.execute(
        select(EvalResult.id, EvalResult.attempt)
        .where(EvalResult.run_id == run.id, EvalResult.status == "queued")
        .order_by(EvalResult.id)
    ).all()
    db.session.commit()
    try:
        services.jobs_redis.delete(eval_backlog_key(run.id))
    except RedisError:
        pass
    queue_results(run, [(result_id, attempt) for result_id, attempt in queued])


def stop_run(run: EvalRun, by: str = "") -> EvalRun:
    """Stop a run: its queued results become stopped (those running finish), nothing more is handed out."""
    if run.status in ("finished", "stopped"):
        raise RunConflict(f"This run is {run.status} already.")
    db.session.execute(
        update(EvalResult)
        .where(EvalResult.run_id == run.id, EvalResult.status == "queued")
        .values(status="stopped", finished_at=utcnow())
    )
    run.status = "stopped"
    run.status_reason = f"Stopped by {by}." if by else "Stopped."
    run.finished_at = utcnow()
    db.session.commit()
    try:
        services.jobs_redis.delete(eval_backlog_key(run.id))
    except RedisError:
        pass  # the jobs of stopped results find nothing to claim
    announce(run.id, None, "stopped")
    return run


def retry_failed(run: EvalRun) -> int:
    """Queue the run's failed and errored results again, each with a new attempt; return how many."""
    if run.status == "paused":
        raise RunConflict("This run is paused: resume it first.")
    retried = db.session.execute(
        select(EvalResult.id, EvalResult.attempt).where(
            EvalResult.run_id == run.id, EvalResult.status.in_(("failed", "error"))
        )
    ).all()
    if not retried:
        raise RunConflict("This run has no failed or errored results to retry.")
    for result_id, attempt in retried:
        db.session.execute(
            update(EvalResult)
            .where(EvalResult.id == result_id, EvalResult.attempt == attempt)
            .values(
                status="queued",
                attempt=attempt + 1,
                output="",
                output_html="",
                tool_calls=[],
                usage={},
                cost_usd=None,
                latency_ms=None,
                check_results=[],
                passed=None,
                error="",
                started_at=None,
                finished_at=None,
            )
        )
    run.status = "running"
    run.status_reason = ""
    run.finished_at = None
    db.session.commit()
    queue_results(run, [(result_id, attempt + 1) for result_id, attempt in retried])
    announce(run.id, None, "running")
    return len(retried)


def lost_results(run: EvalRun) -> int:
    """Mark errored the results running past their job's time (their worker vanished); return how many."""
    if run.status not in ("running", "paused", "stopped"):
        return 0
    deadline = utcnow().timestamp() - job_timeout() - 120
    lost = [
        result.id
        for result in db.session.scalars(
            select(EvalResult).where(EvalResult.run_id == run.id, EvalResult.status == "running")
        )
        if result.started_at is not None and result.started_at.timestamp() < deadline
    ]
    if lost:
        db.session.execute(
            update(EvalResult)
            .where(EvalResult.id.in_(lost), EvalResult.status == "running")
            .values(status="error", error=WORKER_LOST, finished_at=utcnow())
        )
        db.session.commit()
        finish_if_done(run.id)
    return len(lost)


def look_after(run: EvalRun) -> None:
    """What a run's page and the CLI's wait do on each look: results whose worker vanished are errored,
    and a run going on with queued results that nothing will hand out (its Redis keys lost) is dispatched again."""
    lost_results(run)
    if run.status not in ("queued", "running"):
        return
    try:
        with services.jobs_redis.pipeline(transaction=False) as pipe:
            pipe.llen(eval_backlog_key(run.id))
            pipe.zcount(eval_inflight_key(run.id), time.time(), "+inf")
            waiting, in_flight = pipe.execute()
    except RedisError:
        return
    if waiting or in_flight:
        return
    queued = db.session.scalar(select(exists().where(EvalResult.run_id == run.id, EvalResult.status == "queued")))
    if queued:
        current_app.logger.warning("run %s had queued results and nothing to hand them out: dispatched again", run.id)
        rebuild_backlog(run)


def result_lost(result_id: int, attempt: int) -> None:
    """The worker running this result died (its supervisor says so): the result is errored, the run goes on."""
    changed = db.session.execute(
        update(EvalResult)
        .where(EvalResult.id == result_id, EvalResult.status == "running", EvalResult.attempt == attempt)
        .values(status="error", error=WORKER_LOST, finished_at=utcnow())
    ).rowcount
    db.session.commit()
    run_id = db.session.scalar(select(EvalResult.run_id).where(EvalResult.id == result_id))
    if run_id is None:
        return
    free_slot(run_id, f"{result_id}:{attempt}")
    if changed:
        finish_if_done(run_id)
        announce(run_id, result_id, "error")
    dispatch(run_id)


# --- live events ------------------------------------------------------------------------------------------


def run_room_id(run_id: int) -> str:
    """What the run's Socket.IO room is named after (``live.room_for`` HMACs it, as a session's)."""
    return f"eval-run-{run_id}"


def announce(run_id: int, result_id: int | None, status: str) -> None:
    """Tell the run's open pages that a result ended (``eval.result``) or the run's status changed (``eval.run``)."""
    if result_id is None:
        publish(run_room_id(run_id), "eval.run", {"run": run_id, "status": status})
    else:
        publish(run_room_id(run_id), "eval.result", {"run": run_id, "result": result_id, "status": status})
