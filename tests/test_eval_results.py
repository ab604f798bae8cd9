"""A run's results as people read them (issue 19): the summary, pass^k and flips, the comparison
with a baseline run, the CSV / JSON export. Pure unit tests over unsaved ``EvalResult`` rows."""

import csv
import io
import json
from datetime import date

from prompt_tracker.domain.text_diff import Piece
from prompt_tracker.evals.models import EvalResult
from prompt_tracker.evals.results import (
    CaseChange,
    RunSummary,
    case_rows,
    change_counts,
    compare,
    export_rows,
    percentile,
    summarize,
    to_csv,
    to_json,
)


def result(name, repetition=1, status="passed", *, case_id=None, output="", latency_ms=None, cost_usd=None, **more):
    """An unsaved result row (no database needed); ``case_id`` defaults to one per name."""
    case_id = case_id if case_id is not None else (None if name.startswith("deleted") else sum(map(ord, name)))
    return EvalResult(
        case_id=case_id,
        case_name=name,
        case_hash=f"hash-{name}",
        repetition=repetition,
        status=status,
        output=output,
        latency_ms=latency_ms,
        cost_usd=cost_usd,
        passed={"passed": True, "failed": False, "error": False}.get(status),
        **more,
    )


def statuses(name, *values, **more):
    return [result(name, number, status, **more) for number, status in enumerate(values, start=1)]


# --- the summary ---------------------------------------------------------------------------------


def test_summary_counts_rate_cost_and_percentiles():
    results = [
        result("a", 1, "passed", latency_ms=100, cost_usd=0.001),
        result("a", 2, "failed", latency_ms=300, cost_usd=0.002),
        result("b", 1, "error", latency_ms=200, cost_usd=None),
        result("b", 2, "passed", latency_ms=400, cost_usd=0.0005),
        result("c", 1, "queued"),
        result("c", 2, "running"),
        result("d", 1, "stopped", cost_usd=0.0001),
    ]
    summary = summarize(results)
    assert summary == RunSummary(
        cases=4,
        results=7,
        passed=2,
        failed=1,
        errored=1,
        pending=2,
        pass_rate=0.5,  # 2 of the 4 finished: pending and stopped results are not in the rate
        cost_usd=0.0036,
        p50_ms=200,
        p95_ms=400,
        stopped=1,
    )
    assert summary.to_dict()["pass_rate"] == 0.5
    assert json.loads(json.dumps(summary.to_dict()))["cases"] == 4


def test_summary_of_nothing_finished_has_no_rate_and_no_latency():
    assert summarize([]) == RunSummary(0, 0, 0, 0, 0, 0, None, 0.0, None, None)
    summary = summarize([result("a", 1, "queued", latency_ms=5)])
    assert (summary.pending, summary.pass_rate, summary.p50_ms) == (1, None, None)


def test_percentiles_are_nearest_rank():
    values = list(range(1, 101))  # 1..100
    assert (percentile(values, 50), percentile(values, 95), percentile(values, 100)) == (50, 95, 100)
    assert (percentile([7], 50), percentile([7], 95)) == (7, 7)
    assert (percentile([10, 20], 50), percentile([10, 20], 95)) == (10, 20)
    assert percentile([], 50) is None


# --- case rows: pass^k and flips ---------------------------------------------------------------


def test_case_rows_give_passes_pass_k_and_flips_by_case_name():
    results = [
        *statuses("b-flips", "failed", "passed", "passed"),
        *statuses("a-steady", "passed", "passed", "passed"),
        *statuses("c-never", "failed", "error", "failed"),
        *statuses("d-half-done", "passed", "running"),
    ]
    results.reverse()  # the rows order results by repetition themselves
    rows = {row.name: row for row in case_rows(results, repeat=3)}
    assert list(rows) == ["a-steady", "b-flips", "c-never", "d-half-done"]
    steady, flips, never, half = rows.values()
    assert [r.repetition for r in flips.results] == [1, 2, 3]
    assert (steady.passes, steady.repeat, steady.pass_k, steady.flips, steady.finished) == (3, 3, True, False, True)
    assert (flips.passes, flips.pass_k, flips.flips) == (2, False, True)
    assert (never.passes, never.pass_k, never.flips) == (0, False, False)
    assert (half.passes, half.pass_k, half.flips, half.finished) == (1, False, False, False)


def test_a_deleted_case_is_grouped_by_name_and_two_cases_by_id():
    results = [
        result("deleted", 1),
        result("deleted", 2, "failed"),
        result("same name", 1, case_id=1),
        result("same name", 1, "failed", case_id=2),
    ]
    rows = case_rows(results, repeat=2)
    assert [(row.name, row.case_id, len(row.results)) for row in rows] == [
        ("deleted", None, 2),
        ("same name", 1, 1),
        ("same name", 2, 1),
    ]
    assert rows[0].flips and not rows[1].pass_k  # one of two repetitions is no pass^k
    # Without the run's repeat, the highest repetition of the run's results stands for it.
    assert [row.repeat for row in case_rows(results)] == [2, 2, 2]
    assert compare(results, results)[0].change == "same"


# --- against a baseline --------------------------------------------------------------------------


def test_compare_marks_regression_fix_same_new_and_removed():
    baseline = [
        *statuses("regressed", "passed", output="The refund is on its way."),
        *statuses("fixed", "failed", output="No."),
        *statuses("steady", "passed", output="ok"),
        *statuses("still failing", "failed"),
        *statuses("dropped", "passed"),
    ]
    run = [
        *statuses("regressed", "passed", "failed", output="The refund is late."),
        *statuses("fixed", "passed", "passed", output="Yes."),
        *statuses("steady", "passed", "passed", output="ok"),
        *statuses("still failing", "passed", "failed"),
        *statuses("added", "passed", "passed"),
    ]
    changes = compare(baseline, run, baseline_repeat=1, repeat=2)
    assert [(change.name, change.change) for change in changes] == [
        ("added", "new"),
        ("dropped", "removed"),
        ("fixed", "fix"),
        ("regressed", "regression"),
        ("steady", "same"),
        ("still failing", "same"),
    ]
    by_name = {change.name: change for change in changes}
    assert by_name["regressed"].diff == [
        Piece("same", "The refund is "),
        Piece("removed", "on its way"),
        Piece("added", "late"),
        Piece("same", "."),
    ]
    assert by_name["steady"].diff == [Piece("same", "ok")]
    assert by_name["added"].before is None and by_name["added"].diff == []
    assert by_name["dropped"].after is None and by_name["dropped"].before.pass_k
    assert by_name["regressed"].after.flips
    assert change_counts(changes) == {"regression": 1, "fix": 1, "same": 2, "new": 1, "removed": 1}
    assert all(change.diff == [] for change in compare(baseline, run, 1, 2, diffs=False))


def test_compare_matches_by_id_when_both_have_one_else_by_name():
    baseline = [
        result("old name", case_id=7, output="a"),  # renamed since: same id
        result("deleted", status="failed"),  # no id any more: matched by name
        result("recreated", case_id=8),  # deleted and added again: a new id
    ]
    run = [
        result("new name", case_id=7, status="failed", output="b"),
        result("deleted", case_id=9),
        result("recreated", case_id=10),
    ]
    changes = compare(baseline, run, 1, 1)
    assert [(change.name, change.change) for change in changes] == [
        ("deleted", "fix"),
        ("new name", "regression"),
        ("recreated", "new"),
        ("recreated", "removed"),
    ]
    assert changes[1].before.name == "old name"


def test_change_counts_name_every_kind():
    assert change_counts([]) == {"regression": 0, "fix": 0, "same": 0, "new": 0, "removed": 0}
    assert change_counts([CaseChange("a", "fix", None, None)])["fix"] == 1


# --- export --------------------------------------------------------------------------------------


def test_export_rows_have_the_columns_and_one_per_check():
    results = [
        result(
            "b",
            1,
            "failed",
            output="x",
            latency_ms=120,
            cost_usd=0.002,
            usage={"input_tokens": 10, "output_tokens": 4},
            check_results=[
                {"type": "contains", "passed": True, "reason": 'contains "x"'},
                {"type": "regex", "passed": False, "reason": "no match for /y/"},
            ],
        ),
        result("a", 1, "error", error="The provider answered 500.", check_results=[]),
    ]
    rows = export_rows(results)
    assert [row["case"] for row in rows] == ["a", "b"]
    assert list(rows[1]) == [
        "case",
        "repetition",
        "status",
        "passed",
        "output",
        "latency_ms",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "error",
        "case_hash",
        "check:1:contains",
        "check:2:regex",
    ]
    assert rows[1]["check:1:contains"] == "pass"
    assert rows[1]["check:2:regex"] == "fail: no match for /y/"
    assert (rows[1]["input_tokens"], rows[1]["output_tokens"], rows[1]["passed"]) == (10, 4, False)
    assert (rows[0]["input_tokens"], rows[0]["error"]) == (None, "The provider answered 500.")


def test_csv_has_a_header_every_check_column_and_survives_hostile_text():
    hostile = 'line one\nline "two", with a comma\r\n=SUM(A1)'
    rows = export_rows(
        [
            result("a", 1, output=hostile, check_results=[{"type": "is_json", "passed": True, "reason": "ok"}]),
            result("b", 1, "failed", check_results=[{"type": "equals", "passed": False, "reason": "differs"}]),
        ]
    )
    text = to_csv(rows)
    parsed = list(csv.DictReader(io.StringIO(text, newline="")))
    assert list(parsed[0])[-2:] == ["check:1:is_json", "check:1:equals"]
    assert parsed[0]["output"] == hostile
    assert (parsed[0]["passed"], parsed[0]["check:1:is_json"], parsed[0]["check:1:equals"]) == ("true", "pass", "")
    assert (parsed[1]["passed"], parsed[1]["check:1:equals"], parsed[1]["latency_ms"]) == ("false", "fail: differs", "")
    assert to_csv([]).startswith("case,repetition,status,passed,output,")


def test_json_export_is_one_object_with_the_run_and_its_rows():
    rows = export_rows([result("a", 1, output="héllo")])
    text = to_json({"run": 3, "version": 2, "created_at": date(2026, 12, 1)}, rows)
    document = json.loads(text)
    assert document["run"] == {"run": 3, "version": 2, "created_at": "2026-12-01"}
    assert document["results"][0]["output"] == "héllo" and document["results"][0]["passed"] is True
