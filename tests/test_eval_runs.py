"""Test runs: on the test config (jobs inline, fakeredis) for the logic, then through the real path (a real
Redis, real `flask worker` processes, a fake OpenAI-compatible server counting calls), and in Chromium."""

import csv
import hashlib
import io
import json
import re
import secrets
import threading

import psutil
import pytest
from sqlalchemy import func, select

from prompt_tracker import create_app
from prompt_tracker.domain.keys import eval_backlog_key, usage_key
from prompt_tracker.evals.models import EvalResult, EvalRun, TestCase
from prompt_tracker.extensions import db, services
from prompt_tracker.limits import budget
from prompt_tracker.prompts.library import create_prompt, save_version
from prompt_tracker.prompts.models import Prompt
from prompt_tracker.replies import eval_runs

from .conftest import CSRF_RE, Playground, screenshot, service_env, wait_for
from .fake_llm_servers import OPENAI_KEY, FakeOpenAI
from .processes import run_flask

OWNER = "browser:tester"


def add_case(prompt, name, content="hello", checks=None, tags=None, variables=None, messages=None, expected=None):
    """A case row, inserted directly (the cases' own module is another branch's)."""
    body = {
        "variables": variables or {},
        "messages": messages or [{"role": "user", "content": content}],
        "expected": expected,
        "checks": checks or [],
    }
    case = TestCase(
        prompt_id=prompt.id,
        name=name,
        tags=tags or [],
        content_hash=hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest(),
        **body,
    )
    db.session.add(case)
    db.session.commit()
    return case


def statuses(run_id):
    rows = db.session.scalars(db.select(EvalResult).where(EvalResult.run_id == run_id).order_by(EvalResult.id)).all()
    return [(row.case_name, row.repetition, row.status) for row in rows]


@pytest.fixture
def unit_app():
    app = create_app("test")
    with app.app_context():
        db.create_all()
        yield app


def test_a_run_with_repetitions_runs_every_case_inline_and_finishes(unit_app):
    prompt = create_prompt("Greeter", "Greet {{ name }}.", variables={"name": "Ada"}, author="t")
    add_case(prompt, "says hello", "hello", checks=[{"type": "contains", "value": "hello"}])
    add_case(prompt, "says bye", "bye", checks=[{"type": "contains", "value": "hello"}], variables={"name": "Bo"})
    run = eval_runs.start_run(prompt, repeat=3, owner=OWNER, created_by="t")
    db.session.expire_all()
    run = db.session.get(EvalRun, run.id)
    assert run.status == "finished"
    assert statuses(run.id) == [("says bye", n, "failed") for n in (1, 2, 3)] + [
        ("says hello", n, "passed") for n in (1, 2, 3)
    ]
    result = run.results[-1]
    assert result.output.startswith("You said: ")
    assert "<p>" in result.output_html
    assert result.check_results[0]["passed"] in (True, False)
    assert result.latency_ms is not None and result.usage["input_tokens"] > 0


def csrf(client, url):
    import re

    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(url).get_data(as_text=True)).group(1)


def test_the_pages_start_a_run_show_its_grid_and_keep_a_refused_form(unit_app):
    prompt = create_prompt("Pager", "Be brief.", author="t")
    add_case(prompt, "greets", "hello <b>there</b>", checks=[{"type": "contains", "value": "hello"}])
    client = unit_app.test_client()
    token = csrf(client, "/prompts/pager/runs")
    refused = client.post(
        "/prompts/pager/runs", data={"csrf_token": token, "repeat": "11", "tag": "smoke", "version": "1"}
    )
    assert refused.status_code == 422
    html = refused.get_data(as_text=True)
    assert "Repeat must be a whole number from 1 to 10." in html
    assert 'value="11"' in html and 'value="smoke"' in html  # what was typed is kept
    answer = client.post("/prompts/pager/runs", data={"csrf_token": token, "repeat": "2", "version": "1"})
    assert answer.status_code == 303 and answer.headers["Location"].endswith("/prompts/pager/runs/1")
    page = client.get("/prompts/pager/runs/1").get_data(as_text=True)
    assert "finished" in page and "2/2 passed" in page and "pass^2" in page
    assert "hello &lt;b&gt;there&lt;/b&gt;" in page  # the output's Markdown, rendered with raw HTML escaped
    assert 'http-equiv="refresh"' not in page  # only while the run goes on
    listing = client.get("/prompts/pager/runs").get_data(as_text=True)
    assert "#1" in listing and "100%" in listing
    rows = client.get("/prompts/pager/runs/1/rows?ids=1", headers={"Accept": "application/json"}).get_json()
    assert rows["status"] == "finished" and len(rows["rows"]) == 1 and "run-summary" in rows["summary"]
    assert client.get("/prompts/pager/runs/99").status_code == 404
    assert client.get("/prompts/nope/runs").status_code == 404


def test_a_start_form_sent_twice_starts_one_run(unit_app):
    """A double click on Start run (or the form sent again) starts one run: each costs its calls."""
    prompt = create_prompt("Twice", "Be brief.", author="t")
    add_case(prompt, "greets", "hello")
    client = unit_app.test_client()
    page = client.get("/prompts/twice/runs").get_data(as_text=True)
    token = CSRF_RE.search(page).group(1)
    form_token = re.search(r'name="client_token" value="([^"]+)"', page).group(1)
    fields = {"csrf_token": token, "client_token": form_token, "version": "1"}
    refused = client.post("/prompts/twice/runs", data={**fields, "repeat": "0"})
    assert refused.status_code == 422  # refused: its token is free again for the corrected form
    first = client.post("/prompts/twice/runs", data={**fields, "repeat": "1"})
    second = client.post("/prompts/twice/runs", data={**fields, "repeat": "1"})
    assert first.status_code == second.status_code == 303
    assert first.headers["Location"] == second.headers["Location"]
    with unit_app.app_context():
        assert db.session.scalar(select(func.count()).select_from(EvalRun)) == 1
    other = client.post("/prompts/twice/runs", data={**fields, "client_token": "another page", "repeat": "1"})
    assert other.headers["Location"] != first.headers["Location"]


def test_exports_have_one_row_per_result(unit_app):
    prompt = create_prompt("Exported", "x", author="t")
    add_case(prompt, "one", "hello", checks=[{"type": "contains", "value": "hello"}])
    run = eval_runs.start_run(prompt, repeat=2, owner=OWNER)
    client = unit_app.test_client()
    answer = client.get(f"/prompts/exported/runs/{run.id}.csv")
    assert answer.mimetype == "text/csv" and "attachment" in answer.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(answer.get_data(as_text=True))))
    assert [(row["case"], row["status"]) for row in rows] == [("one", "passed"), ("one", "passed")]
    exported = json.loads(client.get(f"/prompts/exported/runs/{run.id}.json").get_data(as_text=True))
    assert len(exported) == 2


def test_stop_retry_failed_and_resume_from_the_buttons(unit_app):
    prompt = create_prompt("Controls", "x", author="t")
    add_case(prompt, "fails", "bye", checks=[{"type": "contains", "value": "hello"}])
    run = eval_runs.start_run(prompt, repeat=2, owner=OWNER)
    client = unit_app.test_client()
    url = f"/prompts/controls/runs/{run.id}"
    token = csrf(client, url)
    assert client.post(url + "/resume", data={"csrf_token": token}).status_code == 409  # not paused
    retried = client.post(url + "/retry", data={"csrf_token": token})
    assert retried.status_code == 303
    db.session.expire_all()
    results = db.session.get(EvalRun, run.id).results
    assert [(r.attempt, r.status) for r in results] == [(2, "failed"), (2, "failed")]
    assert client.post(url + "/stop", data={"csrf_token": token}).status_code == 409  # finished already
    assert client.post(url + "/stop", data={}).status_code == 400  # CSRF


def test_a_stopped_run_stops_its_queued_results_and_a_second_claim_changes_nothing(unit_app):
    prompt = create_prompt("Stopper", "x", author="t")
    add_case(prompt, "a", "hello")
    unit_app.config["EVAL_CONCURRENCY"] = 1
    # Queued but not handed out: the queue is "down" for this one (the backlog is kept in Redis).
    run = EvalRun(prompt_id=prompt.id, version_id=prompt.versions[0].id, version_number=1, repeat=3, owner=OWNER)
    case = db.session.scalars(db.select(TestCase)).one()
    run.results = [
        EvalResult(case_id=case.id, case_name="a", case_hash=case.content_hash, repetition=n) for n in (1, 2, 3)
    ]
    db.session.add(run)
    db.session.commit()
    services.jobs_redis.rpush(eval_backlog_key(run.id), "0:1")  # waiting for a worker
    client = unit_app.test_client()
    url = f"/prompts/stopper/runs/{run.id}"
    page = client.get(url).get_data(as_text=True)
    assert '<noscript><meta http-equiv="refresh" content="5"></noscript>' in page and ">Refresh<" in page
    first, second = run.results[0].id, run.results[1].id
    assert eval_runs.claim(first, 1) is True
    assert eval_runs.claim(first, 1) is False  # the second claim is a no-op
    assert eval_runs.claim(second, 2) is False  # another attempt's job claims nothing
    assert client.post(url + "/stop", data={"csrf_token": csrf(client, url)}).status_code == 303
    db.session.expire_all()
    assert statuses(run.id) == [("a", 1, "running"), ("a", 2, "stopped"), ("a", 3, "stopped")]
    assert db.session.get(EvalRun, run.id).status_reason == "Stopped by local."
    assert eval_runs.run_result(second, 1) == "skipped"  # a stopped result's job claims nothing
    # The one running when Stop came is still written; the run stays stopped.
    assert eval_runs.record(run.id, first, 1, {"status": "passed", "passed": True}) == "passed"
    db.session.expire_all()
    assert db.session.get(EvalRun, run.id).status == "stopped"
    assert 'http-equiv="refresh"' not in client.get(url).get_data(as_text=True)


def test_a_run_paused_by_the_budget_keeps_its_queued_results_and_resumes(unit_app, fake_openai):
    unit_app.config.update(DAILY_BUDGET_TOKENS=300, EVAL_CONCURRENCY=1)
    prompt = create_prompt("Budgeted", "x", provider="openai", model="fake-model", params={"max_tokens": 100})
    add_case(prompt, "a", "hello")
    run = eval_runs.start_run(prompt, repeat=10, owner=OWNER)
    db.session.expire_all()
    run = db.session.get(EvalRun, run.id)
    # Each call holds 100 + its input before it is made and settles at the 30 tokens it used: the 8th
    # call's hold no longer fits the 300 tokens (7 × 30 spent + about 103 held).
    done = [status for *_, status in statuses(run.id)]
    assert run.status == "paused" and "budget" in run.status_reason
    assert done.count("passed") == fake_openai.stream_requests() and done.count("queued") == 10 - done.count("passed")
    assert 0 < done.count("passed") < 10
    unit_app.config["DAILY_BUDGET_TOKENS"] = 0
    eval_runs.resume_run(run)
    db.session.expire_all()
    assert db.session.get(EvalRun, run.id).status == "finished"
    assert [status for *_, status in statuses(run.id)] == ["passed"] * 10
    assert fake_openai.stream_requests() == 10  # none twice


def test_tool_calls_are_answered_with_the_versions_mocks(unit_app, fake_openai):
    prompt = create_prompt("Tools", "x", provider="openai", model="fake-model")
    save_version(
        prompt.id,
        system_prompt="Use tools.",
        provider="openai",
        model="fake-model",
        params={},
        variables={},
        tools=[{"name": "lookup", "parameters": {"type": "object", "properties": {}}, "mock": {"found": 1}}],
    )
    add_case(prompt, "calls", "look it up", checks=[{"type": "tool_called", "name": "lookup"}])
    fake_openai.script.tool_calls = [{"name": "lookup", "arguments": "{}"}]
    fake_openai.script.reply = ""
    run = eval_runs.start_run(prompt, version=2, owner=OWNER)
    db.session.expire_all()
    (result,) = db.session.get(EvalRun, run.id).results
    # The model keeps calling: the first call and EVAL_MAX_TOOL_ROUNDS rounds answered with the mock.
    assert fake_openai.stream_requests() == 4
    last = fake_openai.requests[-1].body["messages"]
    assert last[-1] == {"role": "tool", "tool_call_id": "call_fake0", "content": '{"found": 1}'}
    assert result.status == "passed" and len(result.tool_calls) == 4
    assert result.usage == {"input_tokens": 84, "output_tokens": 36}


def test_a_provider_error_is_the_results_sentence_and_the_run_goes_on(unit_app, fake_openai):
    fake_openai.script.status = 401
    prompt = create_prompt("Broken", "x", provider="openai", model="fake-model")
    add_case(prompt, "a", "hello")
    add_case(prompt, "b", "hello")
    run = eval_runs.start_run(prompt, owner=OWNER)
    db.session.expire_all()
    run = db.session.get(EvalRun, run.id)
    assert run.status == "finished"
    assert [r.status for r in run.results] == ["error", "error"]
    assert "key" in run.results[0].error.lower() and OPENAI_KEY_PREFIX not in run.results[0].error


OPENAI_KEY_PREFIX = "sk-test"


def test_start_refuses_what_cannot_run_with_a_sentence(unit_app):
    prompt = create_prompt("Empty", "x", author="t")
    with pytest.raises(eval_runs.RunRefused, match="no test cases"):
        eval_runs.start_run(prompt)
    add_case(prompt, "a", tags=["smoke"])
    with pytest.raises(eval_runs.RunRefused, match="tagged 'slow'"):
        eval_runs.start_run(prompt, tag="slow")
    with pytest.raises(eval_runs.RunRefused, match="no run '7'"):
        eval_runs.start_run(prompt, baseline_id=7)
    with pytest.raises(Exception, match="no version '9'"):
        eval_runs.start_run(prompt, version=9)
    assert len(eval_runs.start_run(prompt, tag="smoke").results) == 1
    add_case(prompt, "b")
    unit_app.config["EVAL_MAX_RESULTS"] = 5
    with pytest.raises(eval_runs.RunRefused, match=r"at most 5 results; this one would hold 6 \(2 cases × 3\)"):
        eval_runs.start_run(prompt, repeat=3)


def test_the_cli_prints_a_table_and_a_json_line_and_exits_by_the_pass_rate(unit_app):
    prompt = create_prompt("Cli", "x", author="t")
    add_case(prompt, "passes", "hello", checks=[{"type": "contains", "value": "hello"}])
    add_case(prompt, "fails", "bye", checks=[{"type": "contains", "value": "hello"}])
    runner = unit_app.test_cli_runner()
    answer = runner.invoke(args=["evals", "run", "cli", "--version", "1", "--repeat", "2", "--json"])
    assert answer.exit_code == 0, answer.output
    summary = json.loads(answer.output.strip().splitlines()[-1])
    assert summary | {"url": None} == {
        "run": 1,
        "version": 1,
        "status": "finished",
        "cases": 2,
        "results": 4,
        "passed": 2,
        "failed": 2,
        "errored": 0,
        "pass_rate": 0.5,
        "regressions": [],
        "fixes": [],
        "cost_usd": summary["cost_usd"],
        "url": None,
    }
    assert summary["url"].endswith("/prompts/cli/runs/1")
    assert "passes" in answer.output and " 2/2" in answer.output
    low = runner.invoke(args=["evals", "run", "cli", "--min-pass", "0.9", "--json"])
    assert low.exit_code == 1 and json.loads(low.output.strip().splitlines()[-1])["run"] == 2
    unit_app.config["RATE_LIMIT_EVAL_CALLS"] = "1 per minute"
    paused = runner.invoke(args=["evals", "run", "cli", "--as", "ci-bot"])
    assert paused.exit_code == 1 and "is paused: Paused: test runs may make 1 per minute" in paused.output
    assert runner.invoke(args=["evals", "run", "cli", "--version", "1", "--label", "x"]).exit_code == 2
    assert runner.invoke(args=["evals", "run", "nope"]).exit_code == 2
    assert runner.invoke(args=["evals", "run", "cli", "--repeat", "11"]).exit_code == 2


def test_against_a_baseline_a_regression_and_a_fix_are_flagged_on_the_page_the_cli_and_compare(unit_app):
    prompt = create_prompt("Diffed", "x", author="t")
    save_version(
        prompt.id, system_prompt="A longer system prompt.", provider="echo", model="echo-1", params={}, variables={}
    )
    # Version 1's replies say "(system prompt: 1 characters…", version 2's "(system prompt: 23 characters…".
    add_case(prompt, "breaks", "hello", checks=[{"type": "contains", "value": "1 characters"}])
    add_case(prompt, "mends", "hello", checks=[{"type": "contains", "value": "23 characters"}])
    add_case(prompt, "steady", "hello", checks=[{"type": "contains", "value": "hello"}])
    baseline = eval_runs.start_run(prompt, version=1, owner=OWNER)
    runner = unit_app.test_cli_runner()
    answer = runner.invoke(args=["evals", "run", "diffed", "--version", "2", "--baseline", str(baseline.id), "--json"])
    assert answer.exit_code == 1, answer.output  # a case regressed
    summary = json.loads(answer.output.strip().splitlines()[-1])
    assert (summary["regressions"], summary["fixes"]) == (["breaks"], ["mends"])
    assert "1 regressed, 1 fixed" in answer.output
    client = unit_app.test_client()
    page = client.get(f"/prompts/diffed/runs/{summary['run']}").get_data(as_text=True)
    assert 'class="count-regressions">1<' in page and 'class="count-fixes">1<' in page
    assert "change-regression" in page and "<del>1 </del><ins>23 </ins>" in page
    changes_only = client.get(f"/prompts/diffed/runs/{summary['run']}?changes=1").get_data(as_text=True)
    assert "breaks" in changes_only and "mends" in changes_only and "steady" not in changes_only
    compared = client.get(f"/prompts/diffed/runs/compare?a={baseline.id}&b={summary['run']}").get_data(as_text=True)
    assert compared.count('class="compare-row') == 3 and 'class="count-regressions">1<' in compared
    assert client.get("/prompts/diffed/runs/compare?a=1").status_code == 400


def test_on_postgresql_the_claim_the_finish_and_a_retry_hold(postgres_server):
    app = create_app("test", overrides={"SQLALCHEMY_DATABASE_URI": postgres_server.create_database()})
    with app.app_context():
        db.create_all()
        prompt = create_prompt("Pg", "x", author="t")
        add_case(prompt, "a", "hello", checks=[{"type": "contains", "value": "bye"}])
        run = eval_runs.start_run(prompt, repeat=2, owner=OWNER)
        db.session.expire_all()
        assert db.session.get(EvalRun, run.id).status == "finished"
        assert [status for *_, status in statuses(run.id)] == ["failed", "failed"]
        assert eval_runs.retry_failed(db.session.get(EvalRun, run.id)) == 2
        db.session.expire_all()
        assert [(r.attempt, r.status) for r in db.session.get(EvalRun, run.id).results] == [(2, "failed")] * 2
        assert eval_runs.claim(run.results[0].id, 2) is False
        db.session.remove()
        db.engine.dispose()


def test_the_call_rate_pauses_a_run_with_its_sentence_and_resume_goes_on(unit_app):
    from prompt_tracker.extensions import limiter

    unit_app.config.update(RATE_LIMIT_EVAL_CALLS="3 per minute", EVAL_CONCURRENCY=1)
    prompt = create_prompt("Rated", "x", author="t")
    add_case(prompt, "a", "hello")
    run = eval_runs.start_run(prompt, repeat=5, owner=OWNER)
    db.session.expire_all()
    run = db.session.get(EvalRun, run.id)
    assert run.status == "paused"
    assert run.status_reason.startswith("Paused: test runs may make 3 per minute model calls per user")
    assert [status for *_, status in statuses(run.id)] == ["passed"] * 3 + ["queued"] * 2
    page = unit_app.test_client().get(f"/prompts/rated/runs/{run.id}").get_data(as_text=True)
    assert run.status_reason in page and ">Resume<" in page and 'http-equiv="refresh"' not in page
    limiter.reset()  # the next minute
    eval_runs.resume_run(run)
    db.session.expire_all()
    assert [status for *_, status in statuses(run.id)] == ["passed"] * 5
    assert db.session.get(EvalRun, run.id).status == "finished"


def test_an_llm_judge_is_one_more_call_with_structured_output(unit_app, fake_openai):
    fake_openai.script.reply = '{"pass": true, "reason": "It answers politely."}'
    prompt = create_prompt("Judged", "x", provider="openai", model="fake-model")
    add_case(prompt, "polite", "hello", checks=[{"type": "llm_judge", "rubric": "Is {{ output }} polite?"}])
    run = eval_runs.start_run(prompt, owner=OWNER)
    db.session.expire_all()
    (result,) = db.session.get(EvalRun, run.id).results
    assert result.status == "passed"
    assert result.check_results == [{"type": "llm_judge", "passed": True, "reason": "It answers politely."}]
    assert fake_openai.stream_requests() == 2
    judged = fake_openai.requests[-1].body
    assert judged["response_format"]["type"] == "json_schema"
    assert judged["response_format"]["json_schema"]["schema"]["required"] == ["pass", "reason"]
    assert "polite?" in judged["messages"][-1]["content"]


@pytest.mark.parametrize(
    ("fields", "sentence"),
    [
        ({"repeat": "abc"}, "Repeat must be a whole number from 1 to 10."),
        ({"repeat": "0"}, "Repeat must be a whole number from 1 to 10."),
        ({"version": "99999999999999999999"}, "has no version"),
        ({"version": "1", "label": "latest"}, "Give a label or a version number, not both."),
        ({"label": "nope"}, "has no label &#39;nope&#39;"),
        ({"baseline": "99999999999999999999"}, "has no run"),
        ({"tag": "t" * 41}, "Tags are at most 40 characters"),
        ({"tag": "missing"}, "no test cases tagged"),
    ],
)
def test_a_refused_start_says_why_and_keeps_the_form(unit_app, fields, sentence):
    prompt = create_prompt("Hostile", "x", author="t")
    add_case(prompt, "a", "hello")
    client = unit_app.test_client()
    token = csrf(client, "/prompts/hostile/runs")
    answer = client.post("/prompts/hostile/runs", data={"csrf_token": token, "repeat": "1", **fields})
    assert 400 <= answer.status_code < 500
    html = answer.get_data(as_text=True)
    assert sentence in html and 'id="run-error"' in html
    assert db.session.scalar(db.select(db.func.count(EvalRun.id))) == 0
    assert client.get("/prompts/hostile/runs/99999999999999999999").status_code == 404


def test_a_runs_calls_hold_the_budget_but_are_not_the_users_open_replies(unit_app):
    from prompt_tracker.store.conversations import TooManyOpenReplies

    unit_app.config.update(MAX_OPEN_REPLIES=1, DAILY_BUDGET_TOKENS=350)
    for _ in range(2):  # two of a run's calls in flight: 110 tokens held each
        budget.reserve(OWNER, "openai", "fake-model", 10, 100, seconds=60, open_reply=False)
    assert budget.open_replies(OWNER) == 0
    budget.reserve(OWNER, "openai", "fake-model", 10, 100, seconds=60)  # the playground's reply still goes
    with pytest.raises(TooManyOpenReplies):
        budget.reserve(OWNER, "openai", "fake-model", 10, 100, seconds=60)
    with pytest.raises(budget.BudgetExceeded):  # but what the run holds counts against the budget
        budget.reserve(OWNER, "openai", "fake-model", 10, 100, seconds=60, open_reply=False)


def test_a_run_whose_redis_keys_were_lost_is_dispatched_again_when_looked_at(unit_app):
    prompt = create_prompt("Lost keys", "x", slug="lost-keys", author="t")
    add_case(prompt, "a", "hello")
    run = EvalRun(prompt_id=prompt.id, version_id=prompt.versions[0].id, version_number=1, repeat=2, owner=OWNER)
    case = db.session.scalars(db.select(TestCase)).one()
    run.results = [
        EvalResult(case_id=case.id, case_name="a", case_hash=case.content_hash, repetition=n) for n in (1, 2)
    ]
    db.session.add(run)
    db.session.commit()  # queued, with no backlog and nothing in flight (a Redis flushed meanwhile)
    unit_app.test_client().get(f"/prompts/lost-keys/runs/{run.id}")
    db.session.expire_all()
    assert db.session.get(EvalRun, run.id).status == "finished"
    assert [status for *_, status in statuses(run.id)] == ["passed", "passed"]


def test_a_case_edited_after_the_start_records_the_hash_it_ran_with(unit_app):
    from prompt_tracker.evals.cases import create_case, update_case

    prompt = create_prompt("Edited", "Hello {{ name }}.", variables={"name": "Ada"}, author="t")
    case = create_case(prompt, {"name": "greets", "input": "hi", "variables": {"name": "Bo"}, "checks": []})
    before = case.content_hash
    run = EvalRun(prompt_id=prompt.id, version_id=prompt.versions[0].id, version_number=1, repeat=1, owner=OWNER)
    run.results = [EvalResult(case_id=case.id, case_name=case.name, case_hash=before, repetition=1)]
    db.session.add(run)
    db.session.commit()
    update_case(prompt, case, {"name": "greets", "input": "hello again", "variables": {"name": "Cy"}, "checks": []})
    eval_runs.rebuild_backlog(run)  # its jobs run now (inline)
    db.session.expire_all()
    (result,) = db.session.get(EvalRun, run.id).results
    assert result.case_hash == case.content_hash != before
    assert result.output.startswith("You said: hello again")


def test_a_run_pages_socket_joins_the_runs_room_and_hears_each_result(unit_app):
    from prompt_tracker.extensions import socketio

    prompt = create_prompt("Heard", "x", author="t")
    add_case(prompt, "a", "hello")
    run = eval_runs.start_run(prompt, owner=OWNER)
    client = unit_app.test_client()
    client.get("/playground")  # a stored session, which the socket's handshake needs
    socket = socketio.test_client(unit_app, flask_test_client=client)
    assert socket.emit("eval.join", {"run": run.id}, callback=True) is True
    assert socket.emit("eval.join", {"run": 999}, callback=True) is False
    assert socket.emit("eval.join", "junk", callback=True) is False
    socket.get_received()
    eval_runs.announce(run.id, run.results[0].id, "passed")
    eval_runs.announce(run.id + 1, 1, "passed")  # another run's room
    received = [(event["name"], event["args"][0]) for event in socket.get_received()]
    assert received == [("eval.result", {"run": run.id, "result": run.results[0].id, "status": "passed"})]
    socket.disconnect()


# --- the real path: a real Redis, real `flask worker` processes, the fake OpenAI server ------------------


class CountingOpenAI(FakeOpenAI):
    """The fake OpenAI server, counting the requests it is answering at once (the most at any time)."""

    def __init__(self, listener):
        self.lock = threading.Lock()
        self.in_flight = self.most_in_flight = 0
        super().__init__(listener)

    def _handler_class(self):
        server = self

        class Counting(super()._handler_class()):
            def do_POST(self):
                with server.lock:
                    server.in_flight += 1
                    server.most_in_flight = max(server.most_in_flight, server.in_flight)
                try:
                    super().do_POST()
                finally:
                    with server.lock:
                        server.in_flight -= 1

        return Counting


REAL_ENV = {"EVAL_CONCURRENCY": "2", "DAILY_BUDGET_TOKENS": "100000"}


@pytest.fixture
def counting_openai(monkeypatch, openai_listener):
    with CountingOpenAI(openai_listener) as server:
        monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        yield server


@pytest.fixture
def real_app(real_redis, counting_openai, monkeypatch):
    """The development app on the private Redis and the run's SQLite file, as the workers see them."""
    for key, value in {**service_env(real_redis), **REAL_ENV}.items():
        monkeypatch.setenv(key, value)
    app = create_app("development", overrides={"DEBUG": False})
    with app.app_context():
        db.create_all()
        yield app
        db.session.remove()


def ended(run_id):
    db.session.expire_all()
    run = db.session.get(EvalRun, run_id)
    db.session.commit()
    return run if run.status not in ("queued", "running") else None


def unique(slug):
    """A slug of its own: the real path's database lives as long as the test run's Redis (reruns included)."""
    return f"{slug}-{secrets.token_hex(3)}"


def openai_prompt(slug, cases=1, checks=None):
    slug = unique(slug)
    prompt = create_prompt(
        slug, "Be brief.", slug=slug, provider="openai", model="fake-model", params={"max_tokens": 50}
    )
    for number in range(cases):
        add_case(prompt, f"case {number}", f"question {number}", checks=checks)
    return prompt


@pytest.mark.integration
def test_real_workers_claim_each_result_once_and_keep_the_runs_concurrency(real_app, start_worker, counting_openai):
    for _ in range(3):
        start_worker(REAL_ENV)
    counting_openai.script.chunk_delay = 0.02  # each call streams for a moment: three workers could overlap
    prompt = openai_prompt("concurrent", cases=4, checks=[{"type": "contains", "value": "fake model"}])
    run = eval_runs.start_run(prompt, repeat=3, owner=OWNER)
    run = wait_for(lambda: ended(run.id), timeout=90)
    assert run.status == "finished"
    assert [status for *_, status in statuses(run.id)] == ["passed"] * 12
    assert counting_openai.stream_requests() == 12  # one provider call per result
    assert counting_openai.most_in_flight <= 2  # EVAL_CONCURRENCY, with three workers free

    # Every job of a run queued twice, the three workers racing for them: still one call per result.
    before = counting_openai.stream_requests()
    twice = EvalRun(prompt_id=prompt.id, version_id=prompt.versions[0].id, version_number=1, repeat=3, owner=OWNER)
    case = db.session.scalars(db.select(TestCase).where(TestCase.prompt_id == prompt.id)).first()
    twice.results = [
        EvalResult(case_id=case.id, case_name=case.name, case_hash=case.content_hash, repetition=n) for n in (1, 2, 3)
    ]
    db.session.add(twice)
    db.session.commit()
    queue = eval_runs.eval_queue()
    for result in twice.results:
        for copy in ("a", "b"):
            queue.enqueue(eval_runs.RUN_JOB, result.id, 1, job_id=f"twice-{result.id}-{copy}")
    twice = wait_for(lambda: ended(twice.id), timeout=60)
    assert [status for *_, status in statuses(twice.id)] == ["passed"] * 3
    assert counting_openai.stream_requests() - before == 3


@pytest.mark.integration
def test_stop_on_a_real_worker_and_a_budget_pause_then_resume(real_app, real_redis, start_worker, counting_openai):
    start_worker(REAL_ENV)
    counting_openai.script.chunk_delay = 0.05
    prompt = openai_prompt("stoppable", cases=6)
    run = eval_runs.start_run(prompt, owner=OWNER)
    wait_for(lambda: any(status == "passed" for *_, status in statuses(run.id)), timeout=60)
    eval_runs.stop_run(db.session.get(EvalRun, run.id), "tester")
    wait_for(lambda: all(status != "running" for *_, status in statuses(run.id)), timeout=60)
    done = [status for *_, status in statuses(run.id)]
    assert "stopped" in done and set(done) <= {"passed", "stopped"}
    assert counting_openai.stream_requests() == done.count("passed")
    assert db.session.get(EvalRun, run.id).status == "stopped"

    # Today's token budget (100,000) nearly spent: the run pauses with the sentence, its cases stay queued.
    counting_openai.script.chunk_delay = 0.0
    calls = counting_openai.stream_requests()
    key = usage_key(budget.today())
    real_redis.client(0).hset(key, f"{OWNER}|unpriced_tokens", 100000 - 100)
    paused = eval_runs.start_run(openai_prompt("budgeted", cases=5), owner=OWNER)
    paused = wait_for(lambda: ended(paused.id), timeout=60)
    assert paused.status == "paused" and "budget" in paused.status_reason
    waiting = [status for *_, status in statuses(paused.id)]
    assert "queued" in waiting and counting_openai.stream_requests() - calls == waiting.count("passed")
    slug = db.session.get(EvalRun, paused.id).results[0].run.prompt_id
    slug = db.session.get(Prompt, slug).slug
    page = real_app.test_client().get(f"/prompts/{slug}/runs/{paused.id}").get_data(as_text=True)
    assert "budget" in page and ">Resume<" in page
    real_redis.client(0).delete(key)  # a new day
    eval_runs.resume_run(paused)
    paused = wait_for(lambda: ended(paused.id), timeout=60)
    assert paused.status == "finished"
    assert [status for *_, status in statuses(paused.id)] == ["passed"] * 5
    assert counting_openai.stream_requests() - calls == 5


@pytest.mark.integration
def test_a_playground_reply_is_not_queued_behind_a_run(real_app, start_worker, counting_openai):
    """One worker, a run of 8 slow results: the reply sent meanwhile is the next job the worker takes."""
    counting_openai.script.chunk_delay = 0.1
    run = eval_runs.start_run(openai_prompt("behind", cases=8), owner=OWNER)
    start_worker(REAL_ENV)
    wait_for(lambda: any(status == "running" for *_, status in statuses(run.id)), timeout=60)
    playground = Playground(real_app.test_client())
    playground.page()
    finished_before = sum(status == "passed" for *_, status in statuses(run.id))
    assert playground.send("hello").status_code == 303  # echo: no provider call
    wait_for(lambda: [m.status for m in playground.messages(real_app)] == ["done", "done"], timeout=60)
    # Taken right after the result in hand (about a second each): not after the run's other queued job.
    assert sum(status == "passed" for *_, status in statuses(run.id)) - finished_before <= 1
    eval_runs.stop_run(db.session.get(EvalRun, run.id))


@pytest.mark.integration
def test_a_worker_killed_mid_case_errors_that_result_and_the_run_goes_on(real_app, start_worker, counting_openai):
    counting_openai.script.chunk_delay = 0.2  # each call streams for about two seconds
    worker = start_worker(REAL_ENV)
    run = eval_runs.start_run(openai_prompt("killed", cases=3), owner=OWNER)
    wait_for(lambda: any(status == "running" for *_, status in statuses(run.id)), timeout=60)
    (child,) = psutil.Process(worker.pid).children()
    child.kill()  # the supervisor fails its result at once and starts another child
    counting_openai.script.chunk_delay = 0.0
    run = wait_for(lambda: ended(run.id), timeout=60)
    assert run.status == "finished"
    results = db.session.get(EvalRun, run.id).results
    assert sorted(result.status for result in results) == ["error", "passed", "passed"]
    assert next(result.error for result in results if result.status == "error") == eval_runs.WORKER_LOST


@pytest.mark.integration
def test_the_cli_waits_for_real_workers_and_ends_with_its_json_line(
    real_app, real_redis, start_worker, counting_openai
):
    start_worker(REAL_ENV)
    slug = openai_prompt("ci", cases=3, checks=[{"type": "contains", "value": "fake model"}]).slug
    env = {**service_env(real_redis), **REAL_ENV}
    command = ["--app", "wsgi", "evals", "run", slug, "--label", "latest"]
    passing = run_flask(command + ["--repeat", "2", "--json", "--min-pass", "1"], env)
    assert passing.returncode == 0, passing.stderr
    summary = json.loads(passing.stdout.strip().splitlines()[-1])
    assert (summary["cases"], summary["results"], summary["passed"], summary["pass_rate"]) == (3, 6, 6, 1.0)
    counting_openai.script.reply = "Something else entirely."
    failing = run_flask(command + ["--json", "--baseline", str(summary["run"])], env)
    assert failing.returncode == 1
    regressed = json.loads(failing.stdout.strip().splitlines()[-1])
    assert regressed["regressions"] == ["case 0", "case 1", "case 2"] and regressed["passed"] == 0
    usage = run_flask(command + ["--version", "1"], env, timeout=60)
    assert usage.returncode == 2 and "not both" in usage.stderr


@pytest.mark.browser
@pytest.mark.integration
def test_the_run_page_updates_live_as_the_worker_writes_results(real_app, live_server, start_worker, page):
    prompt = create_prompt("Live run", "x", slug=unique("live-run"), author="t")
    for number in range(4):
        add_case(prompt, f"case {number}", f"hello {number}", checks=[{"type": "contains", "value": "hello"}])
    run = eval_runs.start_run(prompt, repeat=2, owner=OWNER)  # queued: no worker yet
    page.goto(f"{live_server}/prompts/{prompt.slug}/runs/{run.id}")
    assert page.text_content(".count-passed") == "0"
    page.evaluate("window.sameDocument = true")
    start_worker(REAL_ENV)
    from playwright.sync_api import expect

    expect(page.locator(".count-passed")).to_have_text("8", timeout=60_000)
    expect(page.locator("tr.result-passed")).to_have_count(8)
    expect(page.locator(".run-status-word")).to_have_text("finished")
    expect(page.locator("#run-controls button")).to_have_count(0)  # Stop went with the run's end
    assert page.evaluate("window.sameDocument") is True  # updated in place, never reloaded
    screenshot(page, "eval-run")
