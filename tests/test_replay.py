"""Replay on the test config (inline jobs): turns in order with the replay's own history, the diff, limits."""

import re

import pytest
from msgspec.structs import replace

from prompt_tracker import create_app
from prompt_tracker.domain.keys import conversation_key, held_key
from prompt_tracker.domain.settings import STANDALONE
from prompt_tracker.domain.text_diff import similarity, word_diff
from prompt_tracker.extensions import services
from prompt_tracker.replies.replay import plan

from .conftest import Playground

REPLAY = STANDALONE + "~replay"
PREFIX = "prompt_tracker:session:"


def sent_messages(reply, conversation) -> list:
    """The messages ``reply``'s provider was sent, as the request view rebuilds them (checked unchanged)."""
    from prompt_tracker.domain.recorded_request import sent_request

    sent, unchanged = sent_request(reply, conversation)
    assert unchanged
    return sent["body"]["messages"]


def start(playground, **fields):
    data = {"provider": "echo", "model": "echo-1", "csrf_token": playground.token(), **fields}
    return playground.client.post("/playground/replay", data=data)


def conversation(app, playground, name=STANDALONE):
    with app.app_context():
        return services.store.all(playground.store(), name)


def raw_list(app, playground, name=STANDALONE):
    with app.app_context():
        return services.store.redis.lrange(conversation_key(PREFIX, playground.store(), name), 0, -1)


def sentence(html: str) -> str:
    return re.search(r'class="replay-sentence"[^>]*>([^<]*)<', html).group(1)


def test_a_replay_runs_the_turns_in_order_with_its_own_history_and_leaves_the_original_untouched(app, playground):
    for text in ("one", "two", "three"):
        playground.send(text)
    original = raw_list(app, playground)
    playground.save_settings(system_prompt="Be brief.")  # the replay runs with the new system prompt

    assert start(playground).status_code == 303

    replayed = conversation(app, playground, REPLAY)
    assert [(m.role, m.status) for m in replayed] == [("user", "done"), ("assistant", "done")] * 3
    assert [m.content for m in replayed if m.role == "user"] == ["one", "two", "three"]
    # Each turn was sent with the replay's history: its user turns and its new replies so far.
    replies = [m for m in replayed if m.role == "assistant"]
    assert [m.content for m in replies] == [
        f"You said: {text}\n\n(system prompt: 9 characters; turn {number})"
        for number, text in enumerate(("one", "two", "three"), 1)
    ]
    assert sent_messages(replies[2], replayed) == [
        ["user", "one"],
        ["assistant", replies[0].content],
        ["user", "two"],
        ["assistant", replies[1].content],
        ["user", "three"],
    ]
    assert raw_list(app, playground) == original  # byte for byte

    html = playground.client.get("/playground/replay").get_data(as_text=True)
    assert sentence(html) == "Replay finished: 3 turns."
    assert html.count('class="turn"') == 3
    assert "<ins" in html and "system prompt: 9 characters; turn 1" in html


def test_the_diff_is_escaped_and_marks_what_changed():
    pieces = word_diff("Say <b>hi</b> to Ada", "Say <b>hello</b> to Ada")
    assert [(p.kind, p.text) for p in pieces] == [
        ("same", "Say <b>"),
        ("removed", "hi"),
        ("added", "hello"),
        ("same", "</b> to Ada"),
    ]
    assert similarity(word_diff("same text", "same text")) == 1.0
    assert 0 < similarity(pieces) < 1


def test_the_page_escapes_reply_text_in_the_diff(app, playground):
    playground.send("<script>alert(1)</script>")
    playground.save_settings(system_prompt="x")
    start(playground)
    html = playground.client.get("/playground/replay/rows").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert re.search(r"<ins [^>]*>[^<]*system prompt: 1 characters", html)


def test_system_text_and_hand_written_examples_are_copied_not_replayed(app, playground):
    token = playground.token()
    for role, text in (("system", "Answer in French."), ("user", "I loved it"), ("assistant", "positive")):
        playground.client.post("/playground/messages/add", data={"role": role, "content": text, "csrf_token": token})
    playground.send("It was awful")
    turns = plan(conversation(app, playground))
    assert [turn.user.content for turn in turns] == ["It was awful"]
    start(playground)
    replayed = conversation(app, playground, REPLAY)
    assert [(m.role, m.content) for m in replayed[:4]] == [
        ("system", "Answer in French."),
        ("user", "I loved it"),
        ("assistant", "positive"),
        ("user", "It was awful"),
    ]
    assert sent_messages(replayed[4], replayed) == [
        ["system", "Answer in French."],
        ["user", "I loved it"],
        ["assistant", "positive"],
        ["user", "It was awful"],
    ]


def test_reset_of_the_replay_deletes_only_the_replay(app, playground):
    playground.send("one")
    original = raw_list(app, playground)
    start(playground)
    assert conversation(app, playground, REPLAY)
    response = playground.client.post("/playground/replay/reset", data={"csrf_token": playground.token()})
    assert response.status_code == 303
    assert conversation(app, playground, REPLAY) == []
    assert raw_list(app, playground) == original
    assert sentence(playground.client.get("/playground/replay").get_data(as_text=True)) == "No replay yet."


def test_the_replay_is_a_conversation_of_the_session(app, playground):
    playground.send("one")
    start(playground)
    keys = app.session_interface.keys_of
    with app.test_request_context(headers={"Cookie": f"_prompt_tracker_session={playground.sid()}"}):
        from flask import session

        assert conversation_key(PREFIX, playground.store(), REPLAY) in keys(session)
    # Purged, refreshed and moved with the session's other keys: same prefix, same hash tag.
    assert conversation_key(PREFIX, playground.store(), REPLAY).startswith(f"{PREFIX}{{{playground.store()}}}")


def test_nothing_to_replay_is_a_sentence(playground):
    response = start(playground)
    assert response.status_code == 422
    assert "Nothing to replay" in response.get_data(as_text=True)


def test_a_failed_turn_halts_the_replay_and_continue_runs_the_rest(app, playground, fake_openai):
    for text in ("one", "two", "three"):
        playground.send(text)
    fake_openai.script.status = 500
    start(playground, provider="openai", model="gpt-4o-mini")
    replayed = conversation(app, playground, REPLAY)
    assert [(m.role, m.status) for m in replayed] == [("user", "done"), ("assistant", "failed")]
    html = playground.client.get("/playground/replay").get_data(as_text=True)
    assert sentence(html).startswith("Halted at turn 1 of 3:")
    assert "Continue" in html
    calls = fake_openai.stream_requests()

    fake_openai.script.status = 200
    response = playground.client.post("/playground/replay/continue", data={"csrf_token": playground.token()})
    assert response.status_code == 303
    replayed = conversation(app, playground, REPLAY)
    assert [(m.role, m.status) for m in replayed] == [("user", "done"), ("assistant", "done")] * 3
    assert fake_openai.stream_requests() == calls + 3  # one call per turn
    assert sentence(playground.client.get("/playground/replay").get_data(as_text=True)) == "Replay finished: 3 turns."


# --- limits: the same per-user rate, budget, allow-list and open-replies cap as a send ----------


def limited(overrides):
    app = create_app("test", overrides)
    return app, Playground(app.test_client())


def test_each_replayed_turn_counts_against_the_send_rate_and_the_rest_are_paced():
    """5 per minute, 3 sends: the replay's first turn (in the view) and its second (in the worker) count;
    the third waits for the window (paced, not refused) and the page says when it starts."""
    app, playground = limited({"RATE_LIMIT_SENDS": "5/minute"})
    for text in ("one", "two", "three"):
        assert playground.send(text).status_code == 303
    assert start(playground).status_code == 303
    assert [m.status for m in conversation(app, playground, REPLAY)] == ["done"] * 4  # two turns, two replies
    page = playground.client.get("/playground/replay").get_data(as_text=True)
    assert re.search(r"Paced by the send limit: turn 3 of 3 starts at \d\d:\d\d:\d\d UTC\.", sentence(page))
    assert "Stop replay" in page
    refused = playground.send("four")  # the replay's turns counted: the window is full
    assert refused.status_code == 429 and "Too many messages: the limit is 5 per minute." in refused.get_data(
        as_text=True
    )


def test_a_replay_longer_than_the_whole_limit_is_paced_and_finishes():
    """2 per minute, 3 turns: two go at once, the third when the window allows it (its scheduled job)."""
    from prompt_tracker.extensions import limiter
    from prompt_tracker.replies.job import run_paced_turn

    app, playground = limited({"RATE_LIMIT_SENDS": "2/minute"})
    token = playground.token()
    for role, text in (("user", "one"), ("user", "two"), ("user", "three")):
        playground.client.post("/playground/messages/add", data={"role": role, "content": text, "csrf_token": token})
    response = playground.client.post(
        "/playground/replay",
        data={"provider": "echo", "model": "echo-1", "csrf_token": token},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 202
    replayed = conversation(app, playground, REPLAY)
    assert [m.content for m in replayed if m.role == "user"] == ["one", "two"]
    with app.app_context():  # one job is scheduled for the window's end, none is queued or waiting in a worker
        scheduled = services.queue.scheduled_job_registry.get_job_ids()
        assert scheduled == [next(i for i in scheduled if i.startswith(f"paced-{replayed[-1].id}-"))]
        assert services.queue.count == 0
    with app.app_context():
        limiter.reset()  # the window ends
    again = start(playground)  # a paced replay is running: no second one beside it (and that counts nothing)
    assert again.status_code == 409
    with app.app_context():
        assert run_paced_turn(replayed[-1].id) == "sent"
        assert run_paced_turn(replayed[-1].id) == "skipped"  # a pace is sent once
    assert [m.content for m in conversation(app, playground, REPLAY) if m.role == "user"] == ["one", "two", "three"]
    page = playground.client.get("/playground/replay").get_data(as_text=True)
    assert sentence(page) == "Replay finished: 3 turns."


def test_stop_ends_a_paced_replay():
    app, playground = limited({"RATE_LIMIT_SENDS": "2/minute"})
    for text in ("one", "two", "three"):
        playground.client.post(
            "/playground/messages/add", data={"role": "user", "content": text, "csrf_token": playground.token()}
        )
    assert start(playground).status_code == 303
    last = conversation(app, playground, REPLAY)[-1]
    stopped = playground.client.post("/playground/replay/stop", data={"csrf_token": playground.token()})
    assert stopped.status_code == 303
    from prompt_tracker.replies.job import run_paced_turn

    with app.app_context():
        assert run_paced_turn(last.id) == "skipped"  # its scheduled job finds nothing to send
    page = playground.client.get("/playground/replay").get_data(as_text=True)
    assert sentence(page).startswith("Halted before turn 3 of 3 (stopped,")


def test_a_model_off_the_allow_list_is_refused():
    app, playground = limited({"ALLOWED_MODELS": ["echo:*"]})
    playground.send("one")
    response = start(playground, provider="openai", model="gpt-4o")
    assert response.status_code == 422
    assert "openai / gpt-4o is not allowed here" in response.get_data(as_text=True)
    assert conversation(app, playground, REPLAY) == []


def test_the_open_replies_cap_refuses_a_replay_with_nothing_queued():
    app, playground = limited({"MAX_OPEN_REPLIES": 2})
    playground.send("one")
    with app.app_context():  # two replies of the session's being written elsewhere (its own cap, without sign-in)
        services.jobs_redis.hset(
            held_key(f"browser:{playground.store()}"), mapping={"a": "9e12 0 0 free", "b": "9e12 0 0 free"}
        )
    response = start(playground)
    assert response.status_code == 429
    assert "being written" in response.get_data(as_text=True)
    assert conversation(app, playground, REPLAY) == []


@pytest.mark.parametrize("budget_left", [False, True])
def test_the_daily_budget_refuses_a_replay_or_halts_it_with_a_sentence(budget_left, fake_openai):
    # The fake OpenAI server has no known price: each reply counts 30 tokens against DAILY_BUDGET_TOKENS
    # and holds about 12 while it is queued (a few tokens of input, Max tokens 10). The sends use echo (free).
    app, playground = limited({"DAILY_BUDGET_TOKENS": 45 if budget_left else 5})
    for text in ("one", "two"):
        playground.send(text)
    playground.save_settings(max_tokens=10)
    response = start(playground, provider="openai", model="gpt-4o-mini")
    if not budget_left:
        assert response.status_code == 429
        assert "budget of 5 tokens on models with no known price" in response.get_data(as_text=True)
        assert conversation(app, playground, REPLAY) == []
        return
    assert response.status_code == 303
    replayed = conversation(app, playground, REPLAY)
    assert [(m.role, m.status) for m in replayed] == [
        ("user", "done"),
        ("assistant", "done"),
        ("user", "done"),
        ("assistant", "failed"),
    ]
    assert "budget of 45 tokens" in replayed[-1].error
    html = playground.client.get("/playground/replay").get_data(as_text=True)
    assert sentence(html).startswith("Halted at turn 2 of 2: Today&#39;s budget of 45 tokens")


# --- the real path: a real redis-server, a real worker, the fake OpenAI server ------------------


@pytest.mark.integration
def test_a_three_turn_replay_on_real_workers_runs_in_order_with_one_provider_call_per_turn(
    live_app, live_playground, start_worker, fake_openai
):
    from .conftest import wait_for

    start_worker(), start_worker()  # two workers: the turns must still run one after the other
    for text in ("one", "two", "three"):
        assert live_playground.send(text).status_code == 303
    wait_for(lambda: [m.status for m in conversation(live_app, live_playground)] == ["done"] * 6)
    original = raw_list(live_app, live_playground)
    fake_openai.script.reply = "A new answer"
    fake_openai.script.chunk_delay = 0.01

    token = live_playground.token()
    form = {"provider": "openai", "model": "gpt-4o-mini", "csrf_token": token, "client_token": "replay-form-1"}
    assert live_playground.client.post("/playground/replay", data=form).status_code == 303
    # The same form again (a double click): started once, not restarted.
    assert live_playground.client.post("/playground/replay", data=form).status_code == 303

    def finished():
        replayed = conversation(live_app, live_playground, REPLAY)
        done = len(replayed) == 6 and all(m.status == "done" for m in replayed)
        # The worker stores each reply's diff just after the reply is done (and the next turn queued).
        return done and all(m.diff is not None for m in replayed if m.role == "assistant") and replayed

    replayed = wait_for(finished, timeout=30)
    assert [m.content for m in replayed] == ["one", "A new answer", "two", "A new answer", "three", "A new answer"]
    assert fake_openai.stream_requests() == 3
    sent = [[message["content"] for message in request.body["messages"]] for request in fake_openai.requests]
    assert sent == [
        ["one"],
        ["one", "A new answer", "two"],
        ["one", "A new answer", "two", "A new answer", "three"],
    ]
    assert raw_list(live_app, live_playground) == original
    html = live_playground.client.get("/playground/replay").get_data(as_text=True)
    assert sentence(html) == "Replay finished: 3 turns."
    assert html.count('class="word-diff-box"') == 3 and "<del " in html and "<ins " in html


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"provider": "bogus"}, "Choose one of the providers offered."),
        ({"model": "  "}, "Name a model."),
        ({"model": "m" * 201}, "Model names are limited to 200 characters."),
        ({"version": "1; DROP TABLE"}, "Choose a version from the list."),
        ({"version": "1"}, "Only a prompt&#39;s playground has versions."),
    ],
)
def test_a_bad_choice_is_a_sentence_and_starts_nothing(app, playground, fields, expected):
    playground.send("one")
    response = start(playground, **fields)
    assert response.status_code == 422
    assert expected in response.get_data(as_text=True)
    assert conversation(app, playground, REPLAY) == []


def test_a_prompt_playground_replays_against_a_saved_version():
    from prompt_tracker.domain.keys import store_id
    from prompt_tracker.extensions import db
    from prompt_tracker.prompts.library import find_prompt, save_version

    app = create_app("test")
    with app.app_context():
        db.create_all()
    playground = Playground(app.test_client())
    client, token = playground.client, playground.token()
    client.post("/prompts", data={"name": "Greeter", "system_prompt": "Say hi.", "csrf_token": token})
    with app.app_context():
        prompt_id = find_prompt("greeter").id
        save_version(
            prompt_id, system_prompt="Say hello warmly.", provider="echo", model="echo-1", params={}, variables={}
        )
    path = "/prompts/greeter/playground"
    for text in ("one", "two"):
        client.post(f"{path}/messages", data={"content": text, "csrf_token": token})
    page = client.get(f"{path}/replay").get_data(as_text=True)
    assert 'value="1">version 1' in page and "2 user turns" in page
    data = {"provider": "echo", "model": "echo-1", "version": "1", "csrf_token": token}
    assert client.post(f"{path}/replay", data=data).status_code == 303
    with app.app_context():
        replayed = services.store.all(store_id(playground.sid()), f"prompt-{prompt_id}~replay")
    replies = [m for m in replayed if m.role == "assistant"]
    assert [(m.version, m.status) for m in replies] == [(1, "done"), (1, "done")]
    assert "system prompt: 7 characters; turn 2" in replies[1].content


@pytest.mark.integration
def test_stop_halts_a_replay_on_real_workers_and_delete_leaves_nothing_behind(
    live_app, live_playground, real_redis, start_worker, fake_openai
):
    from .conftest import jobs_ended, wait_for

    start_worker()
    for text in ("one", "two", "three"):
        live_playground.send(text)
    wait_for(lambda: [m.status for m in conversation(live_app, live_playground)] == ["done"] * 6)
    fake_openai.script.reply = " ".join(f"w{n}" for n in range(300))
    fake_openai.script.chunk_delay = 0.05
    token = live_playground.token()
    live_playground.client.post(
        "/playground/replay", data={"provider": "openai", "model": "gpt-4o-mini", "csrf_token": token}
    )
    wait_for(lambda: (m := conversation(live_app, live_playground, REPLAY)) and m[-1].status == "streaming")
    assert live_playground.client.post("/playground/replay/stop", data={"csrf_token": token}).status_code == 303
    stopped = wait_for(
        lambda: (m := conversation(live_app, live_playground, REPLAY)) and m[-1].status == "stopped" and m
    )
    # The stopped turn's job is over (a next turn, were it queued, is queued by that job), and so is any other.
    wait_for(lambda: jobs_ended(real_redis))
    assert len(conversation(live_app, live_playground, REPLAY)) == len(stopped) == 2
    assert fake_openai.stream_requests() == 1
    html = live_playground.client.get("/playground/replay").get_data(as_text=True)
    assert sentence(html) == "Stopped at turn 1 of 3. Continue sends it again."

    live_playground.client.post("/playground/replay/reset", data={"csrf_token": token})
    replay_keys = [key for key in real_redis.client(2).scan_iter() if b"~replay" in key]
    assert replay_keys == []
    assert len(conversation(live_app, live_playground)) == 6


@pytest.fixture
def matcher_calls(monkeypatch):
    """How many difflib matchers were built (every diff builds one), from now on."""
    import difflib

    calls = []

    class Counting(difflib.SequenceMatcher):
        def __init__(self, *args, **kwargs):
            calls.append(1)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(difflib, "SequenceMatcher", Counting)
    return calls


def test_the_diffs_are_computed_once_by_the_worker_and_the_page_only_reads_them(app, playground, matcher_calls):
    import secrets

    for text in (f"first {secrets.token_hex(4)}", f"second {secrets.token_hex(4)}"):
        playground.send(text)
    playground.save_settings(system_prompt="Be brief.")
    start(playground)  # the jobs run inline: each turn's reply ends here, and its diff is stored
    assert len(matcher_calls) == 2
    replies = [message for message in conversation(app, playground, REPLAY) if message.role == "assistant"]
    assert [reply.diff.level for reply in replies] == ["words", "words"]
    assert all(0 < reply.diff.same < 1 for reply in replies)

    matcher_calls.clear()
    for path in ("/playground/replay", "/playground/replay/rows", "/playground/replay"):
        html = playground.client.get(path).get_data(as_text=True)
        assert html.count('class="word-diff-box"') == 2 and "<ins " in html
    assert matcher_calls == []


def test_a_diff_is_shown_only_for_the_texts_it_compared(app, playground):
    playground.send("hello there")
    playground.save_settings(system_prompt="x")
    start(playground)
    reply = conversation(app, playground, REPLAY)[1]
    with app.app_context():  # the original's reply changes after the replay compared it
        services.store.update(
            playground.store(), STANDALONE, conversation(app, playground)[1].id, lambda m: replace(m, content="edited")
        )
    html = playground.client.get("/playground/replay").get_data(as_text=True)
    assert 'class="word-diff-box"' not in html
    assert "No difference shown: it is computed when the replay's reply ends" in html
    assert reply.diff is not None


@pytest.mark.parametrize(("words", "lines", "level"), [(10, 1, "words"), (4001, 1, "lines"), (4001, 2001, "none")])
def test_long_replies_are_compared_by_lines_or_not_at_all(words, lines, level):
    from prompt_tracker.domain.text_diff import compare

    old = "\n".join(["word " * (words // lines + 1)] * lines)
    diff = compare(old, old + " more")
    assert diff.level == level
    assert (diff.pieces == []) == (level == "none")


def test_the_page_names_the_cap_of_a_stored_diff(app, playground, monkeypatch):
    from prompt_tracker.domain import text_diff

    monkeypatch.setattr(text_diff, "MAX_WORD_TOKENS", 3)
    playground.send("one two three four five")
    playground.save_settings(system_prompt="x")
    start(playground)
    html = playground.client.get("/playground/replay").get_data(as_text=True)
    assert "compared line by line: over 4,000 words are not compared word by word" in html
    monkeypatch.setattr(text_diff, "MAX_LINES", 0)
    start(playground)
    html = playground.client.get("/playground/replay").get_data(as_text=True)
    assert "No difference shown: these replies are too long to compare (over 2,000 lines)." in html
