"""Add a message of any role without calling the model, and delete messages, atomically by id."""

import pytest


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
        ("admin", "hi", "Choose system, user or assistant."),
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
    response = playground.client.post(
        f"/playground/messages/{first.id}/delete", data={"csrf_token": playground.token()}
    )
    assert response.status_code == 303
    assert [m.id for m in playground.messages(app)] == [second.id, second_reply.id]
    playground.client.post(f"/playground/messages/{second_reply.id}/delete", data={"csrf_token": playground.token()})
    assert [m.id for m in playground.messages(app)] == [second.id]
    playground.client.post(f"/playground/messages/{first.id}/delete", data={"csrf_token": playground.token()})
    assert "That message is no longer in this conversation." in playground.page().get_data(as_text=True)


def test_a_delete_never_removes_a_message_changed_in_between(live_app, live_playground):
    """Compare-and-set: the record must be the one read; a change in between makes the script retry."""
    import msgspec

    from prompt_tracker.extensions import services
    from prompt_tracker.playground_settings import STANDALONE
    from prompt_tracker.sessions import conversation_edits

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
