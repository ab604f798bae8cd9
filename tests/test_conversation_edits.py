"""Add a message of any role without calling the model, and delete messages, atomically by id."""

import re

import pytest

from prompt_tracker.domain.messages import user_message
from prompt_tracker.domain.settings import STANDALONE


def add(playground, role, content):
    return playground.client.post(
        "/playground/messages/add", data={"role": role, "content": content, "csrf_token": playground.token()}
    )


def test_few_shot_and_system_messages_are_sent_as_written(app, playground, fake_openai):
    playground.save_settings(provider="openai", model="gpt-4o-mini", system_prompt="Classify sentiment.")
    assert add(playground, "user", "I loved it").status_code == 303
    add(playground, "assistant", "positive")
    add(playground, "system", "Answer in one word.")
    playground.send("It was awful")
    assert fake_openai.requests[-1].body["messages"] == [
        {"role": "system", "content": "Classify sentiment."},
        {"role": "user", "content": "I loved it"},
        {"role": "assistant", "content": "positive"},
        {"role": "system", "content": "Answer in one word."},
        {"role": "user", "content": "It was awful"},
    ]
    page = playground.page().get_data(as_text=True)
    assert "added by hand" in page and '<div class="role">System' in page


def test_anthropic_gets_added_system_text_in_its_system_prompt(app, playground, fake_anthropic):
    playground.save_settings(provider="anthropic", model="claude-haiku-4-5", system_prompt="Be brief.")
    add(playground, "system", "Use British spelling.")
    add(playground, "user", "colour?")
    add(playground, "assistant", "Colour.")
    playground.send("and honour?")
    body = fake_anthropic.requests[-1].body
    assert body["system"] == "Be brief.\n\nUse British spelling."
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]


@pytest.mark.parametrize(
    "role, content, expected",
    [
        ("admin", "hi", "Choose system, user, assistant or tool."),
        ("user", "   ", "Type a message before sending."),
    ],
)
def test_bad_additions_are_refused(app, playground, role, content, expected):
    add(playground, role, content)
    assert expected in playground.page().get_data(as_text=True)
    assert playground.messages(app) == []


def test_deleting_a_user_message_takes_its_reply(app, playground):
    playground.send("first")
    playground.send("second")
    first, first_reply, second, second_reply = playground.messages(app)
    confirmed = {"confirm": "yes"}  # Delete asks first (tests/test_alternatives.py)
    response = playground.client.post(
        f"/playground/messages/{first.id}/delete", data={"csrf_token": playground.token(), **confirmed}
    )
    assert response.status_code == 303
    assert [m.id for m in playground.messages(app)] == [second.id, second_reply.id]
    playground.client.post(
        f"/playground/messages/{second_reply.id}/delete", data={"csrf_token": playground.token(), **confirmed}
    )
    assert [m.id for m in playground.messages(app)] == [second.id]
    playground.client.post(
        f"/playground/messages/{first.id}/delete", data={"csrf_token": playground.token(), **confirmed}
    )
    assert "That message is no longer in this conversation." in playground.page().get_data(as_text=True)


@pytest.mark.integration  # a real redis-server (live_app)
def test_a_delete_never_removes_a_message_changed_in_between(live_app, live_playground):
    """Compare-and-set: the record must be the one read; a change in between makes the script retry."""
    import msgspec

    from prompt_tracker.domain.settings import STANDALONE
    from prompt_tracker.extensions import services
    from prompt_tracker.store import edits as conversation_edits

    playground = live_playground
    add(playground, "user", "one")
    add(playground, "user", "two")
    with live_app.app_context():
        store = services.store
        sid = playground.store()
        one, two = store.all(sid, STANDALONE)
        real_find = store.find
        calls = []

        def find_then_change(*args):
            found = real_find(*args)
            calls.append(found)
            if len(calls) == 1:  # the record changes after it was read: the first attempt must fail
                store.find = real_find  # (update searches too)
                store.update(sid, STANDALONE, one.id, lambda m: msgspec.structs.replace(m, content="one, edited"))
                store.find = find_then_change
            return found

        store.find = find_then_change
        assert conversation_edits.delete_message(store, sid, STANDALONE, one.id) == 1
        assert len(calls) == 2 and calls[1][2].content == "one, edited"
        assert [m.id for m in store.all(sid, STANDALONE)] == [two.id]


# --- edit a user message and resend -------------------------------------------------------------


def edit(playground, message_id, content, confirm=True, removes=None, client_token=None, **kwargs):
    data = {"content": content, "csrf_token": playground.token()}
    if confirm:
        data.update(confirm_remove="yes", removes=str(99 if removes is None else removes))
    if client_token:
        data["client_token"] = client_token
    return playground.client.post(f"/playground/messages/{message_id}/edit", data=data, **kwargs)


def test_edit_and_resend_replaces_the_text_drops_later_turns_and_writes_a_new_reply(app, playground):
    playground.send("first")
    playground.send("second")
    first, first_reply, second, _ = playground.messages(app)
    form = playground.client.get(f"/playground/messages/{first.id}/edit").get_data(as_text=True)
    assert "Resending removes the 3 messages after this one" in form and 'name="confirm_remove"' in form
    assert ">\nfirst</textarea>" in form
    response = edit(playground, first.id, "first, better", removes=3)
    assert response.status_code == 303
    edited, reply = playground.messages(app)
    assert edited.role == "user" and edited.content == "first, better" and edited.id != first.id
    assert reply.role == "assistant" and reply.status == "done" and reply.content.startswith("You said: first, better")
    assert f"#m-{reply.id}" in response.location
    page = playground.page().get_data(as_text=True)
    assert "second" not in page and "2 messages" in page


def test_edit_needs_confirmation_when_turns_would_go(app, playground):
    playground.send("first")
    first, reply = playground.messages(app)
    response = edit(playground, first.id, "changed", confirm=False)
    assert response.status_code == 409
    html = response.get_data(as_text=True)
    assert "Resending removes the 1 message after this one: tick" in html
    assert ">\nchanged</textarea>" in html  # the typed text is kept in the edit form
    assert [m.id for m in playground.messages(app)] == [first.id, reply.id]
    # confirmed for 1, but another message arrived meanwhile: asked again
    playground.send("later")
    response = edit(playground, first.id, "changed", removes=1)
    assert response.status_code == 409
    assert "3 messages now follow this one" in response.get_data(as_text=True)
    assert len(playground.messages(app)) == 4


@pytest.mark.parametrize(
    "content, status, expected",
    [
        ("   ", 400, "Type a message before sending."),
        ("x" * 20_001, 400, "Messages are limited to 20,000 characters"),
    ],
)
def test_bad_edits_are_refused_with_the_text_kept(app, playground, content, status, expected):
    playground.send("first")
    first, _ = playground.messages(app)
    response = edit(playground, first.id, content)
    assert response.status_code == status
    html = response.get_data(as_text=True)
    assert expected in html and f'id="edit-{first.id}"' in html
    assert playground.messages(app)[0].content == "first"


def test_editing_a_missing_message_is_refused_with_a_sentence(app, playground):
    # (An assistant or system message is edited in place: tests/test_alternatives.py.)
    playground.send("first")
    first, reply = playground.messages(app)
    response = edit(playground, "0123456789abcdef", "lost?")
    assert response.status_code == 404
    html = response.get_data(as_text=True)
    assert "That message is no longer in this conversation" in html
    assert ">\nlost?</textarea>" in html  # kept, in the composer
    assert [m.id for m in playground.messages(app)] == [first.id, reply.id]


def test_a_double_submitted_edit_resends_once(app, playground, fake_openai):
    playground.save_settings(provider="openai", model="gpt-4o-mini")
    playground.send("first")
    first, _ = playground.messages(app)
    calls = len(fake_openai.requests)
    token = "edit-form-token-0001"
    assert edit(playground, first.id, "again", client_token=token).status_code == 303
    assert edit(playground, first.id, "again", client_token=token).status_code == 303
    assert len(fake_openai.requests) == calls + 1
    edited, reply = playground.messages(app)
    assert edited.content == "again" and reply.status == "done"
    assert fake_openai.requests[-1].body["messages"][-1] == {"role": "user", "content": "again"}


def test_json_edit_answers_with_the_two_messages(app, playground):
    playground.send("first")
    first, _ = playground.messages(app)
    fragment = playground.client.get(f"/playground/messages/{first.id}/edit", headers={"Accept": "application/json"})
    assert fragment.get_json()["removes"] == 1 and 'class="edit-form"' in fragment.get_json()["html"]
    response = edit(playground, first.id, "via script", removes=1, headers={"Accept": "application/json"})
    assert response.status_code == 202
    edited, reply = playground.messages(app)
    assert response.get_json()["id"] == reply.id and f'id="m-{edited.id}"' in response.get_json()["html"]


def test_edit_respects_the_open_replies_cap_counting_the_replies_it_stops(app, playground, monkeypatch):
    app.config["MAX_OPEN_REPLIES"] = 1
    with app.app_context():
        monkeypatch.setattr(services().queue, "enqueue", lambda *a, **k: None)  # nobody writes replies
        services().store.max_open_replies = 1
    playground.send("first")
    first, open_reply = playground.messages(app)
    assert open_reply.status == "pending"
    # the one open reply is the one the edit removes: the edit is allowed
    assert edit(playground, first.id, "edited", removes=1).status_code == 303
    edited, reply = playground.messages(app)
    assert reply.status == "pending"
    with app.app_context():
        store = services().store
        sid = playground.store()
        assert store.redis.exists(store.stop_key(sid, open_reply.id))  # its worker is told to stop
        assert store.redis.zrange(store.open_key(sid), 0, -1) == [f"standalone:{reply.id}".encode()]
        later = user_message("hand-added")
        store.append(sid, STANDALONE, later)
    # editing the later message keeps the open reply before it: past the cap, refused, nothing changed
    response = edit(playground, later.id, "edited later", removes=0)
    assert response.status_code == 429
    assert "You already have" in response.get_data(as_text=True)
    assert [m.id for m in playground.messages(app)] == [edited.id, reply.id, later.id]


def services():
    from prompt_tracker.extensions import services

    return services


@pytest.mark.integration  # a real redis-server (live_app)
def test_edit_is_a_compare_and_set_against_a_reply_written_at_the_same_time(live_app, live_playground):
    """A reply's record changes after the edit read it (its worker finished it): the edit reads again."""
    import msgspec

    from prompt_tracker.domain.messages import assistant_placeholder
    from prompt_tracker.extensions import services
    from prompt_tracker.store import edits as conversation_edits

    playground = live_playground
    add(playground, "user", "one")
    add(playground, "user", "two")
    with live_app.app_context():
        store = services.store
        sid = playground.store()
        one, two = store.all(sid, STANDALONE)
        writing = assistant_placeholder("echo", "echo-1", {})
        writing = msgspec.structs.replace(writing, status="streaming")
        store.append(sid, STANDALONE, writing)
        store.redis.set(store.partial_key(sid, writing.id), "half a rep")
        real_lrange = store.redis.lrange
        calls = []

        def lrange_then_finish(*args):
            result = real_lrange(*args)
            calls.append(args)
            if len(calls) == 1:  # between the edit's read and its script, the worker writes the reply
                store.update(sid, STANDALONE, writing.id, lambda m: msgspec.structs.replace(m, content="half a reply"))
            return result

        store.redis.lrange = lrange_then_finish
        try:
            edited = user_message("one, edited")
            placeholder = assistant_placeholder("echo", "echo-1", {})
            dropped = conversation_edits.resend_from(store, sid, STANDALONE, one.id, edited, placeholder, 2)
        finally:
            del store.redis.lrange
        assert len(calls) == 2  # the first attempt found the tail changed and wrote nothing
        assert [m.id for m in dropped] == [two.id, writing.id] and dropped[1].content == "half a reply"
        assert [m.id for m in store.all(sid, STANDALONE)] == [edited.id, placeholder.id]
        assert store.redis.exists(store.stop_key(sid, writing.id)) and store.partial(sid, writing.id) == ""
        # the stopped reply's late final write finds its record gone and writes nothing
        finished, changed = store.change(
            sid, STANDALONE, writing.id, lambda m: msgspec.structs.replace(m, status="done")
        )
        assert finished is None and not changed
        assert [m.id for m in store.all(sid, STANDALONE)] == [edited.id, placeholder.id]


@pytest.mark.integration  # a real redis-server (live_app)
def test_edit_finds_a_message_that_moved_and_edits_the_first_message(live_app, live_playground):
    from prompt_tracker.domain.messages import assistant_placeholder
    from prompt_tracker.extensions import services
    from prompt_tracker.store import edits as conversation_edits

    playground = live_playground
    add(playground, "user", "zero")
    add(playground, "user", "one")
    with live_app.app_context():
        store = services.store
        sid = playground.store()
        zero, one = store.all(sid, STANDALONE)
        real_find = store.find
        moved = []

        def find_then_delete(*args):
            found = real_find(*args)
            if not moved:  # the message moves (one before it is deleted) after it was found
                moved.append(found)
                store.find = real_find
                conversation_edits.delete_message(store, sid, STANDALONE, zero.id)
                store.find = find_then_delete
            return found

        store.find = find_then_delete
        try:
            edited, placeholder = user_message("one, edited"), assistant_placeholder("echo", "echo-1", {})
            assert conversation_edits.resend_from(store, sid, STANDALONE, one.id, edited, placeholder, 0) == []
        finally:
            store.find = real_find
        assert moved[0][0] == 1
        assert [m.content for m in store.all(sid, STANDALONE)] == ["one, edited", ""]
        assert store.redis.ttl(store.key(sid, STANDALONE)) > 0  # a fresh list gets the session's expiry


def test_an_edit_shares_the_send_rate_and_keeps_its_text_when_refused():
    from prompt_tracker import create_app

    from .conftest import Playground

    app = create_app("test", {"RATE_LIMIT_SENDS": "2/minute"})
    playground = Playground(app.test_client())
    assert playground.send("one").status_code == 303
    first, _ = playground.messages(app)
    assert edit(playground, first.id, "one, edited", removes=1).status_code == 303
    edited, _ = playground.messages(app)
    refused = edit(playground, edited.id, "one, edited twice with care", removes=1)
    assert refused.status_code == 429
    html = refused.get_data(as_text=True)
    assert "Too many messages: the limit is 2 per minute." in html
    assert f'id="edit-{edited.id}"' in html and ">\none, edited twice with care</textarea>" in html
    assert [m.content for m in playground.messages(app) if m.role == "user"] == ["one, edited"]


def test_a_prompts_playground_edits_its_own_conversation():
    from prompt_tracker import create_app
    from prompt_tracker.extensions import db

    from .conftest import CSRF_RE

    app = create_app("test")
    with app.app_context():
        db.create_all()
    client = app.test_client()
    token = CSRF_RE.search(client.get("/prompts").get_data(as_text=True)).group(1)
    client.post("/prompts", data={"name": "Greeter", "system_prompt": "Greet.", "csrf_token": token})
    base = "/prompts/greeter/playground"
    client.post(f"{base}/messages", data={"content": "hello", "csrf_token": token})
    page = client.get(base).get_data(as_text=True)
    user_id = re.search(r'class="message message-user[^"]*" id="m-([0-9a-f]+)"', page).group(1)
    assert f'href="{base}/messages/{user_id}/edit#m-{user_id}"' in page
    response = client.post(
        f"{base}/messages/{user_id}/edit",
        data={"content": "hello again", "removes": "1", "confirm_remove": "yes", "csrf_token": token},
    )
    assert response.status_code == 303 and response.location.startswith(f"{base}#m-")
    page = client.get(base).get_data(as_text=True)
    assert "hello again" in page and ">hello</div>" not in page
    assert "You said: hello again" in page
    assert "2 messages" in page


@pytest.mark.parametrize("window", [{"PAGE_WINDOW": 3}, {"PAGE_WINDOW_BYTES": 600}])
def test_editing_a_message_older_than_the_latest_window_shows_the_window_that_holds_it(app, playground, window):
    app.config.update(window)
    playground.page()
    with playground.client.session_transaction() as session:
        session.add_playground(STANDALONE)
    with app.app_context():
        messages = [user_message(f"message {n} " + "x" * 200) for n in range(8)]
        services().store.append(playground.store(), STANDALONE, *messages)
    html = playground.client.get(f"/playground/messages/{messages[1].id}/edit").get_data(as_text=True)
    assert f'id="edit-{messages[1].id}"' in html and "Resending removes the 6 messages after this one" in html
    assert 'id="composer"' not in html and "Back to the latest messages" in html  # an earlier window
    refused = edit(playground, messages[1].id, " ")
    assert refused.status_code == 400 and f'id="edit-{messages[1].id}"' in refused.get_data(as_text=True)


@pytest.mark.integration
def test_an_edit_hangs_up_the_reply_being_written_after_it(fake_openai, live_app, live_playground, start_worker):
    """Real worker, fake provider: the reply the edit removes ends its provider stream; it never comes back."""
    from .conftest import wait_for

    fake_openai.script.reply = " ".join(f"w{i}" for i in range(400))
    fake_openai.script.chunk_delay = 0.05  # 20 s if nobody hangs up
    start_worker()
    live_playground.save_settings(provider="openai", model="gpt-4o-mini")
    live_playground.send("a long answer, please")
    user, reply = live_playground.messages(live_app)
    wait_for(lambda: live_playground.messages(live_app)[-1].status == "streaming")
    fake_openai.script.reply = "short"  # the resent question gets a short answer
    assert edit(live_playground, user.id, "a short answer, please", removes=1).status_code == 303
    # A positive end state, given time on a busy machine (the stream would run 20 s if nobody hung up).
    assert fake_openai.wait_for_disconnect(15)  # the removed reply's provider stream was closed
    # One worker: the new reply runs after the old job ended, so its last write (if any) is behind us.
    final = wait_for(lambda: (m := live_playground.messages(live_app))[-1].status == "done" and m, timeout=20)
    assert [(m.role, m.content) for m in final] == [("user", "a short answer, please"), ("assistant", "short")]
    assert reply.id not in {m.id for m in final}
    assert fake_openai.stream_requests() == 2
    assert fake_openai.requests[-1].body["messages"] == [{"role": "user", "content": "a short answer, please"}]
    with live_app.app_context():
        store = services().store
        sid = live_playground.store()
        assert store.partial(sid, reply.id) == ""
        assert store.redis.zrange(store.open_key(sid), 0, -1) == []
