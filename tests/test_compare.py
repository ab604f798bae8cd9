"""Compare on the test config (inline jobs): each send also goes to a second model, side by side; its limits."""

import re

from prompt_tracker import create_app
from prompt_tracker.domain.keys import conversation_key, store_id
from prompt_tracker.domain.settings import STANDALONE
from prompt_tracker.extensions import db, services
from prompt_tracker.prompts.library import save_version

from .conftest import Playground

COMPARE = STANDALONE + "~compare"
PREFIX = "prompt_tracker:session:"


def compare_with(playground, path="/playground", **fields):
    data = {"provider": "echo", "model": "echo-1", "csrf_token": playground.token(), **fields}
    return playground.client.post(f"{path}/compare", data=data)


def conversation(app, playground, name=STANDALONE):
    with app.app_context():
        return services.store.all(playground.store(), name)


def raw_list(app, playground, name=STANDALONE):
    with app.app_context():
        return services.store.redis.lrange(conversation_key(PREFIX, playground.store(), name), 0, -1)


def test_with_compare_on_a_send_goes_to_both_models_and_the_page_pairs_the_replies(app, playground, fake_openai):
    fake_openai.script.reply = "Second opinion"
    assert compare_with(playground, provider="openai", model="gpt-4o-mini").status_code == 303
    assert playground.send("Which is better?").status_code == 303
    main, second = conversation(app, playground), conversation(app, playground, COMPARE)
    assert [(m.role, m.content) for m in main] == [("user", "Which is better?"), ("assistant", main[1].content)]
    assert main[1].provider == "echo" and main[1].content.startswith("You said: Which is better?")
    assert [(m.role, m.status, m.content) for m in second] == [
        ("user", "done", "Which is better?"),
        ("assistant", "done", "Second opinion"),
    ]
    assert second[0].id == main[0].id  # the same message: the page pairs the turn by it
    assert second[1].provider == "openai" and second[1].model == "gpt-4o-mini"
    assert fake_openai.stream_requests() == 1

    html = playground.client.get("/playground/compare").get_data(as_text=True)
    turn = re.search(r'<article class="turn">.*?</article>', html, re.S).group(0)
    assert "Which is better?" in turn and "You said: Which is better?" in turn and "Second opinion" in turn
    assert turn.index("compare-left") < turn.index("compare-right")
    # the main page stays one conversation, and says Compare is on
    main_page = playground.page().get_data(as_text=True)
    assert "Second opinion" not in main_page and "Compare · on" in main_page


def test_each_model_keeps_its_own_history(app, playground, fake_openai):
    fake_openai.script.reply = "B"
    compare_with(playground, provider="openai", model="gpt-4o-mini")
    playground.send("one")
    playground.send("two")
    assert [m["content"] for m in fake_openai.requests[-1].body["messages"]] == ["one", "B", "two"]
    assert conversation(app, playground)[-1].content.startswith("You said: two\n\n(turn 2)")


def test_turning_compare_on_mid_conversation_starts_from_the_conversation_so_far(app, playground, fake_openai):
    playground.send("earlier")
    compare_with(playground, provider="openai", model="gpt-4o-mini")
    playground.send("later")
    earlier_reply = conversation(app, playground)[1].content
    assert [m["content"] for m in fake_openai.requests[-1].body["messages"]] == ["earlier", earlier_reply, "later"]
    html = playground.client.get("/playground/compare/rows").get_data(as_text=True)
    assert html.count('<article class="turn">') == 2
    assert "Before Compare was on" in html


def test_turning_compare_off_leaves_the_conversation_as_it_was(app, playground):
    compare_with(playground)
    playground.send("one")
    original = raw_list(app, playground)
    response = playground.client.post("/playground/compare/off", data={"csrf_token": playground.token()})
    assert response.status_code == 303
    assert raw_list(app, playground) == original
    assert conversation(app, playground, COMPARE) == []
    playground.send("two")  # off: one reply only
    assert conversation(app, playground, COMPARE) == []


def test_a_reset_resets_the_second_conversation_too(app, playground):
    compare_with(playground)
    playground.send("one")
    playground.reset()
    assert conversation(app, playground, COMPARE) == []
    playground.send("two")
    assert [m.content for m in conversation(app, playground, COMPARE) if m.role == "user"] == ["two"]


def test_retry_of_a_second_reply_uses_the_second_model(app, playground, fake_openai):
    compare_with(playground, provider="openai", model="gpt-4o-mini")
    playground.send("one")
    reply = conversation(app, playground, COMPARE)[1]
    response = playground.client.post(
        f"/playground/compare/messages/{reply.id}/retry", data={"csrf_token": playground.token()}
    )
    assert response.status_code == 303
    retried = conversation(app, playground, COMPARE)[1]
    assert retried.attempt == 2 and retried.provider == "openai" and retried.status == "done"
    assert fake_openai.stream_requests() == 2


def limited(overrides):
    app = create_app("test", overrides)
    return app, Playground(app.test_client())


def test_a_send_counts_twice_against_the_rate_while_compare_is_on():
    app, playground = limited({"RATE_LIMIT_SENDS": "3/minute"})
    compare_with(playground)
    assert playground.send("one").status_code == 303  # two replies: 2 of 3
    response = playground.send("two")  # two more would make 4
    html = response.get_data(as_text=True)
    assert response.status_code == 429
    assert "Too many messages: the limit is 3 per minute." in html
    assert re.search(r'<textarea[^>]*id="content"[^>]*>\s*two</textarea>', html)  # the typed text kept
    assert [m.content for m in conversation(app, playground) if m.role == "user"] == ["one"]
    assert [m.content for m in conversation(app, playground, COMPARE) if m.role == "user"] == ["one"]


def test_a_send_needs_room_for_both_open_replies():
    app, playground = limited({"MAX_OPEN_REPLIES": 1})
    compare_with(playground)
    response = playground.send("one")
    assert response.status_code == 429
    assert "being written" in response.get_data(as_text=True)
    assert conversation(app, playground) == [] and conversation(app, playground, COMPARE) == []


def test_a_second_model_off_the_allow_list_is_refused():
    app, playground = limited({"ALLOWED_MODELS": ["echo:*"]})
    response = compare_with(playground, provider="openai", model="gpt-4o")
    assert response.status_code == 422
    assert "openai / gpt-4o is not allowed here" in response.get_data(as_text=True)
    playground.send("one")
    assert conversation(app, playground, COMPARE) == []


def test_a_prompt_playground_compares_with_a_saved_version():
    app = create_app("test")
    with app.app_context():
        db.create_all()
    client = app.test_client()
    playground = Playground(client)
    token = playground.token()
    client.post("/prompts", data={"name": "Greeter", "system_prompt": "Say hi.", "csrf_token": token})
    with app.app_context():
        from prompt_tracker.prompts.library import find_prompt

        prompt = find_prompt("greeter")
        params = {"temperature": 0.7, "max_tokens": 1024}
        save_version(
            prompt.id, system_prompt="Say hello warmly.", provider="echo", model="echo-1", params=params, variables={}
        )
        prompt_id = prompt.id
    path = "/prompts/greeter/playground"
    assert 'value="1">version 1' in client.get(f"{path}/compare").get_data(as_text=True)
    assert compare_with(playground, path=path, version="1").status_code == 303
    client.post(f"{path}/messages", data={"content": "hi", "csrf_token": token})
    with app.app_context():
        store = store_id(playground.sid())
        main = services.store.all(store, f"prompt-{prompt_id}")
        second = services.store.all(store, f"prompt-{prompt_id}~compare")
    assert main[1].version == 2 and "system prompt: 17 characters" in main[1].content
    assert second[1].version == 1 and "system prompt: 7 characters" in second[1].content


def test_retrying_a_second_reply_past_the_rate_is_a_429_on_the_compare_page():
    app, playground = limited({"RATE_LIMIT_SENDS": "2/minute"})
    compare_with(playground)
    playground.send("one")  # two replies: the whole limit
    reply = conversation(app, playground, COMPARE)[1]
    response = playground.client.post(
        f"/playground/compare/messages/{reply.id}/retry", data={"csrf_token": playground.token()}
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 429
    assert "Too many messages: the limit is 2 per minute." in html and 'id="compare-form"' in html
    assert conversation(app, playground, COMPARE)[1].attempt == 1  # nothing queued
