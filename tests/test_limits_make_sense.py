"""Limits that make sense (issue 17): a refused send counts nothing against the send rate, `echo` costs
nothing, limits without sign-in are each browser's own, a replay past the rate is paced rather than refused
(on a real Redis and a real worker), and each refusal names its limit in words."""

import re
import time

import pytest
from limits import parse
from rq import SimpleWorker
from rq.serializers import JSONSerializer

from prompt_tracker import create_app
from prompt_tracker.domain.pricing import is_priced
from prompt_tracker.domain.settings import STANDALONE
from prompt_tracker.extensions import LIMIT_PREFIX, db, limiter, services
from prompt_tracker.limits import budget

from .conftest import Playground, service_env, wait_for

REPLAY = STANDALONE + "~replay"


def make(overrides=None, queued=False):
    """An app on the test config; ``queued``: jobs wait in the (fake) queue until ``run_jobs``."""
    app = create_app("test", {**(overrides or {}), **({"RQ_ASYNC": True} if queued else {})})
    return app, Playground(app.test_client())


def run_jobs(app) -> None:
    with app.app_context():
        SimpleWorker([services.queue], connection=services.jobs_redis, serializer=JSONSerializer).work(burst=True)


def owner(playground) -> str:
    return f"browser:{playground.store()}"


def sends_counted(app, playground) -> int:
    """What the session's counter of RATE_LIMIT_SENDS holds now."""
    with app.app_context():
        rate = parse(app.config["RATE_LIMIT_SENDS"])
        return limiter.limiter.storage.get(rate.key_for(LIMIT_PREFIX, f"user:{owner(playground)}", "sends"))


def text(response) -> str:
    return response.get_data(as_text=True)


# --- 1. a refused send counts nothing ------------------------------------------------------------


def test_a_send_refused_for_any_reason_counts_nothing_against_the_send_rate():
    limits = {"RATE_LIMIT_SENDS": "2/minute", "MAX_OPEN_REPLIES": 1, "MAX_MESSAGE_CHARS": 50}
    app, playground = make({**limits, "MAX_CONVERSATION_MESSAGES": 2}, queued=True)
    assert playground.send("one").status_code == 303  # the conversation is full with its reply
    assert sends_counted(app, playground) == 1
    refusals = {
        "open replies": (playground.send("while one is written"), 429, "being written"),
        "message size": (playground.send("x" * 51), 422, "Messages are limited to 50 characters"),
        "empty": (playground.send("  "), 422, "Type a message before sending."),
    }
    run_jobs(app)
    app.config["ALLOWED_MODELS"] = ["openai:*"]  # the operator narrows the list after the settings were saved
    refusals["allow-list"] = (playground.send("an echo"), 422, "echo / echo-1 is not allowed here")
    app.config["ALLOWED_MODELS"] = []
    refusals["conversation full"] = (playground.send("one too many"), 422, "reached its limit of 2 messages")
    assert {name: (r.status_code, sentence in text(r)) for name, (r, _, sentence) in refusals.items()} == {
        name: (status, True) for name, (_, status, _) in refusals.items()
    }
    assert sends_counted(app, playground) == 1  # none of them counted
    assert playground.reset().status_code == 303
    assert playground.send("two").status_code == 303
    run_jobs(app)
    refused = playground.send("three")
    assert refused.status_code == 429 and "Too many messages: the limit is 2 per minute." in text(refused)
    assert sends_counted(app, playground) == 2  # the rate's own refusal counts nothing either
    # A fetch's refusal (JSON) and a form sent twice (nothing new queued) count nothing as well.
    with app.app_context():
        limiter.reset()
    assert playground.reset().status_code == 303
    token = playground.token()
    form = {"content": "once", "csrf_token": token, "client_token": "composer-form-0001"}
    assert playground.client.post("/playground/messages", data=form).status_code == 303
    run_jobs(app)
    assert playground.client.post("/playground/messages", data=form).status_code == 303  # the duplicate
    fetched = playground.client.post(
        "/playground/messages", data={"content": "y" * 51, "csrf_token": token}, headers={"Accept": "application/json"}
    )
    assert fetched.status_code == 422
    assert sends_counted(app, playground) == 1


def test_a_compare_send_counts_two_and_a_refused_one_nothing():
    app, playground = make({"RATE_LIMIT_SENDS": "3/minute", "MAX_MESSAGE_CHARS": 50})
    token = playground.token()
    on = {"provider": "echo", "model": "echo-1", "csrf_token": token}
    assert playground.client.post("/playground/compare", data=on).status_code == 303
    assert playground.send("x" * 51).status_code == 422
    assert sends_counted(app, playground) == 0
    assert playground.send("to both").status_code == 303
    assert sends_counted(app, playground) == 2
    assert playground.send("needs two, one left").status_code == 429
    assert sends_counted(app, playground) == 2


# --- 2. echo costs nothing -----------------------------------------------------------------------


def test_echo_never_counts_against_the_budget_but_does_against_the_send_rate(fake_openai):
    app, playground = make({"DAILY_BUDGET_TOKENS": 30, "RATE_LIMIT_SENDS": "3/minute"})
    assert playground.save_settings(provider="openai", model="gpt-4o-mini", max_tokens=10).status_code == 303
    assert playground.send("a first message for the model").status_code == 303  # 30 tokens: the budget
    assert playground.send("over the budget").status_code == 429
    assert playground.save_settings(provider="echo", model="echo-1").status_code == 303
    for words in ("echo is free", "still free"):
        assert playground.send(words).status_code == 303
    with app.app_context():
        assert budget.spent(owner(playground)) == budget.Spend(tokens=30, unpriced_tokens=30, replies=1)
        assert budget.held(owner(playground)) == []
    refused = playground.send("the rate still holds")
    assert refused.status_code == 429 and "Too many messages" in text(refused)


# --- 3. without sign-in, each browser has its own limits; signed in, the user's sessions share ----


def test_without_sign_in_each_browser_session_has_limits_of_its_own(fake_openai):
    app, first = make({"RATE_LIMIT_SENDS": "1/minute", "DAILY_BUDGET_TOKENS": 30})
    second = Playground(app.test_client())
    for playground in (first, second):
        assert playground.save_settings(provider="openai", model="gpt-4o-mini", max_tokens=10).status_code == 303
        assert playground.send("a first message for the model").status_code == 303
    assert first.send("again").status_code == 429
    with app.app_context():
        assert budget.spent(owner(first)).unpriced_tokens == budget.spent(owner(second)).unpriced_tokens == 30
        assert budget.spent("local") == budget.Spend()  # no bucket shared by every visitor


def test_signed_in_the_open_replies_cap_counts_every_session_of_the_user():
    app, _ = make(
        {
            "AUTH_MODE": "header",
            "TRUSTED_PROXIES": ["127.0.0.1"],
            "MAX_OPEN_REPLIES": 2,
            "RATE_LIMIT_SENDS": "3/minute",
        },
        queued=True,
    )
    with app.app_context():
        db.create_all()
    first, second = Playground(app.test_client()), Playground(app.test_client())  # two browsers of alice
    for playground in (first, second):
        playground.client.environ_base["HTTP_X_FORWARDED_USER"] = "alice@example.com"
    assert first.send("one").status_code == 303
    assert second.send("two").status_code == 303
    refused = second.send("three")
    assert refused.status_code == 429 and "being written" in text(refused)
    run_jobs(app)
    assert first.send("four").status_code == 303
    refused = second.send("five")  # the rate is the user's too: one, two and four counted, three not
    assert refused.status_code == 429 and "the limit is 3 per minute" in text(refused)


# --- 5. each refusal names the limit it hit ----------------------------------------------------


def test_the_rate_is_said_in_words():
    app, playground = make({"RATE_LIMIT_SENDS": "1 per 15 minutes"})
    assert playground.send("one").status_code == 303
    refused = playground.send("two")
    assert refused.status_code == 429
    assert "Too many messages: the limit is 1 per 15 minutes. Try again in 15 minutes." in text(refused)


def test_a_priced_claude_model_behind_a_proxy_is_refused_by_the_dollar_budget(fake_anthropic):
    """ANTHROPIC_BASE_URL at a proxy the price data does not know (here the fake server): Claude's ids keep
    Anthropic's prices, so the dollar budget refuses, never the sentence about unpriced models."""
    app, playground = make({"DAILY_BUDGET_USD": 0.01, "DAILY_BUDGET_TOKENS": 1_000_000})
    with app.app_context():
        assert is_priced("anthropic", "claude-sonnet-4-5") and is_priced("anthropic", "claude-3-5-haiku-latest")
        assert not is_priced("anthropic", "llama3")  # not an Anthropic id: no price behind that URL
    assert playground.save_settings(provider="anthropic", model="claude-sonnet-4-5", max_tokens=8000).status_code == 303
    refused = playground.send("hello")
    assert refused.status_code == 429
    page = text(refused)
    assert "Today&#39;s budget of $0.01 has $0.0100 left" in page and "no known price" not in page
    assert playground.save_settings(provider="anthropic", model="llama3", max_tokens=8000).status_code == 303
    app.config["DAILY_BUDGET_TOKENS"] = 100
    refused = playground.send("hello")
    assert refused.status_code == 429
    assert "tokens on models with no known price (anthropic / llama3 is one)" in text(refused)


# --- 4. a replay past the rate is paced, on a real Redis and a real worker ------------------------


@pytest.mark.integration
def test_a_replay_past_the_rate_is_paced_by_the_worker_and_finishes(real_redis, monkeypatch, start_worker):
    """1 send per 2 seconds, three turns: each turn waits for its window (a job RQ's scheduler queues when
    it is due; no worker sleeps), the page says when the next one starts, and the replay finishes."""
    for key, value in service_env(real_redis).items():
        monkeypatch.setenv(key, value)
    app = create_app("development", overrides={"DEBUG": False, "RATE_LIMIT_SENDS": "1 per 2 seconds"})
    start_worker()  # the tests' usual worker: a replay is paced by the rate it started with (its ticket's)
    playground = Playground(app.test_client())
    for words in ("one", "two", "three"):
        added = {"role": "user", "content": words, "csrf_token": playground.token()}
        assert playground.client.post("/playground/messages/add", data=added).status_code == 303
    started = {"provider": "echo", "model": "echo-1", "csrf_token": playground.token()}
    assert playground.client.post("/playground/replay", data=started).status_code == 303

    def paced_sentence():
        rows = text(playground.client.get("/playground/replay/rows"))
        found = re.search(r"Paced by the send limit: turn \d of 3 starts at \d\d:\d\d:\d\d UTC\.", rows)
        return found and found.group(0)

    assert wait_for(paced_sentence, timeout=20, interval=0.05)

    def finished():
        with app.app_context():
            replayed = services.conversations.all(playground.store(), REPLAY)
        return len(replayed) == 6 and all(m.status == "done" for m in replayed) and replayed

    replayed = wait_for(finished, timeout=30)
    asked = [m.created_at for m in replayed if m.role == "user"]
    assert [round(b - a, 1) >= 1.0 for a, b in zip(asked, asked[1:])] == [True, True]  # one window apart, about
    page = text(playground.client.get("/playground/replay"))
    assert "Replay finished: 3 turns." in page
    # The waiting turns were jobs scheduled for later, each sent once.
    jobs = [key.decode() for key in real_redis.client(0).scan_iter("rq:job:paced-*")]
    assert len(jobs) >= 2
    assert all(real_redis.client(0).hget(job, "status") == b"finished" for job in jobs)
    assert time.time() - asked[0] < 30
