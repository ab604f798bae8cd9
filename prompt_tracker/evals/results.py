"""A run's results as people read them: the summary at the top, one row per case, the changes
against a baseline run, and the CSV / JSON export. Pure functions over result rows (``EvalResult``
objects, or anything with the same attributes): no query, no request.

A result is *finished* when its status is ``passed``, ``failed`` or ``error``; ``queued`` and
``running`` are *pending*; ``stopped`` is neither (a Stop ended it before it ran). Only finished
results count in the pass rate.
"""

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..domain.text_diff import Piece
from ..domain.text_diff import compare as compare_texts
from .models import EvalResult

__all__ = [
    "CHANGES",
    "CaseChange",
    "CaseRow",
    "RunSummary",
    "case_rows",
    "change_counts",
    "compare",
    "export_rows",
    "summarize",
    "to_csv",
    "to_json",
]

FINISHED = ("passed", "failed", "error")
PENDING = ("queued", "running")
CHANGES = ("regression", "fix", "same", "new", "removed")
EXPORT_COLUMNS = (
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
)


@dataclass
class RunSummary:
    """The numbers at the top of a run's page (and in the CLI's JSON line).

    ``pass_rate`` is passed / finished (None before any result finished); ``cost_usd`` adds every
    result's cost; ``p50_ms`` / ``p95_ms`` are nearest-rank percentiles of the finished results'
    latencies. ``stopped`` results count in ``results`` only.
    """

    cases: int
    results: int
    passed: int
    failed: int
    errored: int
    pending: int
    pass_rate: float | None
    cost_usd: float
    p50_ms: int | None
    p95_ms: int | None
    stopped: int = 0

    def to_dict(self) -> dict:
        """The summary as one JSON object."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def summarize(results: Sequence[EvalResult]) -> RunSummary:
    """Counts, pass rate, cost and latency percentiles of a run's results (pending and stopped ones not in the rate)."""
    statuses = [result.status for result in results]
    passed = statuses.count("passed")
    failed = statuses.count("failed")
    errored = statuses.count("error")
    finished = passed + failed + errored
    latencies = sorted(
        result.latency_ms for result in results if result.status in FINISHED and result.latency_ms is not None
    )
    return RunSummary(
        cases=len({_case_key(result) for result in results}),
        results=len(results),
        passed=passed,
        failed=failed,
        errored=errored,
        pending=sum(1 for status in statuses if status in PENDING),
        pass_rate=passed / finished if finished else None,
        cost_usd=round(sum(result.cost_usd or 0.0 for result in results), 10),
        p50_ms=percentile(latencies, 50),
        p95_ms=percentile(latencies, 95),
        stopped=statuses.count("stopped"),
    )


def percentile(ordered: Sequence[int], percent: float) -> int | None:
    """The nearest-rank percentile of sorted values (None for none): the smallest value with ``percent`` % at or below it."""
    if not ordered:
        return None
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class CaseRow:
    """One case of a run: its results by repetition, the passes out of ``repeat``, pass^k and whether it flips.

    ``pass_k``: every one of the ``repeat`` repetitions passed. ``flips``: some passed, some failed
    or errored. ``finished``: no repetition is still queued or running.
    """

    name: str
    case_id: int | None
    results: list[EvalResult]
    passes: int
    repeat: int
    pass_k: bool
    flips: bool
    finished: bool = True


def case_rows(results: Iterable[EvalResult], repeat: int | None = None) -> list[CaseRow]:
    """The run's results grouped by case (its id, or its name once the case was deleted), ordered by case name.

    ``repeat`` is the run's; without it, the highest repetition among the results.
    """
    results = list(results)
    if repeat is None:
        repeat = max((result.repetition or 1 for result in results), default=1)
    groups: dict[tuple, list[EvalResult]] = {}
    for result in results:
        groups.setdefault(_case_key(result), []).append(result)
    rows = []
    for group in groups.values():
        group.sort(key=lambda result: result.repetition)
        passes = sum(1 for result in group if result.status == "passed")
        failures = sum(1 for result in group if result.status in ("failed", "error"))
        wanted = max(repeat, len(group), 1)
        rows.append(
            CaseRow(
                name=group[0].case_name,
                case_id=group[0].case_id,
                results=group,
                passes=passes,
                repeat=wanted,
                pass_k=passes == wanted,
                flips=passes > 0 and failures > 0,
                finished=not any(result.status in PENDING for result in group),
            )
        )
    rows.sort(key=lambda row: (row.name, row.case_id is None, row.case_id or 0))
    return rows


@dataclass
class CaseChange:
    """A case of a run against the baseline run: regression, fix, same, new (not in the baseline) or removed.

    ``diff`` is the word diff (the Replay diff's pieces) from the baseline's first repetition output
    to this run's; empty when either side is missing or the texts are too long to compare.
    """

    name: str
    change: str
    before: CaseRow | None
    after: CaseRow | None
    diff: list[Piece] = field(default_factory=list)


def compare(
    baseline_results: Iterable[EvalResult],
    results: Iterable[EvalResult],
    baseline_repeat: int | None = None,
    repeat: int | None = None,
    *,
    diffs: bool = True,
) -> list[CaseChange]:
    """Each case of two runs marked regression (pass^k before, not now), fix (the reverse), same, new or removed.

    Cases are matched by id when both sides have one, else by name (a deleted case's results keep
    only its name). Without the runs' ``repeat``, each is the highest repetition among its results
    (as ``case_rows`` does). ``diffs=False`` skips the word diffs (a count or a CLI line needs none).
    """
    before_rows = case_rows(baseline_results, baseline_repeat)
    after_rows = case_rows(results, repeat)
    matched: dict[int, CaseRow] = {}  # index in after_rows -> its baseline row
    unmatched_before = list(before_rows)
    by_id = {row.case_id: row for row in before_rows if row.case_id is not None}
    for index, row in enumerate(after_rows):
        if row.case_id is not None and row.case_id in by_id:
            matched[index] = by_id.pop(row.case_id)
            unmatched_before.remove(matched[index])
    for index, row in enumerate(after_rows):
        if index in matched:
            continue
        candidate = next(
            (
                before
                for before in unmatched_before
                if before.name == row.name and (before.case_id is None or row.case_id is None)
            ),
            None,
        )
        if candidate is not None:
            matched[index] = candidate
            unmatched_before.remove(candidate)
    changes = []
    for index, after in enumerate(after_rows):
        before = matched.get(index)
        if before is None:
            changes.append(CaseChange(after.name, "new", None, after))
            continue
        diff = _output_diff(before, after) if diffs else []
        changes.append(CaseChange(after.name, _change(before, after), before, after, diff))
    changes.extend(CaseChange(before.name, "removed", before, None) for before in unmatched_before)
    changes.sort(key=lambda change: (change.name, CHANGES.index(change.change)))
    return changes


def _change(before: CaseRow, after: CaseRow) -> str:
    if before.pass_k and not after.pass_k:
        return "regression"
    if after.pass_k and not before.pass_k:
        return "fix"
    return "same"


def _output_diff(before: CaseRow, after: CaseRow) -> list[Piece]:
    if not before.results or not after.results:
        return []
    return list(compare_texts(before.results[0].output or "", after.results[0].output or "").pieces)


def change_counts(changes: Iterable[CaseChange]) -> dict[str, int]:
    """How many cases of each kind of change (every kind present, zero included)."""
    counts = dict.fromkeys(CHANGES, 0)
    for change in changes:
        counts[change.change] += 1
    return counts


def export_rows(results: Iterable[EvalResult]) -> list[dict]:
    """One flat row per result, by case name and repetition, each check a column ``check:<n>:<type>`` ("pass" / "fail: reason")."""
    rows = []
    for result in sorted(results, key=lambda result: (result.case_name, result.repetition)):
        usage = result.usage if isinstance(result.usage, dict) else {}
        row = {
            "case": result.case_name,
            "repetition": result.repetition,
            "status": result.status,
            "passed": result.passed,
            "output": result.output,
            "latency_ms": result.latency_ms,
            "input_tokens": usage.get("input_tokens"),
            "output_tokens": usage.get("output_tokens"),
            "cost_usd": result.cost_usd,
            "error": result.error,
            "case_hash": result.case_hash,
        }
        for number, outcome in enumerate(result.check_results or [], start=1):
            if not isinstance(outcome, dict):
                continue
            verdict = "pass" if outcome.get("passed") else f"fail: {outcome.get('reason', '')}"
            row[f"check:{number}:{outcome.get('type', '?')}"] = verdict
        rows.append(row)
    return rows


def _columns(rows: Sequence[dict]) -> list[str]:
    """The export's columns: the fixed ones, then every check column in the order first met."""
    columns = dict.fromkeys(EXPORT_COLUMNS)
    for row in rows:
        columns.update(dict.fromkeys(row))
    return list(columns)


def to_csv(rows: Sequence[dict]) -> str:
    """The export rows as CSV text, with a header; a missing check column is empty, None is empty, booleans true/false."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=_columns(rows), restval="", lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _csv_value(value) for key, value in row.items()})
    return out.getvalue()


def _csv_value(value) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def to_json(run_meta: dict, rows: Sequence[dict]) -> str:
    """The run and its export rows as one JSON object: ``{"run": …, "results": […]}``."""
    return json.dumps({"run": run_meta, "results": list(rows)}, ensure_ascii=False, indent=2, default=str)


def _case_key(result: EvalResult) -> tuple:
    return ("id", result.case_id) if result.case_id is not None else ("name", result.case_name)
