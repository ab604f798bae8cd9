"""Test runs: on the test config (jobs inline, fakeredis) for the logic, then through the real path (a real
Redis, real `flask worker` processes, a fake OpenAI-compatible server counting calls), and in Chromium."""

import hashlib
import json

import pytest

from prompt_tracker import create_app
from prompt_tracker.evals.models import EvalResult, EvalRun, TestCase
from prompt_tracker.extensions import db, services
from prompt_tracker.prompts.library import create_prompt, save_version
from prompt_tracker.replies import eval_runs

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
