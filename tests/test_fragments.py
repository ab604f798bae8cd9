"""Each final message is stored with its page HTML (``Message.fragment``), rendered once when it is
written final; the page joins the fragments of its window and runs the message macro only for open
messages and records stored without one."""

import io
import json
import re

import msgspec
import pytest

from prompt_tracker import create_app
from prompt_tracker.domain.keys import conversation_key
from prompt_tracker.domain.messages import Message, Usage, decode_message, encode_message, user_message
from prompt_tracker.domain.rendering import render_reply
from prompt_tracker.domain.settings import STANDALONE
from prompt_tracker.extensions import db, services
from prompt_tracker.web.playground import fragments
from prompt_tracker.web.playground.fragments import CSRF_MARK, MESSAGES_URL_MARK, message_fragment

from .conftest import Playground
from .test_conversation_edits import edit

PREFIX = "prompt_tracker:session:"


def stored(app, playground, name=STANDALONE) -> list[Message]:
    with app.app_context():
        return services.store.all(playground.store(), name)


def raw_records(app, playground, name=STANDALONE) -> list[bytes]:
    with app.app_context():
        return services.store.redis.lrange(conversation_key(PREFIX, playground.store(), name), 0, -1)


def set_record(app, playground, index: int, message: Message, name=STANDALONE) -> None:
    """Write a record into the list as it is, past the store (an old record, or a changed fragment)."""
    with app.app_context():
        services.store.redis.lset(conversation_key(PREFIX, playground.store(), name), index, encode_message(message))


def rendered_now(app, message: Message) -> str:
    """What the store renders for ``message`` when it writes it final."""
    with app.test_request_context():
        return message_fragment(msgspec.structs.replace(message, fragment=None))


def assert_carries_its_fragment(app, message: Message) -> None:
    assert message.fragment is not None and message.fragment == rendered_now(app, message)
    # The per-page values are markers, never this session's token or this playground's URL.
    assert MESSAGES_URL_MARK in message.fragment and CSRF_MARK in message.fragment
    assert "/playground/messages/" not in message.fragment


@pytest.fixture
def count_macro_calls(monkeypatch):
    """How many messages the page renders with the macro (rather than joining a stored fragment)."""
    calls = []
    macro = fragments.message_macro

    def counted():
        item = macro()

        def call(message, *args):
            calls.append(message.id)
            return item(message, *args)

        return call

    monkeypatch.setattr(fragments, "message_macro", counted)
    return calls


def test_a_send_stores_the_user_message_and_the_finished_reply_with_their_fragments(app, playground):
    playground.send("hello **you**")
    sent, reply = stored(app, playground)
    assert sent.status == "done" and reply.status == "done"
    assert_carries_its_fragment(app, sent)
    assert_carries_its_fragment(app, reply)
    assert "hello **you**" in sent.fragment and "<strong>" in reply.fragment  # the reply's Markdown


def test_an_open_reply_is_stored_without_a_fragment_and_the_page_renders_it(app, playground, count_macro_calls):
    playground.send("hello")
    sent, reply = stored(app, playground)
    with app.app_context():
        services.store.update(
            playground.store(), STANDALONE, reply.id, lambda m: msgspec.structs.replace(m, status="streaming")
        )
    assert stored(app, playground)[1].fragment is None  # open: no fragment, even one it carried
    count_macro_calls.clear()
    html = playground.page().get_data(as_text=True)
    assert count_macro_calls == [reply.id]  # the user message's stored fragment was joined
    # Rendered live: streaming, or failed once its worker's heartbeat is gone.
    assert re.search(f'data-id="{reply.id}" data-status="(streaming|failed)"', html)


def test_the_page_joins_stored_fragments_and_runs_no_macro_for_them(app, playground, count_macro_calls):
    playground.send("first")
    playground.send("second")
    messages = stored(app, playground)
    count_macro_calls.clear()
    page = playground.page().get_data(as_text=True)
    assert count_macro_calls == []
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert CSRF_MARK not in page and MESSAGES_URL_MARK not in page
    assert f'action="/playground/messages/{messages[0].id}/delete"' in page
    assert f'<input type="hidden" name="csrf_token" value="{token}"><label class="delete-confirm"' in page
    # What the page shows is the stored fragment: change it in Redis and the page shows the change.
    changed = msgspec.structs.replace(messages[2], fragment=messages[2].fragment.replace("second", "changed in Redis"))
    set_record(app, playground, 2, changed)
    assert "changed in Redis" in playground.page().get_data(as_text=True)


def test_an_old_record_without_a_fragment_renders_as_a_stored_one_does(app, playground, count_macro_calls):
    playground.send("hello")
    with_fragments = playground.page().get_data(as_text=True)
    for index, message in enumerate(stored(app, playground)):
        set_record(app, playground, index, msgspec.structs.replace(message, fragment=None))
    count_macro_calls.clear()
    without = playground.page().get_data(as_text=True)
    assert len(count_macro_calls) == 2

    def same_token(html):
        return re.sub(r'name="(csrf|client)_token" value="[^"]+"', "", re.sub(r"t=\d+", "", html))

    assert same_token(without) == same_token(with_fragments)


def test_edit_add_message_and_retry_store_fragments(app, playground):
    playground.send("first")
    first, _ = stored(app, playground)
    assert edit(playground, first.id, "edited *text*", removes=1).status_code == 303
    edited, reply = stored(app, playground)
    assert edited.content == "edited *text*" and reply.status == "done"
    assert_carries_its_fragment(app, edited)
    assert_carries_its_fragment(app, reply)

    playground.client.post(
        "/playground/messages/add",
        data={"role": "assistant", "content": "an *example*", "csrf_token": playground.token()},
    )
    added = stored(app, playground)[-1]
    assert_carries_its_fragment(app, added)
    assert "<em>example</em>" in added.fragment

    assert playground.retry(reply.id).status_code == 303
    retried = stored(app, playground)[1]
    assert retried.attempt == 2 and retried.status == "done"
    assert_carries_its_fragment(app, retried)


def test_an_import_renders_fragments_here_never_taking_them_from_the_file(app, playground):
    playground.send("question")
    exported = json.loads(playground.client.get("/playground/export.json").data)
    assert all("fragment" not in message for message in exported["messages"])  # ours to render
    exported["messages"][0]["fragment"] = '<li><script>alert("from the file")</script></li>'
    exported["messages"][1]["content"] = "imported *answer*"
    playground.client.post(
        "/playground/import",
        data={"csrf_token": playground.token(), "file": (io.BytesIO(json.dumps(exported).encode()), "c.json")},
        content_type="multipart/form-data",
    )
    question, answer = stored(app, playground)
    assert_carries_its_fragment(app, question)
    assert_carries_its_fragment(app, answer)
    assert "from the file" not in question.fragment and "<em>answer</em>" in answer.fragment
    assert "<script>" not in playground.page().get_data(as_text=True)


def test_a_prompt_playground_and_compare_get_their_own_urls_in_the_joined_fragments():
    app = create_app("test")
    with app.app_context():
        db.create_all()
    client = app.test_client()
    playground = Playground(client)
    token = playground.token()
    client.post("/prompts", data={"name": "Greeter", "system_prompt": "Say hi.", "csrf_token": token})
    base = "/prompts/greeter/playground"
    client.post(f"{base}/compare", data={"provider": "echo", "model": "echo-2", "csrf_token": token})
    client.post(f"{base}/messages", data={"content": "hi", "csrf_token": token})
    page = client.get(base).get_data(as_text=True)
    ids = re.findall(r'data-id="([0-9a-f]{16})"', page)
    assert len(ids) == 2 and f'action="{base}/messages/{ids[1]}/retry"' in page
    assert CSRF_MARK not in page and MESSAGES_URL_MARK not in page
    compare = client.get(f"{base}/compare").get_data(as_text=True)
    assert f'action="{base}/compare/messages/' in compare and CSRF_MARK not in compare


def test_a_records_fragment_does_not_count_against_the_page_window_bytes(app):
    """The same messages make the same window with and without fragments: a record weighs its bytes
    without its fragment (str 16 and str 32 fragments), to the byte."""
    reply = Message(
        id="a" * 16,
        role="assistant",
        content="a reply " * 300,
        html=render_reply("a reply " * 300),
        provider="echo",
        model="echo-1",
        params={"temperature": 0.5},
        usage=Usage(input_tokens=1, output_tokens=2),
        created_at=1.0,
        finished_at=2.0,
    )
    messages = [
        user_message("short"),
        reply,
        user_message("long " * 20_000),  # a fragment over 65,535 bytes: str 32
        msgspec.structs.replace(reply, id="b" * 16, content="**done**", html=render_reply("**done**")),
        user_message("x" * 2_000),
    ]
    weights = [len(encode_message(message)) for message in messages]
    with app.test_request_context():
        store = services.store
        store.append("with", STANDALONE, *messages)
        store.render_fragment, renderer = None, store.render_fragment
        try:
            store.append("without", STANDALONE, *messages)
        finally:
            store.render_fragment = renderer
        assert all(
            decode_message(record).fragment for record in store.redis.lrange(store.key("with", STANDALONE), 0, -1)
        )
        # Every budget at a boundary and one byte short of it: the newest whose weights fit.
        for shown in range(1, len(messages) + 1):
            fits = sum(weights[-shown:])
            for budget in (fits - 1, fits):
                expected = [m.id for m in messages[-max(1, shown - (budget < fits)) :]]
                for name in ("with", "without"):
                    window = store.window(name, STANDALONE, limit=200, max_bytes=budget)
                    assert [m.id for m in window.messages] == expected, (name, budget)


def test_fragments_of_an_older_markup_are_rendered_again_when_shown(app, playground, count_macro_calls):
    """A stored fragment names its markup's version (``FRAGMENT_MARK``): one of an older markup, or HTML
    rendered before table cells were aligned by class, is rendered anew, never shown as stored."""
    playground.send("Totals:\n\n| n | total |\n|---|--:|\n| a | 12 |")
    user, reply = stored(app, playground)
    assert reply.fragment.startswith(fragments.FRAGMENT_MARK) and 'class="align-right"' in reply.fragment
    current = playground.page().get_data(as_text=True)
    assert fragments.FRAGMENT_MARK not in current and f'data-attempt="{reply.attempt}"' in current
    old_html = reply.html.replace('class="align-right"', 'style="text-align:right"')
    old_fragment = reply.fragment.removeprefix(fragments.FRAGMENT_MARK)
    set_record(app, playground, 1, msgspec.structs.replace(reply, html=old_html, fragment=old_fragment))
    count_macro_calls.clear()
    page = playground.page().get_data(as_text=True)
    assert count_macro_calls == [reply.id]
    assert "style=" not in page and '<td class="align-right">12</td>' in page
