"""Export a conversation as JSON (complete) and Markdown; import JSON back, checked whole before one atomic write."""

import html
import io
import json

import msgspec
import pytest

from prompt_tracker.domain.messages import Alternative, Usage
from prompt_tracker.domain.settings import STANDALONE


def upload(playground, data: bytes, name="conversation.json", **kwargs):
    return playground.client.post(
        "/playground/import",
        data={"csrf_token": playground.token(), "file": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
        **kwargs,
    )


def flashes(playground) -> str:
    return playground.page().get_data(as_text=True)


@pytest.fixture
def conversation(app, playground, fake_openai):
    """Two turns through the OpenAI-compatible provider, with parameters, and an earlier attempt kept."""
    playground.save_settings(provider="openai", model="gpt-4o-mini", system_prompt="Be brief.", top_p="0.5", seed="3")
    playground.send("**first** question")
    playground.send("second question")
    messages = playground.messages(app)
    with app.app_context():
        from prompt_tracker.extensions import services

        services.store.update(
            playground.store(),
            STANDALONE,
            messages[1].id,
            lambda m: msgspec.structs.replace(
                m, attempt=2, alternatives=[Alternative(attempt=1, content="an older answer", usage=Usage(1, 2))]
            ),
        )
    return playground.messages(app)


def test_json_export_is_complete(playground, conversation):
    response = playground.client.get("/playground/export.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert 'attachment; filename="conversation-standalone-' in response.headers["Content-Disposition"]
    exported = json.loads(response.data)
    assert exported["format"] == "prompt-tracker/conversation" and exported["version"] == 1
    assert exported["settings"]["system_prompt"] == "Be brief." and exported["settings"]["seed"] == 3
    assert [m["role"] for m in exported["messages"]] == ["user", "assistant", "user", "assistant"]
    reply = exported["messages"][1]
    # Every field of the stored record but its page HTML (an import renders that again), and which attempt is chosen.
    assert reply == msgspec.to_builtins(msgspec.structs.replace(conversation[1], fragment=None)) | {"chosen_attempt": 2}
    assert reply["params"]["top_p"] == 0.5 and reply["usage"] == {"input_tokens": 21, "output_tokens": 9}
    assert reply["alternatives"][0]["content"] == "an older answer"
    assert reply["request"]["chat"]["seed"] == 3 and reply["request"]["history"]["count"] == 1


def test_markdown_export(playground, conversation):
    response = playground.client.get("/playground/export.md")
    assert response.status_code == 200 and response.mimetype == "text/markdown"
    text = response.get_data(as_text=True)
    assert "## System prompt\n\nBe brief." in text
    assert "## You\n\n**first** question" in text
    assert "## Assistant · openai / gpt-4o-mini\n\nHello there, this is the fake model speaking." in text
    assert "temperature=0.7 · max_tokens=1024 · top_p=0.5 · seed=3 · 21 in / 9 out" in text
    assert "### Earlier attempt 1\n\nan older answer" in text


def test_import_round_trip_replaces_the_conversation(app, playground, conversation, client):
    exported = playground.client.get("/playground/export.json").data
    # another browser (its own session) imports the file
    from tests.conftest import Playground

    other = Playground(client.application.test_client())
    other.send("something to be replaced")
    response = upload(other, exported)
    assert response.status_code == 303
    assert "Imported 4 messages." in flashes(other)
    imported = other.messages(app)

    def essentials(m):
        return (
            m.role,
            m.content,
            m.status,
            m.params,
            m.usage,
            m.request,
            [(a.attempt, a.content) for a in m.alternatives],
        )

    assert [essentials(m) for m in imported] == [essentials(m) for m in conversation]
    assert {m.id for m in imported}.isdisjoint({m.id for m in conversation})  # fresh ids
    page = other.page().get_data(as_text=True)
    assert "Hello there, this is the fake model speaking." in page and "something to be replaced" not in page


def test_imported_html_is_rendered_here_never_taken_from_the_file(app, playground, conversation):
    exported = json.loads(playground.client.get("/playground/export.json").data)
    exported["messages"][1]["html"] = '<img src=x onerror="alert(1)">'
    exported["messages"][1]["content"] = "**safe**"
    exported["messages"][0]["html"] = "<script>alert(1)</script>"
    exported["messages"][3]["status"] = "streaming"
    assert upload(playground, json.dumps(exported).encode()).status_code == 303
    messages = playground.messages(app)
    assert messages[1].html == "<p><strong>safe</strong></p>\n" and messages[0].html is None
    assert messages[3].status == "stopped"  # nothing is writing it here
    page = playground.page().get_data(as_text=True)
    assert "onerror" not in page and "<script>alert" not in page


@pytest.mark.parametrize(
    "data, expected",
    [
        (b"{not json", "This file is not valid JSON (UTF-8), so nothing was imported."),
        (b"\xff\xfe{}", "This file is not valid JSON (UTF-8), so nothing was imported."),
        (
            b'{"format": "something else", "version": 1, "messages": []}',
            "This is not a Prompt Tracker conversation export",
        ),
        (
            b'{"format": "prompt-tracker/conversation", "version": 1, "messages": [{"role": "user"}]}',
            "Object missing required field `id` - at `$.messages[0]`",
        ),
        (
            b'{"format": "prompt-tracker/conversation", "version": 1, "messages": [{"id": "a", "role": "admin", '
            b'"created_at": 1}]}',
            "Message 1 has an unknown role or status (&#39;admin&#39;, &#39;done&#39;).",
        ),
        (b"[1, 2, 3]", "This is not a Prompt Tracker conversation export"),
        (
            b'{"format": "prompt-tracker/conversation", "version": 1, "messages": [{"id": "a", "role": "user", '
            b'"content": "caf\xe9", "created_at": 1}]}',  # Latin-1 inside a string
            "This file is not valid JSON (UTF-8), so nothing was imported.",
        ),
        (
            b'{"format": "prompt-tracker/conversation", "version": 1, "settings": {"x": '
            + b"[" * 100_000
            + b"]" * 100_000
            + b'}, "messages": []}',
            "This file nests its data too deeply",
        ),
        (
            b'{"format": "prompt-tracker/conversation", "version": 1, "messages": [{"id": "a", "role": "user", '
            b'"created_at": 1, "unknown": ' + b"[" * 100_000 + b"]" * 100_000 + b"}]}",  # skipped, still read
            "This file nests its data too deeply",
        ),
    ],
)
def test_a_bad_file_is_refused_with_a_sentence_and_nothing_changes(app, playground, data, expected):
    playground.send("keep me")
    before = playground.messages(app)
    assert upload(playground, data).status_code == 303
    assert expected in flashes(playground)
    assert playground.messages(app) == before


def test_too_many_messages_are_refused(app, playground):
    limit = app.config["MAX_CONVERSATION_MESSAGES"]
    message = {"id": "x", "role": "user", "content": "hi", "created_at": 1}
    data = json.dumps({"format": "prompt-tracker/conversation", "version": 1, "messages": [message] * (limit + 1)})
    upload(playground, data.encode())
    assert f"The file has {limit + 1:,} messages; a conversation holds at most {limit:,}." in flashes(playground)
    assert playground.messages(app) == []


def test_an_oversized_file_is_refused_before_it_is_read(app, playground):
    app.config["MAX_IMPORT_BYTES"] = 1024 * 1024
    # the declared length is enough to refuse (the test client spools bodies past 500 KB to a file)
    response = upload(playground, b"[]", environ_overrides={"CONTENT_LENGTH": str(1024 * 1024 + 10)})
    assert response.status_code == 413
    assert "The file is larger than 1 MB, so nothing was imported." in response.get_data(as_text=True)


def test_the_import_may_be_larger_than_other_forms(app, playground):
    """A file past MAX_CONTENT_LENGTH (256 KB) but within MAX_IMPORT_BYTES is taken, even with more text
    than MAX_HISTORY_CHARS (200,000): that caps a request, not a conversation, whose export must import."""
    message = {"id": "x", "role": "user", "content": "y" * 10_000, "created_at": 1}
    data = json.dumps({"format": "prompt-tracker/conversation", "version": 1, "messages": [message] * 40}).encode()
    assert 40 * 10_000 > app.config["MAX_HISTORY_CHARS"]
    assert len(data) > app.config["MAX_CONTENT_LENGTH"]
    assert upload(playground, data).status_code == 303
    assert len(playground.messages(app)) == 40


def test_no_file_chosen(playground):
    response = playground.client.post(
        "/playground/import", data={"csrf_token": playground.token()}, content_type="multipart/form-data"
    )
    assert response.status_code == 303
    assert "Choose an exported .json file to import." in flashes(playground)


def test_import_needs_the_csrf_token(app, playground):
    response = playground.client.post(
        "/playground/import", data={"file": (io.BytesIO(b"{}"), "x.json")}, content_type="multipart/form-data"
    )
    assert response.status_code == 400


def test_an_import_stops_the_replies_open_in_the_replaced_conversation_and_drops_their_partials(
    app, playground, conversation
):
    """A reply still being written when Import replaces the list: its worker is asked to stop (as on
    Reset), its partial text goes, and it no longer counts as open; the imported list is intact."""
    from prompt_tracker.domain.messages import assistant_placeholder, user_message
    from prompt_tracker.extensions import services

    exported = playground.client.get("/playground/export.json").data
    store = playground.store()
    with app.app_context():
        conversations = services.store
        writing = assistant_placeholder("openai", "gpt-4o-mini", {})
        conversations.append(store, STANDALONE, user_message("still being answered"), writing)
        assert conversations.flush(store, STANDALONE, writing.id, writing.attempt, "half a rep") == (True, False)
        assert conversations.open_replies(store) == [(STANDALONE, writing.id)]

    assert upload(playground, exported).status_code == 303

    with app.app_context():
        redis = services.session_redis
        assert not redis.exists(conversations.partial_key(store, writing.id))
        assert conversations.open_replies(store) == []
        # its worker's next flush stops it, and writes nothing into the imported conversation
        assert conversations.flush(store, STANDALONE, writing.id, writing.attempt, "ly") == (True, True)
        assert not redis.exists(conversations.partial_key(store, writing.id))
    assert [m.content for m in playground.messages(app)] == [m.content for m in conversation]


# --- recorded requests in a file are checked like the rest of it ------------------------------


def with_request(exported: dict, **changes) -> bytes:
    """The export with the first reply's recorded request changed (None: the field removed)."""
    record = exported["messages"][1]["request"]
    for name, value in changes.items():
        if value is None:
            record.pop(name, None)
        else:
            record[name] = value
    return json.dumps(exported).encode()


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"headers": ["Authorization"]}, "Expected `object`, got `array` - at `$.messages[1].request.headers`"),
        ({"headers": {"X-Count": 3}}, "Expected `str`, got `int` - at `$.messages[1].request.headers[...]`"),
        ({"headers": {"Bad Name": "x"}}, "at `key` in `$.messages[1].request.headers`"),
        ({"headers": {"X-Split": "a\r\nX-Injected: b"}}, "at `$.messages[1].request.headers[...]`"),
        ({"url": 5}, "Expected `str | null`, got `int` - at `$.messages[1].request.url`"),
        ({"url": "-o/tmp/owned"}, "at `$.messages[1].request.url`"),
        ({"url": "file:///etc/passwd"}, "at `$.messages[1].request.url`"),
        (
            {"provider": "nosuch"},
            "Unknown provider 'nosuch' (known: echo, openai, anthropic) - at `$.messages[1].request`",
        ),
        ({"provider": None}, "Object missing required field `provider` - at `$.messages[1].request`"),
        ({"chat": {"model": "m", "system_prompt": "", "rm": "-rf"}}, "Object contains unknown field `rm`"),
        ({"chat": {"model": "m", "system_prompt": "", "max_tokens": "many"}}, "request.chat.max_tokens`"),
        ({"history": {"count": 1, "dropped": -1, "digest": "x"}}, "at `$.messages[1].request.history.dropped`"),
        ({"history": {"count": 1}}, "Object missing required field `dropped`"),
        ({"extra": {"what": "ever"}}, "Object contains unknown field `extra` - at `$.messages[1].request`"),
    ],
)
def test_a_malformed_recorded_request_is_refused_naming_the_field(app, playground, conversation, changes, expected):
    before = playground.messages(app)
    exported = json.loads(playground.client.get("/playground/export.json").data)
    assert upload(playground, with_request(exported, **changes)).status_code == 303
    page = html.unescape(flashes(playground))
    assert "Message 2 has a recorded request Prompt Tracker does not write" in page and expected in page
    assert "Nothing was imported." in page
    assert playground.messages(app) == before


def test_every_recorded_request_the_app_writes_imports_and_shows(app, playground, conversation):
    """A record of today's shape, one from before the history was left out (body kept), and an echo one."""
    playground.save_settings()  # echo
    playground.send("third question")
    exported = json.loads(playground.client.get("/playground/export.json").data)
    whole = dict(exported["messages"][3]["request"])
    whole.pop("chat"), whole.pop("history")
    whole["body"] = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "second question"}]}
    exported["messages"][3]["request"] = whole
    assert upload(playground, json.dumps(exported).encode()).status_code == 303
    messages = playground.messages(app)
    assert [m.request == e.get("request") for m, e in zip(messages, exported["messages"], strict=True)] == [True] * 6
    for reply in messages[1::2]:
        assert playground.client.get(f"/playground/messages/{reply.id}/request").status_code == 200


def export_of(*messages) -> bytes:
    return json.dumps({"format": "prompt-tracker/conversation", "version": 1, "messages": list(messages)}).encode()


def user(content):
    return {"id": "u", "role": "user", "content": content, "created_at": 1}


def reply(content, **fields):
    return {"id": "a", "role": "assistant", "content": content, "created_at": 1, **fields}


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        (
            [user("hi"), reply("x" * 20_001)],
            "Message 2 has 20,001 characters; a message holds at most 20,000. Nothing was imported.",
        ),
        (
            [user("y" * 20_001)],
            "Message 1 has 20,001 characters; a message holds at most 20,000. Nothing was imported.",
        ),
        (
            [user("hi"), reply("ok", attempt=2, alternatives=[{"attempt": 1, "content": "z" * 20_001}])],
            "Message 2 has an earlier attempt of 20,001 characters; a message holds at most 20,000. "
            "Nothing was imported.",
        ),
    ],
    ids=["reply", "user message", "earlier attempt"],
)
def test_an_import_over_the_send_caps_is_refused_naming_what(app, playground, messages, expected):
    playground.send("keep me")
    before = playground.messages(app)
    assert upload(playground, export_of(*messages)).status_code == 303
    assert html.escape(expected, quote=False) in flashes(playground)
    assert playground.messages(app) == before


def test_an_import_of_crafted_markdown_within_the_caps_renders_in_bounded_time(app, playground):
    import time

    crafted = ["[" * 20_000, "![" * 10_000, "a**" * 6_666, "[a](" * 5_000, ">" * 19_998 + " x"]
    messages = [message for text in crafted + crafted[:4] for message in (user("go"), reply(text))]
    started = time.perf_counter()
    assert upload(playground, export_of(*messages)).status_code == 303
    # A guard against a pathological (super-linear) render, not a speed claim: linear work takes well under a second.
    assert time.perf_counter() - started < 60
    assert len(playground.messages(app)) == 18


def test_a_stored_diff_is_never_taken_from_a_file(app, playground):
    diff = {"digest": "0" * 32, "pieces": [["added", "from the file"]], "same": 0.5}
    upload(playground, export_of(user("hi"), reply("ok", diff=diff)))
    assert [message.diff for message in playground.messages(app)] == [None, None]


@pytest.mark.parametrize("off_loop", [False, True])
def test_under_gevent_an_import_renders_off_the_event_loop(off_loop, tmp_path):
    """While an import renders its replies in gevent's thread pool, the event loop keeps serving (a greenlet
    ticking every 10 ms is never held up for long); run on the loop itself, it would be (the control)."""
    import subprocess
    import sys

    from .conftest import ROOT

    script = f"""
from gevent import monkey; monkey.patch_all()
import json, time, gevent
from prompt_tracker.store.transfer import parse_import
from prompt_tracker.web.off_loop import off_the_event_loop
messages = [m for text in ["[" * 20_000, "![" * 10_000] * 3 for m in (
    {{"id": "u", "role": "user", "content": "go", "created_at": 1}},
    {{"id": "a", "role": "assistant", "content": text, "created_at": 1}})]
data = json.dumps({{"format": "prompt-tracker/conversation", "version": 1, "messages": messages}}).encode()
gaps = []
def tick():
    last = time.monotonic()
    while True:
        gevent.sleep(0.01)
        now = time.monotonic(); gaps.append(now - last); last = now
ticker = gevent.spawn(tick)
gevent.sleep(0.05)
started = time.monotonic()
({"off_the_event_loop(parse_import, data, 100)" if off_loop else "parse_import(data, 100)"})
seconds = time.monotonic() - started
gevent.sleep(0.05)  # the ticker records the gap it was held up for, if any
print(json.dumps({{"seconds": seconds, "longest_gap": max(gaps)}}))
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    assert measured["seconds"] > 0.5  # the renders took their time
    if off_loop:
        assert measured["longest_gap"] < 0.25, measured
    else:
        assert measured["longest_gap"] > 0.5, measured
