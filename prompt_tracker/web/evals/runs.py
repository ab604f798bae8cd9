"""Test runs' pages: the list and the start form, a run's grid (live), Stop / Resume / Retry failed, the
comparison of two runs, and the exports. Thin views over ``replies.eval_runs`` and ``evals.results``."""

import hashlib
import secrets
from dataclasses import dataclass

from flask import Response, abort, g, jsonify, redirect, render_template, request, url_for
from sqlalchemy import func, select

from ...evals.models import EvalResult, EvalRun
from ...evals.results import case_rows, change_counts, compare, export_rows, summarize, to_csv, to_json
from ...extensions import db
from ...prompts.labels import prompt_labels
from ...prompts.library import find_prompt
from ...replies.eval_runs import (
    MAX_REPEAT,
    is_row_id,
    look_after,
    resume_run,
    retry_failed,
    start_run,
    stop_run,
)
from ..errors import refusals_shown_by
from ..playground.prompt import moved_or_404
from ..rate_limits import limit_owner
from . import bp

RUNS_SHOWN = 50


def prompt_or_404(slug: str):
    """The prompt with ``slug`` (kept in ``g`` for a refusal's page), a redirect if renamed, or a 404."""
    prompt = find_prompt(slug)
    if prompt is None:
        moved_or_404(slug)
    g.prompt = prompt
    return prompt


def run_or_404(prompt, run_id: int) -> EvalRun:
    """Run ``run_id`` of ``prompt``, or a 404 that says so."""
    run = db.session.get(EvalRun, run_id) if is_row_id(run_id) else None
    if run is None or run.prompt_id != prompt.id:
        abort(404, f"Prompt {prompt.slug!r} has no run {run_id}.")
    return run


def author() -> str:
    """Who starts or stops a run: the signed-in user, or the single local user."""
    return g.get("user_name") or "local"


def row_key(case_name: str) -> str:
    """A case row's id on the page (its name may hold anything)."""
    return "case-" + hashlib.sha256(case_name.encode()).hexdigest()[:16]


bp.add_app_template_global(row_key, "eval_row_key")


def results_of(run: EvalRun) -> list[EvalResult]:
    """The run's results, by case and repetition (one query)."""
    return list(
        db.session.scalars(
            select(EvalResult).where(EvalResult.run_id == run.id).order_by(EvalResult.case_name, EvalResult.repetition)
        )
    )


# --- the list and the start form ---------------------------------------------------------------------


@dataclass
class RunTotals:
    """What the list shows of a run: its results' counts and cost, in one grouped query for all the runs."""

    results: int = 0
    passed: int = 0
    finished: int = 0
    cost_usd: float = 0.0

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.finished if self.finished else None


def run_totals(run_ids: list[int]) -> dict[int, RunTotals]:
    """Each run's totals (``RunTotals``), counted by the database rather than by loading every result."""
    totals = {run_id: RunTotals() for run_id in run_ids}
    if not run_ids:
        return totals
    rows = db.session.execute(
        select(EvalResult.run_id, EvalResult.status, func.count(), func.coalesce(func.sum(EvalResult.cost_usd), 0.0))
        .where(EvalResult.run_id.in_(run_ids))
        .group_by(EvalResult.run_id, EvalResult.status)
    )
    for run_id, status, count, cost in rows:
        found = totals[run_id]
        found.results += count
        found.cost_usd += float(cost or 0.0)
        if status in ("passed", "failed", "error"):
            found.finished += count
        if status == "passed":
            found.passed += count
    return totals


def runs_page(prompt, error: str | None = None, typed=None, status: int = 200):
    """The prompt's runs (newest first, with their summaries) and the form to start one, with what was typed."""
    runs = list(
        db.session.scalars(
            select(EvalRun).where(EvalRun.prompt_id == prompt.id).order_by(EvalRun.id.desc()).limit(RUNS_SHOWN)
        )
    )
    summaries = run_totals([run.id for run in runs])
    return render_template(
        "evals/runs.html",
        prompt=prompt,
        runs=runs,
        summaries=summaries,
        versions=list(reversed(prompt.versions)),
        labels=prompt_labels(prompt),
        typed=typed or {},
        error=error,
        max_repeat=MAX_REPEAT,
        client_token=secrets.token_urlsafe(16),  # one run per submission of this form
    ), status


@bp.get("/<slug>/runs")
def runs_index(slug):
    return runs_page(prompt_or_404(slug))


@bp.post("/<slug>/runs")
@refusals_shown_by(lambda refusal: runs_page(g.prompt, refusal.sentence, request.form, refusal.status))
def start(slug):
    prompt = prompt_or_404(slug)
    form = request.form
    run = start_run(
        prompt,
        version=form.get("version") or None,
        label=form.get("label") or None,
        repeat=form.get("repeat", "1"),
        tag=form.get("tag"),
        baseline_id=form.get("baseline") or None,
        owner=limit_owner() or "",
        created_by=author(),
        client_token=form.get("client_token"),
    )
    return redirect(url_for(".run_page", slug=prompt.slug, run_id=run.id), 303)


# --- one run ---------------------------------------------------------------------------------------------


def run_view(run: EvalRun, changes_only: bool = False) -> dict:
    """What the run page shows: the summary, the case rows, and against a baseline each case's change."""
    look_after(run)  # results whose worker vanished say so, rather than running for ever
    results = results_of(run)
    rows = case_rows(results, run.repeat)
    baseline = db.session.get(EvalRun, run.baseline_id) if run.baseline_id else None
    changes, counts = {}, None
    if baseline is not None:
        found = compare(results_of(baseline), results, baseline.repeat, run.repeat)
        changes = {change.name: change for change in found if change.after is not None}
        counts = change_counts(found)
        if changes_only:
            rows = [row for row in rows if row.name in changes and changes[row.name].change != "same"]
    return {
        "run": run,
        "summary": summarize(results),
        "rows": rows,
        "baseline": baseline,
        "changes": changes,
        "change_counts": counts,
        "changes_only": changes_only,
    }


def run_page_response(prompt, run: EvalRun, error: str | None = None, status: int = 200):
    """The run page (with a refusal's sentence when a button was refused)."""
    view = run_view(run, request.args.get("changes") == "1")
    return render_template("evals/run.html", prompt=prompt, error=error, **view), status


@bp.get("/<slug>/runs/<int:run_id>")
def run_page(slug, run_id):
    prompt = prompt_or_404(slug)
    return run_page_response(prompt, run_or_404(prompt, run_id))


@bp.get("/<slug>/runs/<int:run_id>/rows")
def run_rows(slug, run_id):
    """For the page's script: the summary and the rows of the cases of the results ``ids`` (comma-separated),
    or of every case with ``all=1`` (after a (re)connect: events may have been missed)."""
    prompt = prompt_or_404(slug)
    run = run_or_404(prompt, run_id)
    everything = request.args.get("all") == "1"
    wanted = {int(part) for part in request.args.get("ids", "").split(",") if part.strip().isdigit()}
    view = run_view(run, request.args.get("changes") == "1")
    rows = {
        row_key(row.name): render_template("evals/run_case.html", prompt=prompt, row=row, **view)
        for row in view["rows"]
        if everything or any(result.id in wanted for result in row.results)
    }
    summary = render_template("evals/run_summary.html", prompt=prompt, **view)
    controls = render_template("evals/run_controls.html", prompt=prompt, **view)
    return jsonify(status=run.status, summary=summary, controls=controls, rows=rows)


def control_refused(refusal):
    """A refused Stop / Resume / Retry: the run page, with the sentence."""
    return run_page_response(g.prompt, g.run, refusal.sentence, refusal.status)


def control(slug: str, run_id: int, action) -> Response:
    prompt = prompt_or_404(slug)
    g.run = run_or_404(prompt, run_id)
    action(g.run)
    return redirect(url_for(".run_page", slug=prompt.slug, run_id=run_id), 303)


@bp.post("/<slug>/runs/<int:run_id>/stop")
@refusals_shown_by(control_refused)
def stop(slug, run_id):
    return control(slug, run_id, lambda run: stop_run(run, author()))


@bp.post("/<slug>/runs/<int:run_id>/resume")
@refusals_shown_by(control_refused)
def resume(slug, run_id):
    return control(slug, run_id, resume_run)


@bp.post("/<slug>/runs/<int:run_id>/retry")
@refusals_shown_by(control_refused)
def retry(slug, run_id):
    return control(slug, run_id, retry_failed)


# --- two runs side by side, and the exports ------------------------------------------------------------


@bp.get("/<slug>/runs/compare")
def compare_runs(slug):
    prompt = prompt_or_404(slug)
    ids = [request.args.get(name, "") for name in ("a", "b")]
    if not all(value.strip().isdigit() for value in ids):
        abort(400, "Give two runs to compare: ?a=<run id>&b=<run id>.")
    first, second = (run_or_404(prompt, int(value)) for value in ids)
    first_results, second_results = results_of(first), results_of(second)
    changes = compare(first_results, second_results, first.repeat, second.repeat)
    return render_template(
        "evals/run_compare.html",
        prompt=prompt,
        a=first,
        b=second,
        summary_a=summarize(first_results),
        summary_b=summarize(second_results),
        changes=changes,
        change_counts=change_counts(changes),
    )


@bp.get("/<slug>/runs/<int:run_id>.csv")
def export_csv(slug, run_id):
    prompt = prompt_or_404(slug)
    run = run_or_404(prompt, run_id)
    body = to_csv(export_rows(results_of(run)))
    filename = f"{prompt.slug}-run-{run.id}.csv"
    return Response(body, mimetype="text/csv", headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@bp.get("/<slug>/runs/<int:run_id>.json")
def export_json(slug, run_id):
    prompt = prompt_or_404(slug)
    run = run_or_404(prompt, run_id)
    meta = {
        "id": run.id,
        "prompt": prompt.slug,
        "version": run.version_number,
        "label": run.label,
        "tag": run.tag,
        "repeat": run.repeat,
        "baseline": run.baseline_id,
        "status": run.status,
        "created_at": run.created_at.isoformat() + "Z",
        "created_by": run.created_by,
    }
    body = to_json(meta, export_rows(results_of(run)))
    filename = f"{prompt.slug}-run-{run.id}.json"
    return Response(
        body, mimetype="application/json", headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )
