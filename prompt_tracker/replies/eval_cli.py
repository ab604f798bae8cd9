"""``flask evals run``: queue a test run, wait for the workers, print a summary table (and one JSON line).

For a team's CI: the exit status is 1 when the pass rate is under ``--min-pass`` or, with
``--baseline``, when any case regressed; 2 on a usage error (click's ``UsageError``).
"""

import json
import time

import click
from flask.cli import with_appcontext

from ..domain.refusals import Refused
from ..evals.models import EvalRun
from ..evals.results import compare, summarize
from ..extensions import db
from ..prompts.library import find_prompt
from .eval_runs import look_after, start_run

WAITING = ("queued", "running")


@click.command("run")
@click.argument("slug")
@click.option("--version", "version_number", type=int, help="The version's number.")
@click.option("--label", help="A label of the version (production, staging, latest…).")
@click.option("--tag", help="Only the cases with this tag.")
@click.option("--repeat", type=click.IntRange(1, 10), default=1, show_default=True, help="Runs of each case.")
@click.option("--baseline", type=int, help="An earlier run's id: regressions and fixes are counted against it.")
@click.option("--min-pass", type=click.FloatRange(0, 1), default=None, help="Exit 1 under this pass rate (0–1).")
@click.option("--json", "as_json", is_flag=True, help="End with one JSON line: the run's summary.")
@click.option("--timeout", type=float, default=1800, show_default=True, help="Seconds to wait for the workers.")
@click.option(
    "--url",
    "base_url",
    envvar="PROMPT_TRACKER_URL",
    default="http://localhost:5000",
    show_default=True,
    help="The app's address, for the run page's link (PROMPT_TRACKER_URL).",
)
@click.option("--as", "owner", default="cli", show_default=True, help="Whose budget and rate the calls count against.")
@with_appcontext
def run_command(slug, version_number, label, tag, repeat, baseline, min_pass, as_json, timeout, base_url, owner):
    """Run a version of a prompt over its test cases on the workers and print the results."""
    if version_number is not None and label:
        raise click.UsageError("Give --version or --label, not both.")
    prompt = find_prompt(slug)
    if prompt is None:
        raise click.UsageError(f"There is no prompt with the slug {slug!r}.")
    try:
        run = start_run(prompt, version_number, label, repeat, tag, baseline, owner=owner, created_by=owner)
    except Refused as refusal:
        raise click.UsageError(refusal.sentence) from None
    run_id, prompt_slug = run.id, prompt.slug
    run = wait_for_run(run_id, timeout)
    summary = run_summary(run, f"{base_url.rstrip('/')}/prompts/{prompt_slug}/runs/{run_id}")
    click.echo(summary_table(run, summary))
    failed = run.status not in ("finished",)
    if run.status == "paused":
        click.echo(f"Run {run_id} is paused: {run.status_reason}", err=True)
    elif run.status in WAITING:
        click.echo(f"Run {run_id} is still {run.status} after {timeout:g} s; see {summary['url']}", err=True)
    if min_pass is not None and summary["pass_rate"] < min_pass:
        click.echo(f"Pass rate {summary['pass_rate']:.0%} is under --min-pass {min_pass:.0%}.", err=True)
        failed = True
    if baseline is not None and summary["regressions"]:
        click.echo(f"{len(summary['regressions'])} case(s) regressed against run {baseline}.", err=True)
        failed = True
    if as_json:
        click.echo(json.dumps(summary))
    if failed:
        raise SystemExit(1)


def wait_for_run(run_id: int, timeout: float) -> EvalRun:
    """Poll the database until the run is no longer queued or running (or ``timeout`` seconds pass)."""
    deadline = time.monotonic() + timeout
    interval = 0.1
    while True:
        db.session.expire_all()
        run = db.session.get(EvalRun, run_id)
        if run.status in WAITING:
            look_after(run)
        if run.status not in WAITING or time.monotonic() >= deadline:
            return run
        db.session.commit()
        time.sleep(interval)
        interval = min(interval * 1.5, 2.0)


def run_summary(run: EvalRun, url: str) -> dict:
    """The run's summary as data: what the JSON line says."""
    results = list(run.results)
    summary = summarize(results)
    regressions, fixes = [], []
    if run.baseline_id is not None:
        baseline = db.session.get(EvalRun, run.baseline_id)
        if baseline is not None:
            for change in compare(list(baseline.results), results, baseline.repeat, run.repeat, diffs=False):
                if change.change == "regression":
                    regressions.append(change.name)
                elif change.change == "fix":
                    fixes.append(change.name)
    return {
        "run": run.id,
        "version": run.version_number,
        "status": run.status,
        "cases": summary.cases,
        "results": summary.results,
        "passed": summary.passed,
        "failed": summary.failed,
        "errored": summary.errored,
        "pass_rate": summary.pass_rate if summary.pass_rate is not None else 0.0,
        "regressions": regressions,
        "fixes": fixes,
        "cost_usd": summary.cost_usd,
        "url": url,
    }


def summary_table(run: EvalRun, summary: dict) -> str:
    """The results for people: one line per case (passes out of its repetitions), then the totals."""
    per_case: dict[str, list] = {}
    for result in run.results:
        per_case.setdefault(result.case_name, []).append(result)
    width = min(max((len(name) for name in per_case), default=4), 60)
    lines = [f"{'case':<{width}}  passed  status"]
    for name, results in per_case.items():
        passes = sum(1 for result in results if result.status == "passed")
        states = ",".join(sorted({result.status for result in results}))
        lines.append(f"{name[:width]:<{width}}  {passes:>2}/{len(results):<3}  {states}")
    cost = summary["cost_usd"]
    lines.append(
        f"Run {summary['run']} (version {summary['version']}, {run.status}): {summary['passed']} of "
        f"{summary['results']} passed ({summary['pass_rate']:.0%}), {summary['failed']} failed, "
        f"{summary['errored']} errored" + (f", ${cost:.4f}" if cost else "") + f". {summary['url']}"
    )
    if summary["regressions"] or summary["fixes"]:
        lines.append(f"Against the baseline: {len(summary['regressions'])} regressed, {len(summary['fixes'])} fixed.")
    return "\n".join(lines)
