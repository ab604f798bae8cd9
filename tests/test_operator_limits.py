"""Limits that protect the operator: the model allow-list, the max_tokens ceiling, rates and budgets."""

import pytest

from prompt_tracker import create_app

from .conftest import Playground


@pytest.fixture
def strict_app(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-key")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-not-a-key")
    return create_app("test", {"ALLOWED_MODELS": ["echo:*", "openai:gpt-4o-mini"], "MAX_TOKENS_CEILING": 2048})


def test_only_allowed_providers_are_offered(strict_app):
    page = strict_app.test_client().get("/playground").get_data(as_text=True)
    assert 'value="echo"' in page and 'value="openai"' in page
    assert 'value="anthropic"' not in page


@pytest.mark.parametrize(
    ("fields", "sentence"),
    [
        (
            {"provider": "openai", "model": "gpt-4o"},
            "openai / gpt-4o is not allowed here; allowed: echo:*, openai:gpt-4o-mini.",
        ),
        ({"provider": "anthropic", "model": "claude-3-5-haiku-latest"}, "Not a valid choice"),
        ({"max_tokens": 4096}, "Max tokens is limited to 2,048 here."),
    ],
)
def test_a_setting_outside_the_limits_is_refused_next_to_its_field(strict_app, fields, sentence):
    playground = Playground(strict_app.test_client())
    response = playground.save_settings(**fields)
    assert response.status_code == 422
    assert sentence in response.get_data(as_text=True)


def test_allowed_settings_are_saved(strict_app):
    playground = Playground(strict_app.test_client())
    assert playground.save_settings(provider="openai", model="gpt-4o-mini", max_tokens=2048).status_code == 303


def test_sends_past_the_rate_are_refused_with_a_sentence_and_the_text_kept():
    app = create_app("test", {"RATE_LIMIT_SENDS": "2/minute"})
    playground = Playground(app.test_client())
    assert playground.send("one").status_code == 303
    assert playground.send("two").status_code == 303
    refused = playground.send("three, typed with care")
    assert refused.status_code == 429
    page = refused.get_data(as_text=True)
    assert "Too many messages: the limit is 2 per minute. Try again in" in page
    assert "three, typed with care" in page  # still in the composer
    assert [m.content for m in playground.messages(app) if m.role == "user"] == ["one", "two"]
    # Retry calls the model too: it counts against the same rate.
    reply = playground.messages(app)[-1]
    assert playground.retry(reply.id).status_code == 429
    # The page's fetch gets the sentence as JSON.
    token = playground.token()
    fetched = playground.client.post(
        "/playground/messages", data={"content": "four", "csrf_token": token}, headers={"Accept": "application/json"}
    )
    assert fetched.status_code == 429 and fetched.get_json()["error"].startswith("Too many messages")


def test_the_daily_token_budget_for_unpriced_models_refuses_the_next_send_and_usage_shows_it(fake_openai):
    # The fake server's endpoint has no known price: each reply counts its 30 tokens (21 in, 9 out).
    app = create_app("test", {"DAILY_BUDGET_TOKENS": 30})
    playground = Playground(app.test_client())
    assert playground.save_settings(provider="openai", model="gpt-4o-mini", max_tokens=10).status_code == 303
    assert playground.send("a first message for the model").status_code == 303
    assert playground.messages(app)[-1].status == "done"  # jobs run inline on the test config
    refused = playground.send("over the budget")
    assert refused.status_code == 429
    page = refused.get_data(as_text=True)
    assert (
        "You have used today&#39;s budget of 30 tokens on models with no known price (30 used; openai / gpt-4o-mini is one)"
        in page
    )
    assert "resets at midnight UTC" in page and "over the budget" in page
    usage = app.test_cli_runner().invoke(args=["usage", "--days", "2"])
    assert usage.exit_code == 0
    # Without sign-in the limits are the browser session's (by its store id), not one bucket for all.
    row = next(line for line in usage.output.splitlines() if f" browser:{playground.store()[:24]}" in line)
    assert row.split()[2] == "1"  # one reply
    assert "1 user-day in the last 2 days" in usage.output


def test_the_daily_usd_budget_counts_recorded_costs(monkeypatch):
    from prompt_tracker.domain.messages import Usage
    from prompt_tracker.limits import budget

    app = create_app("test", {"DAILY_BUDGET_USD": 0.01})
    with app.test_request_context():
        budget.record("alice", Usage(input_tokens=10, output_tokens=10), 0.004)
        budget.check("alice")
        budget.record("alice", Usage(input_tokens=10, output_tokens=10), 0.007)
        with pytest.raises(budget.BudgetExceeded, match=r"budget of \$0.01 \(\$0.01 spent\)"):
            budget.check("alice")
        budget.check("bob")  # others are not affected


# --- the history cap ---------------------------------------------------------------------------


def test_cap_history_keeps_the_newest_messages_that_fit_starting_with_a_user_turn():
    from prompt_tracker.domain.history import cap_history

    history = [("system", "s" * 10), ("user", "a" * 50), ("assistant", "b" * 50), ("user", "c" * 50)]
    assert cap_history(history, 0) == (history, 0)  # no cap
    assert cap_history(history, 160) == (history, 0)
    # 110 fits the last user turn and the reply before it; a history never starts with a reply.
    assert cap_history(history, 110) == ([("user", "c" * 50)], 3)
    assert cap_history(history, 150) == (history[1:], 1)
    # The newest message goes whatever its length (the send validated it).
    assert cap_history([("user", "x" * 500)], 100) == ([("user", "x" * 500)], 0)


def test_a_long_conversation_sends_only_its_newest_turns_and_the_reply_says_so():
    app = create_app("test", {"MAX_HISTORY_CHARS": 200})  # a turn: 60 characters asked, 80 replied
    playground = Playground(app.test_client())
    for letter in "abc":
        assert playground.send(letter * 60).status_code == 303
    first, second, last = [m for m in playground.messages(app) if m.role == "assistant"]
    assert first.history_dropped == second.history_dropped == 0 and "(turn 2)" in second.content
    # The third send left out the first turn: the echo model saw two user turns.
    assert last.history_dropped == 2 and "(turn 2)" in last.content
    assert last.request["history"]["count"] == 3 and last.request["history"]["dropped"] == 2
    view = playground.client.get(f"/playground/messages/{last.id}/request").get_data(as_text=True)
    # "b" twice: the second message and the reply that repeats it
    assert view.count("a" * 60) == 0 and view.count("b" * 60) == 2 and view.count("c" * 60) == 1
    page = playground.page().get_data(as_text=True)
    assert page.count("earliest messages were not sent") == 1
    assert "The 2 earliest messages were not sent with this request" in page
    assert "capped at 200 characters" in page
