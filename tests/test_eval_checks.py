"""The checks of a test case (issue 19): every type passing and failing with its reason, malformed
checks refused with a sentence, hostile outputs answered with a sentence, fast. Pure unit tests."""

import json
import signal
import threading
import time

import pytest

from prompt_tracker.domain.checks import (
    CHECK_TYPES,
    JUDGE_SCHEMA,
    CheckOutcome,
    Observed,
    check_problem,
    checks_problem,
    judge_messages,
    judge_outcome,
    parse_json_path,
    passed,
    read_json_path,
    run_check,
    run_checks,
)

REPLY = json.dumps({"intent": "billing", "items": [{"name": "lamp", "price": 12.5}], "a b": True, "n": 3})
WEATHER_CALL = {"id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris", "unit": "celsius"}'}
SCHEMA = {"type": "object", "properties": {"intent": {"enum": ["billing", "refund"]}}, "required": ["intent"]}


def outcome(check: dict, output: str = REPLY, **observed) -> CheckOutcome:
    return run_check(check, Observed(output=output, **observed))


# --- every type, passing and failing, with its reason -------------------------------------------

PASSING = [
    ({"type": "equals", "value": "  Hello world  "}, "Hello world\n", {}, "equals the expected text"),
    ({"type": "equals", "value": '{"b": 1, "a": [1, 2]}'}, '{"a": [1, 2.0], "b": 1}', {}, "equals the expected JSON"),
    ({"type": "equals", "value": {"a": 1}}, ' {"a": 1} ', {}, "equals the expected JSON"),
    ({"type": "contains", "value": "refund"}, "You get a refund.", {}, 'contains "refund"'),
    (
        {"type": "contains", "value": "REFUND", "case_sensitive": False},
        "a Refund",
        {},
        'contains "REFUND" (any case)',
    ),
    ({"type": "not_contains", "value": "sorry"}, "Here you go.", {}, 'does not contain "sorry"'),
    ({"type": "regex", "pattern": r"order #\d+"}, "Your order #123 ships.", {}, 'matches /order #\\d+/: "order #123"'),
    ({"type": "is_json"}, REPLY, {}, "is valid JSON"),
    ({"type": "json_schema", "schema": SCHEMA}, REPLY, {}, "matches the schema"),
    ({"type": "json_schema"}, REPLY, {"schema": SCHEMA}, "matches the schema"),
    ({"type": "json_path", "path": "$.intent", "equals": "billing"}, REPLY, {}, '$.intent is "billing"'),
    ({"type": "json_path", "path": "$.items[0].name", "contains": "am"}, REPLY, {}, '$.items[0].name contains "am"'),
    ({"type": "json_path", "path": "$['a b']", "exists": True}, REPLY, {}, "$['a b'] exists"),
    ({"type": "json_path", "path": "$.missing", "exists": False}, REPLY, {}, "$.missing does not exist"),
    ({"type": "json_path", "path": "$.items[-1].price", "equals": 12.5}, REPLY, {}, "$.items[-1].price is 12.5"),
    ({"type": "tool_called", "name": "get_weather"}, "", {"tool_calls": (WEATHER_CALL,)}, "called get_weather"),
    (
        {"type": "tool_called", "name": "get_weather", "arguments": {"city": "Paris"}},
        "",
        {"tool_calls": (WEATHER_CALL,)},
        "called get_weather with the expected arguments",
    ),
    ({"type": "max_latency_ms", "value": 1000}, "ok", {"latency_ms": 840}, "took 840 ms, limit 1,000 ms"),
    ({"type": "max_cost_usd", "value": 0.01}, "ok", {"cost_usd": 0.0012}, "cost $0.0012, limit $0.01"),
    ({"type": "max_cost_usd", "value": 0}, "ok", {"cost_usd": 0.0}, "cost $0, limit $0"),
]

FAILING = [
    ({"type": "equals", "value": "Hello world"}, "Hello there", {}, 'differs at character 7: "Hello there" ≠ expected'),
    ({"type": "equals", "value": '{"a": 1}'}, '{"a": 2}', {}, "$.a is 2, expected 1"),
    ({"type": "equals", "value": {"a": True}}, '{"a": 1}', {}, "$.a is 1, expected true"),
    ({"type": "equals", "value": {"a": 1}}, '{"a": 1, "b": 2}', {}, "unexpected $.b"),
    ({"type": "equals", "value": [1, 2]}, "one, two", {}, "is not JSON (Expecting value at line 1, column 1)"),
    ({"type": "contains", "value": "refund"}, "No.", {}, 'missing "refund"'),
    ({"type": "contains", "value": "REFUND"}, "a refund", {}, 'missing "REFUND"'),
    ({"type": "not_contains", "value": "sorry"}, "I am sorry.", {}, 'contains "sorry" at character 6'),
    ({"type": "regex", "pattern": r"order #\d+"}, "No order.", {}, "no match for /order #\\d+/"),
    ({"type": "is_json"}, "{'a': 1}", {}, "is not JSON: Expecting property name enclosed in double quotes"),
    ({"type": "is_json"}, '```json\n{"a": 1}\n```', {}, "(it is inside a ``` code fence)"),
    ({"type": "is_json"}, "NaN", {}, "is not JSON: NaN is not JSON"),
    (
        {"type": "json_schema", "schema": SCHEMA},
        '{"intent": "other"}',
        {},
        "does not match the schema: $.intent: 'other'",
    ),
    ({"type": "json_schema"}, REPLY, {}, "no schema to check against"),
    ({"type": "json_schema", "schema": SCHEMA}, "not json", {}, "is not JSON: Expecting value"),
    (
        {"type": "json_path", "path": "$.intent", "equals": "refund"},
        REPLY,
        {},
        '$.intent is "billing", expected "refund"',
    ),
    ({"type": "json_path", "path": "$.nope", "equals": "x"}, REPLY, {}, '$.nope does not exist, expected "x"'),
    ({"type": "json_path", "path": "$.items[5]", "exists": True}, REPLY, {}, "$.items[5] does not exist"),
    ({"type": "json_path", "path": "$.intent", "exists": False}, REPLY, {}, "$.intent exists"),
    ({"type": "json_path", "path": "$.n", "contains": 3}, REPLY, {}, "$.n is 3: not a text or an array"),
    ({"type": "json_path", "path": "$.items", "contains": "lamp"}, REPLY, {}, '$.items does not contain "lamp"'),
    ({"type": "json_path", "path": "$.a", "exists": True}, "plain text", {}, "is not JSON, so $.a cannot be read"),
    ({"type": "tool_called", "name": "get_weather"}, "text", {}, "no tool was called, expected get_weather"),
    (
        {"type": "tool_called", "name": "get_time"},
        "",
        {"tool_calls": (WEATHER_CALL,)},
        "get_time was not called (called: get_weather)",
    ),
    (
        {"type": "tool_called", "name": "get_weather", "arguments": {"city": "Rome"}},
        "",
        {"tool_calls": (WEATHER_CALL,)},
        'arguments differ: city is "Paris", expected "Rome"',
    ),
    (
        {"type": "tool_called", "name": "get_weather", "arguments": {"days": 3}},
        "",
        {"tool_calls": (WEATHER_CALL,)},
        "arguments differ: days is missing, expected 3",
    ),
    (
        {"type": "tool_called", "name": "get_weather", "arguments": {"city": "Paris"}},
        "",
        {"tool_calls": ({"id": "c", "name": "get_weather", "arguments": "{not json"},)},
        "get_weather's arguments are not JSON",
    ),
    ({"type": "max_latency_ms", "value": 1000}, "ok", {"latency_ms": 1240}, "took 1,240 ms, limit 1,000 ms"),
    ({"type": "max_latency_ms", "value": 1000}, "ok", {}, "no latency was recorded"),
    ({"type": "max_cost_usd", "value": 0.001}, "ok", {"cost_usd": 0.0025}, "cost $0.0025, limit $0.001"),
    ({"type": "max_cost_usd", "value": 0.001}, "ok", {}, "no cost was recorded"),
    ({"type": "llm_judge", "rubric": "Polite."}, "ok", {}, "No judge available."),
]


@pytest.mark.parametrize(("check", "output", "observed", "reason"), PASSING)
def test_each_check_type_passes_with_its_reason(check, output, observed, reason):
    result = outcome(check, output, **observed)
    assert result == CheckOutcome(check["type"], True, reason)


@pytest.mark.parametrize(("check", "output", "observed", "reason"), FAILING)
def test_each_check_type_fails_with_its_reason(check, output, observed, reason):
    result = outcome(check, output, **observed)
    assert result.type == check["type"]
    assert result.passed is False
    assert reason in result.reason


def test_every_type_is_exercised_both_ways():
    assert {check["type"] for check, *_ in PASSING} | {"llm_judge"} == set(CHECK_TYPES)
    assert {check["type"] for check, *_ in FAILING} == set(CHECK_TYPES)


def test_tool_called_passes_when_any_call_of_that_name_matches():
    calls = (
        {"id": "1", "name": "get_weather", "arguments": '{"city": "Rome"}'},
        {"id": "2", "name": "get_weather", "arguments": '{"city": "Paris", "days": [1, {"x": 2}]}'},
    )
    check = {"type": "tool_called", "name": "get_weather", "arguments": {"city": "Paris", "days": [1, {}]}}
    assert outcome(check, "", tool_calls=calls).passed
    # The first difference is the one told when none matches.
    check["arguments"] = {"city": "Oslo"}
    assert outcome(check, "", tool_calls=calls).reason == 'arguments differ: city is "Rome", expected "Oslo"'


def test_the_outcome_is_what_a_result_row_stores():
    assert outcome({"type": "contains", "value": "a"}, "a").to_dict() == {
        "type": "contains",
        "passed": True,
        "reason": 'contains "a"',
    }


# --- run_checks, passed, errors -----------------------------------------------------------------


def test_a_reply_that_errored_passes_nothing():
    observed = Observed(output="", error="The provider answered 500.")
    checks = [{"type": "not_contains", "value": "x"}, {"type": "llm_judge", "rubric": "Good."}]
    calls = []
    outcomes = run_checks(checks, observed, judge=lambda check: calls.append(check))
    assert [(o.passed, o.reason) for o in outcomes] == [(False, "The provider answered 500.")] * 2
    assert calls == []  # no judge call for a reply that failed
    assert not passed(outcomes, observed)
    assert not passed([], observed)


def test_no_checks_passes_when_the_reply_finished_without_error():
    assert passed(run_checks([], Observed(output="anything")), Observed(output="anything"))


def test_llm_judge_checks_go_to_the_judge_and_the_others_run_here():
    judged = []

    def judge(check):
        judged.append(check)
        return CheckOutcome("llm_judge", True, "polite")

    checks = [{"type": "contains", "value": "hi"}, {"type": "llm_judge", "rubric": "Polite."}]
    outcomes = run_checks(checks, Observed(output="hi there"), judge=judge)
    assert outcomes == [CheckOutcome("contains", True, 'contains "hi"'), CheckOutcome("llm_judge", True, "polite")]
    assert judged == [checks[1]]
    assert passed(outcomes, Observed(output="hi there"))
    # Without a judge, the judge check fails; one failed check fails the case.
    outcomes = run_checks(checks, Observed(output="hi there"))
    assert outcomes[1] == CheckOutcome("llm_judge", False, "No judge available.")
    assert not passed(outcomes, Observed(output="hi there"))


def test_a_malformed_check_fails_with_its_sentence_instead_of_raising():
    outcomes = run_checks([{"type": "contains"}, "nonsense", {"type": "llm_judge"}], Observed(output="x"))
    assert [o.passed for o in outcomes] == [False, False, False]
    assert outcomes[0].reason == 'The contains check needs a "value": a non-empty text.'
    assert outcomes[1].type == "?"
    assert outcomes[2].reason.startswith('The llm_judge check needs a "rubric"')


# --- malformed checks, refused with a sentence --------------------------------------------------

MALFORMED = [
    ("contains", 'A check must be a JSON object with a "type"'),
    ({}, 'A check needs a "type": one of equals, contains'),
    ({"type": "similar"}, 'The check type "similar" is unknown (known: equals,'),
    (
        {"type": "contains", "values": "x"},
        'The contains check has an unknown key "values" (known: value, case_sensitive).',
    ),
    (
        {"type": "is_json", "strict": True},
        'The is_json check has an unknown key "strict" (known: nothing besides type).',
    ),
    ({"type": "equals"}, 'The equals check needs a "value"'),
    ({"type": "contains", "value": ""}, 'The contains check needs a "value": a non-empty text.'),
    ({"type": "not_contains", "value": 3}, 'The not_contains check needs a "value": a non-empty text.'),
    (
        {"type": "contains", "value": "x" * 10_001},
        "The contains check's value is 10,001 characters; the limit is 10,000.",
    ),
    ({"type": "contains", "value": "x", "case_sensitive": "no"}, '"case_sensitive" must be true or false.'),
    ({"type": "regex"}, 'The regex check needs a "pattern"'),
    ({"type": "regex", "pattern": "(unclosed"}, "The regex check's pattern does not compile: missing ), unterminated"),
    ({"type": "regex", "pattern": "x" * 1001}, "The regex check's pattern is 1,001 characters; the limit is 1,000."),
    ({"type": "json_schema", "schema": {"type": "strng"}}, "The json_schema check's schema is not a valid JSON Schema"),
    ({"type": "json_schema", "schema": "object"}, "The json_schema check's schema must be a JSON object"),
    ({"type": "json_path", "equals": 1}, 'The json_path check needs a "path"'),
    ({"type": "json_path", "path": "intent", "equals": 1}, 'path "intent" must start with "$"'),
    ({"type": "json_path", "path": "$..intent", "equals": 1}, "at character 2 expected .name, [index] or ['name']."),
    ({"type": "json_path", "path": "$.items[0", "equals": 1}, "is not a JSON path this check reads"),
    ({"type": "json_path", "path": "$.a"}, 'needs exactly one of "equals", "contains" or "exists"'),
    ({"type": "json_path", "path": "$.a", "equals": 1, "exists": True}, "needs exactly one of"),
    ({"type": "json_path", "path": "$.a", "exists": "yes"}, '"exists" must be true or false.'),
    ({"type": "tool_called"}, 'The tool_called check needs a "name"'),
    ({"type": "tool_called", "name": "f", "arguments": "[1]"}, '"arguments" must be a JSON object'),
    ({"type": "max_latency_ms", "value": "1000"}, 'The max_latency_ms check needs a "value": a number, 0 or more.'),
    ({"type": "max_latency_ms", "value": -1}, "a number, 0 or more"),
    ({"type": "max_cost_usd", "value": True}, "a number, 0 or more"),
    ({"type": "max_cost_usd", "value": float("nan")}, "a number, 0 or more"),
    ({"type": "llm_judge", "rubric": "  "}, 'The llm_judge check needs a "rubric"'),
    ({"type": "llm_judge", "rubric": "ok", "model": 4}, '"model" must be a model name, or "provider:model".'),
]


@pytest.mark.parametrize(("check", "sentence"), MALFORMED)
def test_a_malformed_check_is_refused_with_a_sentence(check, sentence):
    problem = check_problem(check)
    assert problem is not None and sentence in problem
    assert problem.endswith(".")


def test_well_formed_checks_have_no_problem():
    checks = [check for check, *_ in PASSING + FAILING]
    assert [check_problem(check) for check in checks] == [None] * len(checks)
    assert checks_problem(checks[:50]) is None
    assert check_problem({"type": "llm_judge", "rubric": "Polite.", "model": "openai:gpt-4o-mini"}) is None


def test_the_list_of_checks_names_the_bad_one():
    assert checks_problem({"type": "is_json"}).startswith("Checks must be a JSON array")
    assert checks_problem([{"type": "is_json"}] * 51) == "Up to 50 checks per case; this has 51."
    assert checks_problem([{"type": "is_json"}, {"type": "is_json"}, {"type": "contains"}]) == (
        'Check 3: the contains check needs a "value": a non-empty text.'
    )
    assert checks_problem([]) is None


def test_json_paths_parse_and_read_the_subset():
    steps, problem = parse_json_path('$.items[0][\'a b\']["c\\"d"].name_2[-1]')
    assert problem is None
    assert steps == ["items", 0, "a b", 'c"d', "name_2", -1]
    assert parse_json_path("$") == ([], None)
    document = {"items": [{"a b": {'c"d': {"name_2": [1, 2]}}}]}
    assert read_json_path(document, steps) == (True, 2)
    assert read_json_path(document, ["items", 3]) == (False, None)
    assert read_json_path(document, ["items", "0"]) == (False, None)
    assert read_json_path([1], ["x"]) == (False, None)
    assert read_json_path(None, []) == (True, None)


# --- hostile input: a sentence, fast ------------------------------------------------------------


def test_a_catastrophic_pattern_is_stopped_with_a_sentence():
    started = time.monotonic()
    result = outcome({"type": "regex", "pattern": r"(a+)+$"}, "a" * 60 + "b")
    assert not result.passed
    assert result.reason == "/(a+)+$/ took over 0.25 s on this output: simplify the pattern"
    result = outcome({"type": "regex", "pattern": r"a*a*c"}, "a" * 50_000)
    assert "took over 0.25 s" in result.reason
    assert time.monotonic() - started < 10  # unbounded, these run for hours


def test_the_regex_timer_leaves_the_previous_sigprof_handler_in_place():
    def mine(signum, frame):
        pass

    previous = signal.signal(signal.SIGPROF, mine)
    try:
        assert outcome({"type": "regex", "pattern": "x"}, "x").passed
        assert signal.getsignal(signal.SIGPROF) is mine
        assert signal.getitimer(signal.ITIMER_PROF) == (0.0, 0.0)
        # A profiler's running timer is given back.
        signal.setitimer(signal.ITIMER_PROF, 100.0)
        assert outcome({"type": "regex", "pattern": "x"}, "x").passed
        assert signal.getsignal(signal.SIGPROF) is mine
        assert 99 < signal.getitimer(signal.ITIMER_PROF)[0] < 101
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


def test_off_the_main_thread_a_regex_check_still_runs():
    results = []
    thread = threading.Thread(target=lambda: results.append(outcome({"type": "regex", "pattern": "o+"}, "foo")))
    thread.start()
    thread.join()
    assert results == [CheckOutcome("regex", True, 'matches /o+/: "oo"')]


def test_a_huge_output_gets_a_sentence():
    huge = "x" * 2_000_000
    result = outcome({"type": "regex", "pattern": "y"}, huge)
    assert result.reason == "the output is 2,000,000 characters, over the 100,000 a pattern is searched in"
    assert outcome({"type": "contains", "value": "y"}, huge).reason == 'missing "y"'
    assert outcome({"type": "is_json"}, huge).reason.startswith("is not JSON: Expecting value")
    assert outcome({"type": "equals", "value": "x"}, huge).reason.startswith('differs at character 2: "xx')


def test_deeply_nested_json_gets_a_sentence():
    deep = "[" * 100_000 + "]" * 100_000
    for check in (
        {"type": "is_json"},
        {"type": "equals", "value": [1]},
        {"type": "json_path", "path": "$[0]", "exists": True},
        {"type": "json_schema", "schema": {"type": "array"}},
    ):
        result = outcome(check, deep)
        assert not result.passed
        assert "nested too deeply" in result.reason
    # Deep, but within what the parser takes: still an answer, not a traceback.
    almost = "[" * 900 + "]" * 900
    assert outcome({"type": "equals", "value": almost}, almost).passed
    result = outcome({"type": "json_schema", "schema": {"type": "array", "items": {"$ref": "#"}}}, almost)
    assert result.type == "json_schema"
    tool_call = {"id": "c", "name": "f", "arguments": deep}
    result = outcome({"type": "tool_called", "name": "f", "arguments": {"a": 1}}, "", tool_calls=(tool_call,))
    assert "f's arguments are not JSON: it is nested too deeply" in result.reason


def test_a_deeply_nested_check_is_refused_with_a_sentence():
    value = []
    for _ in range(100_000):
        value = [value]
    assert check_problem({"type": "json_schema", "schema": {"items": value}}) is not None
    assert outcome({"type": "equals", "value": value}, "[]").passed is False


def test_a_huge_number_gets_a_sentence():
    result = outcome({"type": "is_json"}, "1" * 5000)
    assert not result.passed and result.reason.startswith("is not JSON: Exceeds the limit")


def test_tool_calls_of_odd_shapes_are_read_without_raising():
    calls = ("nonsense", {"name": "f"}, {"name": "f", "arguments": {"a": 1}}, {"name": "f", "arguments": None})
    assert outcome({"type": "tool_called", "name": "f", "arguments": {"a": 1}}, "", tool_calls=calls).passed
    assert outcome({"type": "tool_called", "name": "f"}, "", tool_calls=calls).passed


# --- the judge ----------------------------------------------------------------------------------


def test_judge_messages_fill_exactly_the_three_placeholders():
    check = {"type": "llm_judge", "rubric": "Q: {{input}} A: {{ output }} E: {{  expected }} {{ other }}"}
    system, user = judge_messages(check, input_text="{{ output }}", output="Paris", expected={"city": "Paris"})
    assert '"pass"' in system and '"reason"' in system
    # A filled value is not read again as a placeholder; another name stays as written.
    assert user == 'Q: {{ output }} A: Paris E: {\n  "city": "Paris"\n} {{ other }}'


def test_a_rubric_that_does_not_quote_the_output_is_followed_by_it():
    _, user = judge_messages({"rubric": "Is it polite?"}, input_text="hi", output="hello", expected=None)
    assert user == "Is it polite?\n\n<input>\nhi\n</input>\n\n<output>\nhello\n</output>"
    _, user = judge_messages({"rubric": "Like {{ expected }}?"}, input_text="hi", output="hello", expected="hey")
    assert user.endswith("<output>\nhello\n</output>\n\n<expected>\nhey\n</expected>")
    assert user.startswith("Like hey?")


def test_judge_outcome_reads_the_structured_answer():
    assert judge_outcome('{"pass": true, "reason": "It is polite."}') == CheckOutcome(
        "llm_judge", True, "It is polite."
    )
    assert judge_outcome('```json\n{"pass": false, "reason": "Rude."}\n```') == CheckOutcome(
        "llm_judge", False, "Rude."
    )
    assert judge_outcome('{"pass": true, "reason": ""}').reason == "(the judge gave no reason)"
    assert len(judge_outcome(json.dumps({"pass": True, "reason": "x" * 5000})).reason) == 500


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("I think it passes.", 'The judge\'s answer was not {"pass", "reason"} JSON: Expecting value'),
        ('{"pass": "yes", "reason": "ok"}', 'The judge\'s answer had no "pass": true or false.'),
        ("[true]", 'The judge\'s answer had no "pass": true or false.'),
        ("", 'The judge\'s answer was not {"pass", "reason"} JSON'),
        ("[" * 100_000, "nested too deeply"),
    ],
)
def test_an_unreadable_judge_answer_fails_with_a_sentence(answer, reason):
    result = judge_outcome(answer)
    assert result.type == "llm_judge" and not result.passed
    assert reason in result.reason


def test_the_judge_schema_is_the_structured_output_asked_for():
    assert JUDGE_SCHEMA["required"] == ["pass", "reason"]
    assert JUDGE_SCHEMA["additionalProperties"] is False
