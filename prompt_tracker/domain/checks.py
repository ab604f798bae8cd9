"""The checks of a test case: each a JSON object with a ``type``, run on what one reply produced.

A check passes or fails with a reason, a short sentence a person reads in a run's results grid
("missing \"refund\"", "took 1,240 ms, limit 1,000 ms"). Every type but ``llm_judge`` is a pure
function here, registered by type in ``_RUNNERS``; the judge is two pure halves (the messages to
send, the answer to read) around a provider call the run executor makes through the reply gate.

Nothing here raises for what a person typed or a model answered: a malformed check is a sentence
(``check_problem``), and an output that cannot be checked (not JSON, nested too deeply, a pattern
that runs too long) fails its check with a sentence.

Regular expressions are Python's ``re`` (``re.search``), which has no time bound of its own and
backtracks: ``a*a*c`` takes 20 s over 5,000 characters of ``a``. So a pattern is capped at
``MAX_PATTERN_CHARS``, the text searched at ``MAX_REGEX_TEXT_CHARS``, and, in the main thread of a
Unix process (the RQ work-horse that runs a case, a CLI, a test), the search runs under a
``SIGPROF`` timer of ``REGEX_TIME_LIMIT`` seconds of CPU: ``re`` checks for signals as it goes, so
the handler's exception ends the search and the check fails with a sentence. Off the main thread
(where a signal handler cannot be set) only the two caps apply. ``SIGPROF`` and ``ITIMER_PROF``
are used because RQ's job timeout owns ``SIGALRM``; the previous handler is put back after each search.
"""

import json
import math
import re
import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .tools import check_json_schema, validate_instance

__all__ = [
    "CHECK_TYPES",
    "JUDGE_SCHEMA",
    "CheckOutcome",
    "Observed",
    "check_problem",
    "checks_problem",
    "judge_messages",
    "judge_outcome",
    "parse_json_path",
    "passed",
    "read_json_path",
    "run_check",
    "run_checks",
]

CHECK_TYPES = (
    "equals",
    "contains",
    "not_contains",
    "regex",
    "is_json",
    "json_schema",
    "json_path",
    "tool_called",
    "max_latency_ms",
    "max_cost_usd",
    "llm_judge",
)
# The keys each type may have besides "type" (a typo such as "values" is said, not ignored).
CHECK_KEYS = {
    "equals": ("value",),
    "contains": ("value", "case_sensitive"),
    "not_contains": ("value", "case_sensitive"),
    "regex": ("pattern",),
    "is_json": (),
    "json_schema": ("schema",),
    "json_path": ("path", "equals", "contains", "exists"),
    "tool_called": ("name", "arguments"),
    "max_latency_ms": ("value",),
    "max_cost_usd": ("value",),
    "llm_judge": ("rubric", "model"),
}
MAX_CHECKS = 50  # per case
MAX_VALUE_CHARS = 10_000  # a contains / not_contains value
MAX_PATTERN_CHARS = 1_000
MAX_REGEX_TEXT_CHARS = 100_000
REGEX_TIME_LIMIT = 0.25  # seconds of CPU per search (main thread only, see the module's docstring)
MAX_PATH_CHARS = 500
MAX_RUBRIC_CHARS = 20_000
MAX_MODEL_CHARS = 200
SHOWN_CHARS = 60  # of a value quoted in a reason

JUDGE_SCHEMA = {
    "type": "object",
    "properties": {"pass": {"type": "boolean"}, "reason": {"type": "string"}},
    "required": ["pass", "reason"],
    "additionalProperties": False,
}
JUDGE_SYSTEM_PROMPT = (
    "You grade one reply of an AI model against a rubric. Read the rubric and the material it "
    "quotes, decide whether the reply meets the rubric, and answer only with a JSON object: "
    '{"pass": true or false, "reason": "one short sentence saying why"}.'
)
MAX_JUDGE_REASON_CHARS = 500
_PLACEHOLDER = re.compile(r"\{\{\s*(input|output|expected)\s*\}\}")


@dataclass(frozen=True)
class Observed:
    """What one reply produced: its text, its tool calls, how long it took, what it cost, its error.

    ``tool_calls`` are ``{"id", "name", "arguments"}`` with the arguments as the JSON text the
    provider sent; ``schema`` is the version's JSON schema (structured output), if it has one.
    """

    output: str
    tool_calls: tuple[dict, ...] = ()
    latency_ms: int | None = None
    cost_usd: float | None = None
    error: str = ""
    schema: dict | None = None


@dataclass(frozen=True)
class CheckOutcome:
    """One check's verdict on one reply: its type, whether it passed, and why (a short sentence)."""

    type: str
    passed: bool
    reason: str

    def to_dict(self) -> dict:
        """The outcome as a result row stores it (``EvalResult.check_results``): type, passed, reason."""
        return {"type": self.type, "passed": self.passed, "reason": self.reason}


# --- what a check says --------------------------------------------------------------------------


def check_problem(check: object) -> str | None:
    """None if ``check`` is a well-formed check object; else a sentence saying what is wrong with it."""
    try:
        return _problem(check)
    except RecursionError:
        return "The check is nested too deeply."


def checks_problem(checks: object) -> str | None:
    """None if ``checks`` is a list of well-formed checks; else a sentence naming the first bad one ("Check 3: …")."""
    if not isinstance(checks, list):
        return 'Checks must be a JSON array of check objects, such as [{"type": "contains", "value": "refund"}].'
    if len(checks) > MAX_CHECKS:
        return f"Up to {MAX_CHECKS} checks per case; this has {len(checks)}."
    for number, check in enumerate(checks, start=1):
        problem = check_problem(check)
        if problem:
            return f"Check {number}: {problem[0].lower()}{problem[1:]}"
    return None


def _problem(check: object) -> str | None:
    if not isinstance(check, dict):
        return 'A check must be a JSON object with a "type", such as {"type": "contains", "value": "refund"}.'
    kind = check.get("type")
    if not isinstance(kind, str) or not kind:
        return f'A check needs a "type": one of {", ".join(CHECK_TYPES)}.'
    if kind not in CHECK_TYPES:
        return f"The check type {_shown(kind)} is unknown (known: {', '.join(CHECK_TYPES)})."
    label = f"The {kind} check"
    known = CHECK_KEYS[kind]
    unknown = [key for key in check if key != "type" and key not in known]
    if unknown:
        allowed = ", ".join(known) if known else "nothing besides type"
        return f"{label} has an unknown key {_shown(unknown[0])} (known: {allowed})."
    return _FIELD_PROBLEMS[kind](check, label)


def _equals_problem(check: dict, label: str) -> str | None:
    if "value" not in check:
        return f'{label} needs a "value": the expected text, or a JSON value.'
    return None


def _contains_problem(check: dict, label: str) -> str | None:
    value = check.get("value")
    if not isinstance(value, str) or not value:
        return f'{label} needs a "value": a non-empty text.'
    if len(value) > MAX_VALUE_CHARS:
        return f"{label}'s value is {len(value):,} characters; the limit is {MAX_VALUE_CHARS:,}."
    if not isinstance(check.get("case_sensitive", True), bool):
        return f'{label}\'s "case_sensitive" must be true or false.'
    return None


def _regex_problem(check: dict, label: str) -> str | None:
    pattern = check.get("pattern")
    if not isinstance(pattern, str) or not pattern:
        return f'{label} needs a "pattern": a Python regular expression.'
    if len(pattern) > MAX_PATTERN_CHARS:
        return f"{label}'s pattern is {len(pattern):,} characters; the limit is {MAX_PATTERN_CHARS:,}."
    _, problem = _compile(pattern)
    return f"{label}'s pattern does not compile: {problem}." if problem else None


def _no_fields_problem(check: dict, label: str) -> str | None:
    return None


def _json_schema_problem(check: dict, label: str) -> str | None:
    if "schema" not in check:
        return None  # the version's schema, at run time
    return check_json_schema(check["schema"], f"{label}'s schema")


def _json_path_problem(check: dict, label: str) -> str | None:
    path = check.get("path")
    if not isinstance(path, str) or not path:
        return f'{label} needs a "path", such as "$.intent" or "$.items[0].name".'
    _, problem = parse_json_path(path)
    if problem:
        return f"{label}'s path {problem}"
    tests = [key for key in ("equals", "contains", "exists") if key in check]
    if len(tests) != 1:
        return f'{label} needs exactly one of "equals", "contains" or "exists" (true or false).'
    if tests[0] == "exists" and not isinstance(check["exists"], bool):
        return f'{label}\'s "exists" must be true or false.'
    return None


def _tool_called_problem(check: dict, label: str) -> str | None:
    name = check.get("name")
    if not isinstance(name, str) or not name.strip():
        return f'{label} needs a "name": the name of the tool that must be called.'
    if "arguments" in check and not isinstance(check["arguments"], dict):
        return f'{label}\'s "arguments" must be a JSON object: the arguments the call must include.'
    return None


def _limit_problem(check: dict, label: str) -> str | None:
    value = check.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        return f'{label} needs a "value": a number, 0 or more.'
    return None


def _judge_problem(check: dict, label: str) -> str | None:
    rubric = check.get("rubric")
    if not isinstance(rubric, str) or not rubric.strip():
        return f'{label} needs a "rubric": what a good reply does, in words.'
    if len(rubric) > MAX_RUBRIC_CHARS:
        return f"{label}'s rubric is {len(rubric):,} characters; the limit is {MAX_RUBRIC_CHARS:,}."
    model = check.get("model")
    if model is not None and (not isinstance(model, str) or not model.strip() or len(model) > MAX_MODEL_CHARS):
        return f'{label}\'s "model" must be a model name, or "provider:model".'
    return None


_FIELD_PROBLEMS = {
    "equals": _equals_problem,
    "contains": _contains_problem,
    "not_contains": _contains_problem,
    "regex": _regex_problem,
    "is_json": _no_fields_problem,
    "json_schema": _json_schema_problem,
    "json_path": _json_path_problem,
    "tool_called": _tool_called_problem,
    "max_latency_ms": _limit_problem,
    "max_cost_usd": _limit_problem,
    "llm_judge": _judge_problem,
}


# --- running checks -----------------------------------------------------------------------------


def run_check(check: dict, observed: Observed) -> CheckOutcome:
    """One check's outcome on what a reply produced (``llm_judge`` fails here: ``run_checks`` gives it a judge)."""
    kind = check.get("type") if isinstance(check, dict) else None
    kind = kind if isinstance(kind, str) else "?"
    problem = check_problem(check)
    if problem:
        return CheckOutcome(kind, False, problem)
    if observed.error:
        return CheckOutcome(kind, False, observed.error)
    if kind == "llm_judge":
        return CheckOutcome(kind, False, "No judge available.")
    try:
        passed_, reason = _RUNNERS[kind](check, observed)
    except RecursionError:
        passed_, reason = False, "the output is nested too deeply to check"
    return CheckOutcome(kind, passed_, reason)


def run_checks(
    checks: Sequence[dict],
    observed: Observed,
    judge: Callable[[dict], CheckOutcome] | None = None,
) -> list[CheckOutcome]:
    """Every check's outcome, in order; ``llm_judge`` checks are given to ``judge`` (failed when there is none).

    A reply that ended in an error passes nothing: each check fails with the error as its reason.
    """
    outcomes = []
    for check in checks:
        is_judge = isinstance(check, dict) and check.get("type") == "llm_judge"
        if is_judge and judge is not None and not observed.error and check_problem(check) is None:
            outcomes.append(judge(check))
        else:
            outcomes.append(run_check(check, observed))
    return outcomes


def passed(outcomes: Sequence[CheckOutcome], observed: Observed) -> bool:
    """Whether a reply passes its case: no error and every check passed (no checks: no error is enough)."""
    return not observed.error and all(outcome.passed for outcome in outcomes)


def _run_equals(check: dict, observed: Observed) -> tuple[bool, str]:
    expected = check["value"]
    text = observed.output.strip()
    if isinstance(expected, str):
        if text == expected.strip():
            return True, "equals the expected text"
        got, _ = _load_json(text)
        want, _ = _load_json(expected)
        if got is not _NOT_JSON and want is not _NOT_JSON:
            return _json_equals(got, want)
        return False, _text_difference(text, expected.strip())
    got, error = _load_json(text)
    if got is _NOT_JSON:
        return False, f"is not JSON ({error}), expected {_shown(expected)}"
    return _json_equals(got, expected)


def _json_equals(got, want) -> tuple[bool, str]:
    difference = _difference(got, want, [], subset=False)
    return (True, "equals the expected JSON") if difference is None else (False, difference)


def _text_difference(text: str, expected: str) -> str:
    at = next((i for i, (a, b) in enumerate(zip(text, expected)) if a != b), min(len(text), len(expected)))
    start = max(0, at - 10)
    lead = "…" if start else ""
    got, want = lead + text[start : start + 30], lead + expected[start : start + 30]
    return f"differs at character {at + 1:,}: {_shown(got)} ≠ expected {_shown(want)}"


def _run_contains(check: dict, observed: Observed) -> tuple[bool, str]:
    found = _find(check, observed.output)
    value = _shown(check["value"])
    any_case = "" if check.get("case_sensitive", True) else " (any case)"
    return (True, f"contains {value}{any_case}") if found >= 0 else (False, f"missing {value}{any_case}")


def _run_not_contains(check: dict, observed: Observed) -> tuple[bool, str]:
    found = _find(check, observed.output)
    value = _shown(check["value"])
    any_case = "" if check.get("case_sensitive", True) else " (any case)"
    if found < 0:
        return True, f"does not contain {value}{any_case}"
    return False, f"contains {value}{any_case} at character {found + 1:,}"


def _find(check: dict, text: str) -> int:
    value = check["value"]
    if check.get("case_sensitive", True):
        return text.find(value)
    return text.casefold().find(value.casefold())


def _run_regex(check: dict, observed: Observed) -> tuple[bool, str]:
    pattern = check["pattern"]
    shown = f"/{_cut(pattern)}/"
    if len(observed.output) > MAX_REGEX_TEXT_CHARS:
        return False, (
            f"the output is {len(observed.output):,} characters, over the {MAX_REGEX_TEXT_CHARS:,} "
            f"a pattern is searched in"
        )
    compiled, _ = _compile(pattern)
    try:
        match = _bounded_search(compiled, observed.output)
    except _OutOfTime:
        return False, f"{shown} took over {REGEX_TIME_LIMIT} s on this output: simplify the pattern"
    if match is None:
        return False, f"no match for {shown}"
    return True, f"matches {shown}: {_shown(match.group(0))}"


def _run_is_json(check: dict, observed: Observed) -> tuple[bool, str]:
    _, error = _load_json(observed.output)
    if error:
        return False, f"is not JSON: {error}{_fence_hint(observed.output)}"
    return True, "is valid JSON"


def _run_json_schema(check: dict, observed: Observed) -> tuple[bool, str]:
    schema = check["schema"] if "schema" in check else observed.schema
    if not isinstance(schema, dict):
        return False, "no schema to check against: give the check a schema, or the version a JSON schema"
    value, error = _load_json(observed.output)
    if error:
        return False, f"is not JSON: {error}{_fence_hint(observed.output)}"
    invalid = validate_instance(schema, value)
    return (False, f"does not match the schema: {_cut(invalid, 200)}") if invalid else (True, "matches the schema")


def _run_json_path(check: dict, observed: Observed) -> tuple[bool, str]:
    path = check["path"]
    steps, _ = parse_json_path(path)
    document, error = _load_json(observed.output)
    if error:
        return False, f"is not JSON, so {path} cannot be read: {error}"
    found, value = read_json_path(document, steps)
    if "exists" in check:
        if found == check["exists"]:
            return True, f"{path} exists" if found else f"{path} does not exist"
        return False, f"{path} exists" if found else f"{path} does not exist"
    if "equals" in check:
        want = check["equals"]
        if not found:
            return False, f"{path} does not exist, expected {_shown(want)}"
        if _same(value, want):
            return True, f"{path} is {_shown(value)}"
        return False, f"{path} is {_shown(value)}, expected {_shown(want)}"
    want = check["contains"]
    if not found:
        return False, f"{path} does not exist, expected it to contain {_shown(want)}"
    if isinstance(value, str):
        hit = isinstance(want, str) and want in value
    elif isinstance(value, list):
        hit = any(_same(item, want) for item in value)
    else:
        return False, f"{path} is {_shown(value)}: not a text or an array that could contain {_shown(want)}"
    if hit:
        return True, f"{path} contains {_shown(want)}"
    return False, f"{path} does not contain {_shown(want)}"


def _run_tool_called(check: dict, observed: Observed) -> tuple[bool, str]:
    name = check["name"]
    calls = [call for call in observed.tool_calls if isinstance(call, dict)]
    if not calls:
        return False, f"no tool was called, expected {name}"
    matching = [call for call in calls if call.get("name") == name]
    if not matching:
        called = ", ".join(dict.fromkeys(str(call.get("name")) for call in calls))
        return False, f"{name} was not called (called: {_cut(called)})"
    if "arguments" not in check:
        return True, f"called {name}"
    first_difference = None
    for call in matching:
        arguments, error = _call_arguments(call)
        difference = f"{name}'s arguments are not JSON: {error}" if error else None
        if difference is None:
            found = _difference(arguments, check["arguments"], [], subset=True)
            difference = None if found is None else f"arguments differ: {found.removeprefix('$.')}"
        if difference is None:
            return True, f"called {name} with the expected arguments"
        first_difference = first_difference or difference
    return False, first_difference


def _call_arguments(call: dict) -> tuple[object, str | None]:
    arguments = call.get("arguments")
    if isinstance(arguments, dict):
        return arguments, None
    if not isinstance(arguments, str) or not arguments.strip():
        return {}, None
    value, error = _load_json(arguments)
    return value, error


def _run_max_latency(check: dict, observed: Observed) -> tuple[bool, str]:
    if observed.latency_ms is None:
        return False, "no latency was recorded"
    limit = check["value"]
    return observed.latency_ms <= limit, f"took {observed.latency_ms:,} ms, limit {_number(limit)} ms"


def _run_max_cost(check: dict, observed: Observed) -> tuple[bool, str]:
    if observed.cost_usd is None:
        return False, "no cost was recorded (the model has no price)"
    limit = check["value"]
    return observed.cost_usd <= limit, f"cost {_usd(observed.cost_usd)}, limit {_usd(limit)}"


_RUNNERS: dict[str, Callable[[dict, Observed], tuple[bool, str]]] = {
    "equals": _run_equals,
    "contains": _run_contains,
    "not_contains": _run_not_contains,
    "regex": _run_regex,
    "is_json": _run_is_json,
    "json_schema": _run_json_schema,
    "json_path": _run_json_path,
    "tool_called": _run_tool_called,
    "max_latency_ms": _run_max_latency,
    "max_cost_usd": _run_max_cost,
}


# --- the judge ----------------------------------------------------------------------------------


def judge_messages(check: dict, *, input_text: str, output: str, expected: object | None) -> tuple[str, str]:
    """The judge's system prompt and user message: the rubric with ``{{ input }}``, ``{{ output }}``, ``{{ expected }}`` filled.

    A plain substitution of exactly those three names, in one pass (a filled value is never read
    again as a placeholder); any other ``{{ … }}`` stays as written. A rubric that does not quote the
    output is followed by the input, the output and the expected output, so the judge sees them.
    """
    rubric = check.get("rubric", "") if isinstance(check, dict) else ""
    expected_text = _expected_text(expected)
    values = {"input": input_text, "output": output, "expected": expected_text}
    filled = _PLACEHOLDER.sub(lambda match: values[match.group(1)], rubric)
    if not any(match.group(1) == "output" for match in _PLACEHOLDER.finditer(rubric)):
        parts = [filled, f"<input>\n{input_text}\n</input>", f"<output>\n{output}\n</output>"]
        if expected is not None:
            parts.append(f"<expected>\n{expected_text}\n</expected>")
        filled = "\n\n".join(parts)
    return JUDGE_SYSTEM_PROMPT, filled


def judge_outcome(reply_text: str) -> CheckOutcome:
    """The judge's verdict from its answer, ``{"pass": bool, "reason": str}``; failed with a sentence when unreadable."""
    text = _unfenced(reply_text or "")
    value, error = _load_json(text)
    if error:
        return CheckOutcome("llm_judge", False, f'The judge\'s answer was not {{"pass", "reason"}} JSON: {error}.')
    if not isinstance(value, dict) or not isinstance(value.get("pass"), bool):
        return CheckOutcome("llm_judge", False, 'The judge\'s answer had no "pass": true or false.')
    reason = value.get("reason")
    reason = reason.strip() if isinstance(reason, str) and reason.strip() else "(the judge gave no reason)"
    return CheckOutcome("llm_judge", value["pass"], _cut(reason, MAX_JUDGE_REASON_CHARS))


def _expected_text(expected: object | None) -> str:
    if expected is None:
        return "(no expected output)"
    if isinstance(expected, str):
        return expected
    return json.dumps(expected, ensure_ascii=False, indent=2)


# --- JSON paths: $, .name, [index], ['quoted name'] ----------------------------------------------

_PATH_STEP = re.compile(
    r"""\.(?P<name>[^\W\d][\w-]*)"""
    r"""|\[\s*(?P<index>-?\d{1,9})\s*\]"""
    r"""|\[\s*'(?P<single>(?:[^'\\]|\\.)*)'\s*\]"""
    r"""|\[\s*"(?P<double>(?:[^"\\]|\\.)*)"\s*\]"""
)
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


def parse_json_path(path: str) -> tuple[list[str | int], str | None]:
    """The steps of a JSON path (``$.intent``, ``$.items[0].name``, ``$['a b']``), and None; or ([], a sentence)."""
    if len(path) > MAX_PATH_CHARS:
        return [], f"is {len(path):,} characters; the limit is {MAX_PATH_CHARS:,}."
    if not path.startswith("$"):
        return [], f'{_shown(path)} must start with "$", as in "$.intent".'
    steps: list[str | int] = []
    position = 1
    while position < len(path):
        match = _PATH_STEP.match(path, position)
        if match is None:
            return [], (
                f"{_shown(path)} is not a JSON path this check reads: at character {position + 1} expected "
                f".name, [index] or ['name']."
            )
        if match.group("name") is not None:
            steps.append(match.group("name"))
        elif match.group("index") is not None:
            steps.append(int(match.group("index")))
        else:
            quoted = match.group("single") if match.group("single") is not None else match.group("double")
            steps.append(_ESCAPE.sub(r"\1", quoted))
        position = match.end()
    return steps, None


def read_json_path(document: object, steps: Sequence[str | int]) -> tuple[bool, object]:
    """(True, the value) at ``steps`` in a JSON document, or (False, None) when something on the way is missing."""
    value = document
    for step in steps:
        if isinstance(step, int):
            if not isinstance(value, list) or not -len(value) <= step < len(value):
                return False, None
            value = value[step]
        else:
            if not isinstance(value, dict) or step not in value:
                return False, None
            value = value[step]
    return True, value


# --- helpers ------------------------------------------------------------------------------------

_NOT_JSON = object()


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _load_json(text: str) -> tuple[object, str | None]:
    """(the value, None) of a JSON text, or (_NOT_JSON, a short reason)."""
    try:
        return json.loads(text, parse_constant=_refuse_constant), None
    except json.JSONDecodeError as error:
        return _NOT_JSON, f"{error.msg} at line {error.lineno}, column {error.colno}"
    except RecursionError:
        return _NOT_JSON, "it is nested too deeply"
    except ValueError as error:  # NaN, Infinity, an integer of more than 4,300 digits
        return _NOT_JSON, _cut(str(error), 120)


def _fence_hint(text: str) -> str:
    return " (it is inside a ``` code fence)" if text.strip().startswith("```") else ""


def _unfenced(text: str) -> str:
    """A judge's answer without the Markdown code fence some models put around JSON."""
    stripped = text.strip()
    if stripped.startswith("```") and stripped.endswith("```") and len(stripped) >= 6:
        body = stripped[3:-3]
        first_line, _, rest = body.partition("\n")
        return rest if first_line.strip().isalpha() or not first_line.strip() else body
    return stripped


def _same(a, b) -> bool:
    """JSON equality: 1 equals 1.0, but true is not 1 and "1" is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[key], b[key]) for key in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def _difference(got, want, path: list[str | int], subset: bool) -> str | None:
    """None if ``got`` equals ``want`` (or, with ``subset``, has at least what every object of ``want`` has); else where not."""
    if isinstance(got, dict) and isinstance(want, dict):
        for key, value in want.items():
            if key not in got:
                return f"{_path_text(path + [key])} is missing, expected {_shown(value)}"
            difference = _difference(got[key], value, path + [key], subset)
            if difference:
                return difference
        extra = [key for key in got if key not in want]
        if extra and not subset:
            return f"unexpected {_path_text(path + [extra[0]])}"
        return None
    if isinstance(got, list) and isinstance(want, list):
        if len(got) != len(want):
            return f"{_path_text(path)} has {len(got)} items, expected {len(want)}"
        for index, (item, wanted) in enumerate(zip(got, want)):
            difference = _difference(item, wanted, path + [index], subset)
            if difference:
                return difference
        return None
    if _same(got, want):
        return None
    return f"{_path_text(path)} is {_shown(got)}, expected {_shown(want)}"


_IDENTIFIER = re.compile(r"^[^\W\d][\w-]*$")


def _path_text(steps: Sequence[str | int]) -> str:
    text = "$"
    for step in steps:
        if isinstance(step, int):
            text += f"[{step}]"
        elif _IDENTIFIER.match(step):
            text += f".{step}"
        else:
            text += "[" + repr(step) + "]"
    return text


def _shown(value, limit: int = SHOWN_CHARS) -> str:
    """A value as a reason quotes it: JSON, cut to ``limit`` characters."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except RecursionError:
        text = "(a value nested too deeply to show)"
    except (TypeError, ValueError):
        text = _cut(repr(value), limit)
    return _cut(text, limit)


def _cut(text: str, limit: int = SHOWN_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _number(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) or not float(value).is_integer() else f"{int(value):,}"


def _usd(value: float) -> str:
    if value == 0:
        return "$0"
    text = f"{value:,.6f}".rstrip("0").rstrip(".")
    return f"${text}" if text != "0" else "under $0.000001"


def _compile(pattern: str) -> tuple[re.Pattern | None, str | None]:
    try:
        return re.compile(pattern), None
    except re.error as error:
        return None, str(error)
    except (RecursionError, OverflowError, ValueError, MemoryError) as error:
        return None, f"it is too complex ({type(error).__name__})"


class _OutOfTime(Exception):
    """A regular expression search ran past ``REGEX_TIME_LIMIT``."""


def _out_of_time(signum, frame):
    raise _OutOfTime


def _bounded_search(compiled: re.Pattern, text: str) -> re.Match | None:
    """``compiled.search(text)``, stopped after ``REGEX_TIME_LIMIT`` s of CPU when a timer can be set (main thread)."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        return compiled.search(text)
    previous = signal.getsignal(signal.SIGPROF)
    if previous is None:  # a handler set outside Python: leave it alone
        return compiled.search(text)
    signal.signal(signal.SIGPROF, _out_of_time)
    running = (0.0, 0.0)
    try:
        running = signal.setitimer(signal.ITIMER_PROF, REGEX_TIME_LIMIT)
        try:
            return compiled.search(text)
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0)
    finally:
        signal.signal(signal.SIGPROF, previous)
        if running[0] > 0:  # someone else's timer (a profiler): give it back
            signal.setitimer(signal.ITIMER_PROF, *running)
