"""One gate before every provider call: effective settings, the per-user open-replies cap, budgets that
reserve what a reply may cost when it is queued and settle what it cost when it ends (test config)."""

import io
import json

import pytest
from rq import SimpleWorker
from rq.serializers import JSONSerializer

from prompt_tracker import create_app
from prompt_tracker.domain.settings import STANDALONE
from prompt_tracker.extensions import db, services
from prompt_tracker.limits import budget

from .conftest import Playground


def make(overrides=None, queued=False):
    """An app on the test config; ``queued``: jobs wait in the (fake) queue until ``run_jobs``."""
    app = create_app("test", {**(overrides or {}), **({"RQ_ASYNC": True} if queued else {})})
    return app, Playground(app.test_client())


def run_jobs(app) -> None:
    with app.app_context():
        SimpleWorker([services.queue], connection=services.jobs_redis, serializer=JSONSerializer).work(burst=True)


def owner(playground) -> str:
    """Whom the limits count against without sign-in: the browser's session, by its store id."""
    return f"browser:{playground.store()}"


def spend(app, playground):
    with app.app_context():
        return budget.spent(owner(playground))


def replies(app, playground, name=STANDALONE):
    with app.app_context():
        return [m for m in services.conversations.all(playground.store(), name) if m.role == "assistant"]


def use_openai(playground, **fields):
    assert playground.save_settings(provider="openai", model="gpt-4o-mini", **fields).status_code == 303


def sent_max_tokens(fake_openai) -> int:
    body = fake_openai.requests[-1].body
    return body.get("max_completion_tokens") or body.get("max_tokens")


# --- effective settings ----------------------------------------------------------------------


def test_settings_saved_before_the_ceiling_was_lowered_are_clamped_to_it(fake_openai):
    app, playground = make()
    use_openai(playground, max_tokens=32000)
    app.config["MAX_TOKENS_CEILING"] = 2048  # the operator lowers it afterwards
    assert playground.send("hello").status_code == 303
    assert sent_max_tokens(fake_openai) == 2048
    assert replies(app, playground)[-1].params["max_tokens"] == 2048  # the reply records what was sent
    # Retry too.
    assert playground.retry(replies(app, playground)[-1].id).status_code == 303
    assert fake_openai.stream_requests() == 2 and sent_max_tokens(fake_openai) == 2048


def test_a_version_holding_more_max_tokens_than_the_ceiling_is_clamped_in_compare_and_replay(fake_openai):
    from prompt_tracker.prompts.library import find_prompt, save_version

    app, playground = make({"MAX_TOKENS_CEILING": 1000})
    with app.app_context():
        db.create_all()
    token = playground.token()
    playground.client.post("/prompts", data={"name": "Big", "system_prompt": "Be big.", "csrf_token": token})
    with app.app_context():
        prompt = find_prompt("big")
        params = {"temperature": 0.7, "max_tokens": 32000}
        save_version(
            prompt.id, system_prompt="Be big.", provider="openai", model="gpt-4o-mini", params=params, variables={}
        )
    path = "/prompts/big/playground"
    assert playground.client.post(f"{path}/messages", data={"content": "hi", "csrf_token": token}).status_code == 303
    assert sent_max_tokens(fake_openai) == 1000
    form = {"provider": "openai", "model": "gpt-4o-mini", "version": "2", "csrf_token": token}
    assert playground.client.post(f"{path}/replay", data=form).status_code == 303
    assert fake_openai.stream_requests() == 2 and sent_max_tokens(fake_openai) == 1000
    assert playground.client.post(f"{path}/compare", data=form).status_code == 303
    assert playground.client.post(f"{path}/messages", data={"content": "again", "csrf_token": token}).status_code == 303
    assert fake_openai.stream_requests() == 4
    assert all(
        (request.body.get("max_completion_tokens") or request.body.get("max_tokens")) == 1000
        for request in fake_openai.requests
    )


def test_a_rendered_system_prompt_longer_than_the_cap_is_refused(fake_openai):
    app, playground = make({"MAX_SYSTEM_PROMPT_CHARS": 50})
    use_openai(playground, system_prompt="Hello {{ name }}")
    playground.client.post("/playground/variables", data={"name": "x" * 60, "csrf_token": playground.token()})
    response = playground.send("hi")
    assert response.status_code == 422
    assert "longer than the limit of 50 characters" in response.get_data(as_text=True)
    assert fake_openai.stream_requests() == 0


def test_retry_of_an_imported_over_long_message_is_refused_with_nothing_sent(fake_openai):
    app, playground = make({})
    playground.send("short")
    exported = json.loads(playground.client.get("/playground/export.json").get_data())
    exported["messages"][0]["content"] = "x" * 5000
    data = {"csrf_token": playground.token(), "file": (io.BytesIO(json.dumps(exported).encode()), "c.json")}
    assert playground.client.post("/playground/import", data=data).status_code == 303
    # A message past the cap as it is now (imported before the cap was lowered, or before imports obeyed it).
    app.config["MAX_MESSAGE_CHARS"] = 100
    use_openai(playground)
    reply = replies(app, playground)[-1]
    response = playground.retry(reply.id)
    assert response.status_code == 303
    assert "Messages are limited to 100 characters; the one this reply answers has 5,000." in (
        playground.page().get_data(as_text=True)
    )
    assert fake_openai.stream_requests() == 0
    assert replies(app, playground)[-1].attempt == 1  # nothing queued


# --- the open-replies cap is per user ----------------------------------------------------------


def test_without_sign_in_the_open_replies_cap_is_each_browser_sessions_own():
    """AUTH_MODE=none: one visitor's open replies never refuse another's (signed in, every session of the
    user counts together: tests/test_limits_make_sense.py)."""
    app, first = make({"MAX_OPEN_REPLIES": 2}, queued=True)
    second = Playground(app.test_client())  # another browser
    assert first.send("one").status_code == 303
    assert first.send("two").status_code == 303
    refused = first.send("three")
    assert refused.status_code == 429 and "being written" in refused.get_data(as_text=True)
    assert second.send("its own").status_code == 303
    run_jobs(app)  # the replies end: room again
    assert first.send("four").status_code == 303


# --- budgets reserve, then settle --------------------------------------------------------------


def test_replies_in_flight_count_against_the_budget(fake_openai):
    # The fake server's endpoint has no known price: its tokens count against DAILY_BUDGET_TOKENS.
    app, playground = make({"DAILY_BUDGET_TOKENS": 250}, queued=True)
    use_openai(playground, max_tokens=100)
    assert playground.send("one").status_code == 303
    assert playground.send("two").status_code == 303
    refused = playground.send("three")  # two replies of up to ~100 tokens each are in flight
    assert refused.status_code == 429
    assert "budget of 250 tokens" in refused.get_data(as_text=True)
    run_jobs(app)
    assert fake_openai.stream_requests() == 2
    used = spend(app, playground)
    assert used.replies == 2 and used.unpriced_tokens == 60  # settled with what the provider reported
    assert playground.send("three").status_code == 303  # the reservations were released


def test_a_stopped_reply_records_an_estimate_of_what_it_cost(fake_openai):
    app, playground = make({"DAILY_BUDGET_TOKENS": 10_000}, queued=True)
    use_openai(playground, max_tokens=100)
    fake_openai.script.reply = " ".join(f"word{n}" for n in range(200))
    playground.send("a question of some length")
    reply = replies(app, playground)[-1]
    with app.app_context():  # Stop pressed while it streams: the worker stops at its first flush
        services.conversations.request_stop(playground.store(), reply.id, 60)
    run_jobs(app)
    assert replies(app, playground)[-1].status == "stopped"
    used = spend(app, playground)
    assert used.replies == 1 and used.unpriced_tokens > 0 and used.tokens == used.unpriced_tokens


def test_a_failed_reply_records_an_estimate_and_releases_its_reservation(fake_openai):
    app, playground = make({"DAILY_BUDGET_TOKENS": 10_000})
    use_openai(playground, max_tokens=100)
    fake_openai.script.status = 500
    playground.send("x" * 400)
    assert replies(app, playground)[-1].status == "failed"
    used = spend(app, playground)
    assert used.replies == 1 and used.unpriced_tokens >= 100  # the request's 400 characters, at least
    with app.app_context():
        assert budget.held(owner(playground)) == []


def test_a_reply_dropped_by_reset_releases_its_reservation(fake_openai):
    app, playground = make({"DAILY_BUDGET_TOKENS": 10_000}, queued=True)
    use_openai(playground, max_tokens=100)
    playground.send("one")
    with app.app_context():
        assert len(budget.held(owner(playground))) == 1
    playground.reset()
    run_jobs(app)
    assert fake_openai.stream_requests() == 0
    with app.app_context():
        assert budget.held(owner(playground)) == []
    assert spend(app, playground).unpriced_tokens == 0


def test_the_offline_echo_model_never_counts_against_the_budget():
    app, playground = make({"DAILY_BUDGET_TOKENS": 5, "DAILY_BUDGET_USD": 0.001})
    for text in ("one", "two", "three"):
        assert playground.send(text).status_code == 303
    used = spend(app, playground)
    assert used == budget.Spend()  # nothing recorded: no reply, no token, no dollar


@pytest.mark.parametrize("model", ["gpt-4o-mini"])
def test_a_priced_reply_reserves_dollars_at_the_models_price(monkeypatch, model):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-key")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    app, playground = make({"DAILY_BUDGET_USD": 0.0001}, queued=True)
    use_openai(playground, max_tokens=32000)  # up to 32,000 output tokens: more than $0.0001
    refused = playground.send("one")
    assert refused.status_code == 429
    assert "budget of $0.00" in refused.get_data(as_text=True)
    assert replies(app, playground) == []
