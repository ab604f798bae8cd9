"""Answering tool calls in the conversation (issue 18): by hand, with mocks, the next reply queued once."""

import io
import json
import re
from html import unescape

from prompt_tracker import create_app
from prompt_tracker.domain.settings import STANDALONE
from prompt_tracker.extensions import db

from .conftest import jobs_ended
from .processes import wait_for
from .test_prompts import Library

WEATHER = {
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "mock": {"temperature": 21},
}
TIME = {"name": "get_time", "parameters": {"type": "object", "properties": {}}}  # no mock: waits for the user
PAIR = '/call get_weather {"city": "Paris"}\n/call get_time {}'


def answer(playground, message_id, call_id, content, **kwargs):
    data = {"tool_call_id": call_id, "content": content, "csrf_token": playground.token()}
    return playground.client.post(f"/playground/messages/{message_id}/tool-results", data=data, **kwargs)


def page_text(playground) -> str:
    return unescape(playground.page().get_data(as_text=True))


def test_tool_calls_are_answered_by_hand_with_and_without_js_and_the_next_reply_is_queued_once(app, playground):
    playground.save_settings(tools=json.dumps([WEATHER, TIME]))
    playground.send(PAIR)
    reply = playground.messages(app)[-1]
    assert [call.id for call in reply.tool_calls] == ["call_echo_1_1", "call_echo_1_2"]
    html = page_text(playground)
    assert html.count('class="tool-result-form"') == 2
    assert f'action="/playground/messages/{reply.id}/tool-results"' in html

    # Without JS: 303 back to the page; the call's form goes, the other stays; no reply yet.
    response = answer(playground, reply.id, "call_echo_1_1", "21 °C")
    assert response.status_code == 303 and "#m-" in response.location
    messages = playground.messages(app)
    assert [(m.role, m.tool_call_id, m.content) for m in messages[-2:]] == [
        ("assistant", None, ""),
        ("tool", "call_echo_1_1", "21 °C"),
    ]
    assert messages[-2].answered_calls == ["call_echo_1_1"]
    html = page_text(playground)
    assert html.count('class="tool-result-form"') == 1 and "Answered." in html

    # Answering the same call again is refused with a sentence; nothing is added.
    refused = answer(playground, reply.id, "call_echo_1_1", "again", headers={"Accept": "application/json"})
    assert refused.status_code == 409 and refused.get_json()["error"] == "That tool call is already answered."
    assert len(playground.messages(app)) == len(messages)
    assert answer(playground, reply.id, "call_echo_1_1", "again").status_code == 303  # no JS: the sentence flashed
    assert "That tool call is already answered." in page_text(playground)
    empty = answer(playground, reply.id, "call_echo_1_2", "  ", headers={"Accept": "application/json"})
    assert empty.status_code == 422 and "Give the tool's result" in empty.get_json()["error"]

    # With JS: the last call answered queues the next reply (inline here), returned in place with the results before it.
    response = answer(playground, reply.id, "call_echo_1_2", "12:00", headers={"Accept": "application/json"})
    assert response.status_code == 202
    fragment = response.get_json()["html"]
    assert fragment.count('class="message ') == 4 and 'class="tool-result-form"' not in fragment
    messages = playground.messages(app)
    assert [m.role for m in messages[-4:]] == ["assistant", "tool", "tool", "assistant"]
    assert messages[-1].status == "done" and messages[-1].content == "Tool result for call_echo_1_2: 12:00"
    # A double click after the fact: refused, and still one reply.
    again = answer(playground, reply.id, "call_echo_1_2", "12:00", headers={"Accept": "application/json"})
    assert again.status_code == 409 and len(playground.messages(app)) == len(messages)

    # Answered out of order, the results still follow the calls' order (with JS: shown so in place).
    playground.send(PAIR)
    pair = playground.messages(app)[-1]
    first, second = (call.id for call in pair.tool_calls)
    answer(playground, pair.id, second, "later")
    response = answer(playground, pair.id, first, "sooner", headers={"Accept": "application/json"})
    messages = playground.messages(app)
    assert [(m.role, m.tool_call_id) for m in messages[-4:]] == [
        ("assistant", None),
        ("tool", first),
        ("tool", second),
        ("assistant", None),
    ]
    ids = re.findall(r'<li class="message [^"]*" id="m-(\w+)"', response.get_json()["html"])
    assert ids == [m.id for m in messages[-4:]]

    # The conversation went on: an older reply's calls can no longer be answered.
    playground.send("/call get_time {}")
    older = playground.messages(app)[-1]
    playground.send("never mind")
    late = answer(playground, older.id, older.tool_calls[0].id, "x", headers={"Accept": "application/json"})
    assert late.status_code == 409 and "went on" in late.get_json()["error"]


def test_the_prompt_playground_answers_calls_at_its_own_address():
    app = create_app("test")
    with app.app_context():
        db.create_all()
    library = Library(app, app.test_client())
    library.create("Clock")
    library.save_settings("clock", tools=json.dumps([TIME]))
    library.send("clock", "/call get_time {}")
    html = unescape(library.client.get("/prompts/clock/playground").get_data(as_text=True))
    action = re.search(r'action="([^"]+/tool-results)"', html).group(1)
    assert action.startswith("/prompts/clock/playground/messages/")
    response = library.post(action, tool_call_id="call_echo_1_1", content="noon")
    assert response.status_code == 303 and response.location.startswith("/prompts/clock/playground#m-")
    shown = unescape(library.client.get("/prompts/clock/playground").get_data(as_text=True))
    assert "Tool result for call_echo_1_1: noon" in shown
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_auto_mock_answers_mocked_calls_and_waits_on_the_rest(app, playground):
    playground.save_settings(tools=json.dumps([WEATHER, TIME]), auto_mock="y")
    assert 'name="auto_mock" value="y" checked' in page_text(playground)
    playground.send('/call get_weather {"city": "Rome"}')
    messages = playground.messages(app)
    assert [(m.role, m.content) for m in messages[-3:]] == [
        ("assistant", ""),
        ("tool", '{"temperature": 21}'),
        ("assistant", 'Tool result for call_echo_1_1: {"temperature": 21}'),
    ]
    # A pair with an unmocked call: the mocked one is answered, the other waits for the user.
    playground.send(PAIR)
    messages = playground.messages(app)
    assert [(m.role, m.tool_call_id) for m in messages[-2:]] == [("assistant", None), ("tool", "call_echo_2_1")]
    assert page_text(playground).count('class="tool-result-form"') == 1
    answer(playground, messages[-2].id, "call_echo_2_2", "13:00")
    assert playground.messages(app)[-1].content == "Tool result for call_echo_2_2: 13:00"

    # Compare on: the second model's conversation is answered with the mocks too, and its waiting call
    # is answered on the Compare page.
    data = {"provider": "echo", "model": "echo-2", "csrf_token": playground.token()}
    assert playground.client.post("/playground/compare", data=data).status_code == 303
    playground.send(PAIR)
    with app.app_context():
        from prompt_tracker.extensions import services

        second = services.store.all(playground.store(), STANDALONE + "~compare")
    assert [(m.role, m.tool_call_id) for m in second[-3:]] == [
        ("user", None),
        ("assistant", None),
        ("tool", "call_echo_3_1"),
    ]
    page = unescape(playground.client.get("/playground/compare").get_data(as_text=True))
    assert f'action="/playground/compare/messages/{second[-2].id}/tool-results"' in page
    response = playground.client.post(
        f"/playground/compare/messages/{second[-2].id}/tool-results",
        data={"csrf_token": playground.token(), "tool_call_id": "call_echo_3_2", "content": "14:00"},
    )
    assert response.status_code == 303
    with app.app_context():
        second = services.store.all(playground.store(), STANDALONE + "~compare")
    assert second[-1].content == "Tool result for call_echo_3_2: 14:00" and second[-1].model == "echo-2"


def test_automatic_rounds_stop_after_three_and_say_so(app, playground, fake_openai):
    fake_openai.script.reply = ""
    fake_openai.script.tool_calls = [{"name": "get_weather", "arguments": '{"city": "Rome"}'}]  # every time
    playground.save_settings(provider="openai", model="gpt-4o-mini", tools=json.dumps([WEATHER]), auto_mock="y")
    playground.send("weather?")
    messages = playground.messages(app)
    assert [m.role for m in messages] == ["user", *["assistant", "tool"] * 3, "assistant"]
    assert len(fake_openai.requests) == 4
    last = messages[-1]
    assert last.tool_calls and not last.answered_calls
    assert "Answered with mocks 3 rounds in a row" in last.tool_note
    assert "Answered with mocks 3 rounds in a row" in page_text(playground)
    # Answered by hand, the count starts again.
    fake_openai.script.tool_calls = None
    fake_openai.script.reply = "Sunny."
    answer(playground, last.id, last.tool_calls[0].id, "sunny")
    assert playground.messages(app)[-1].content == "Sunny."


# --- through the real path: Redis, a worker ---------------------------------------------------------


def test_tool_calls_answered_by_hand_and_by_mock_through_a_real_worker(
    live_app, live_playground, real_redis, start_worker
):
    start_worker()

    def last_final(count):
        return wait_for(
            lambda: len(ms := live_playground.messages(live_app)) >= count and ms[-1].status == "done" and ms
        )

    live_playground.save_settings(tools=json.dumps([WEATHER, TIME]))
    live_playground.send("/call get_time {}")
    reply = last_final(2)[-1]
    assert answer(live_playground, reply.id, "call_echo_1_1", "noon").status_code == 303
    messages = last_final(4)
    assert messages[-1].content == "Tool result for call_echo_1_1: noon"

    live_playground.save_settings(tools=json.dumps([WEATHER, TIME]), auto_mock="y")
    live_playground.send('/call get_weather {"city": "Oslo"}')
    messages = last_final(8)
    assert [m.role for m in messages[-4:]] == ["user", "assistant", "tool", "assistant"]
    assert messages[-1].content == 'Tool result for call_echo_2_1: {"temperature": 21}'
    assert live_playground.messages(live_app)[-3].answered_calls == ["call_echo_2_1"]
    wait_for(lambda: jobs_ended(real_redis))


# --- few-shot tool use: Add message, export and import -------------------------------------------


def add(playground, **fields):
    return playground.client.post("/playground/messages/add", data={"csrf_token": playground.token(), **fields})


def test_tool_use_is_added_by_hand_exported_and_imported(app, playground):
    playground.save_settings(tools=json.dumps([WEATHER]))
    add(playground, role="user", content="Weather in Paris?")
    calls = '[{"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}]'
    assert add(playground, role="assistant", content="", tool_calls=calls).status_code == 303
    assert add(playground, role="tool", content="18 °C").status_code == 303  # no call named: refused
    assert "Name the tool call this result answers" in page_text(playground)
    assert add(playground, role="assistant", tool_calls="[{").status_code == 303
    assert "The tool calls are not valid JSON" in page_text(playground)
    add(playground, role="tool", content="18 °C", tool_call_id="call_1")
    messages = playground.messages(app)
    assert [(m.role, m.tool_call_id) for m in messages] == [("user", None), ("assistant", None), ("tool", "call_1")]
    assert messages[1].tool_calls[0].arguments == '{"city": "Paris"}' and messages[1].answered_calls == ["call_1"]
    html = page_text(playground)
    assert 'class="tool-result-form"' not in html and "Answered." in html and ">Tool<" in html
    # Deleted, the result's call shows its form again; added again, it is answered.
    tool = playground.messages(app)[-1]
    data = {"csrf_token": playground.token(), "confirm": "yes"}
    assert playground.client.post(f"/playground/messages/{tool.id}/delete", data=data).status_code == 303
    assert playground.messages(app)[-1].answered_calls == [] and 'class="tool-result-form"' in page_text(playground)
    add(playground, role="tool", content="18 °C", tool_call_id="call_1")
    # The next send carries the few-shot tool use to the model.
    playground.send("And Rome?")
    assert playground.messages(app)[-1].content.startswith("You said: And Rome?")

    markdown = playground.client.get("/playground/export.md").get_data(as_text=True)
    assert '**Tool call** `get_weather` (`call_1`)\n\n```json\n{"city": "Paris"}\n```' in markdown
    assert "## Tool result · `call_1`\n\n18 °C" in markdown
    exported = playground.client.get("/playground/export.json").get_data()
    playground.reset()
    response = playground.client.post(
        "/playground/import",
        data={"csrf_token": playground.token(), "file": (io.BytesIO(exported), "c.json")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 303
    imported = playground.messages(app)
    assert [(m.role, m.tool_call_id, [c.name for c in m.tool_calls]) for m in imported[:3]] == [
        ("user", None, []),
        ("assistant", None, ["get_weather"]),
        ("tool", "call_1", []),
    ]
    # A tool message that names no call is refused whole.
    broken = json.loads(exported)
    broken["messages"][2].pop("tool_call_id")
    response = playground.client.post(
        "/playground/import",
        data={"csrf_token": playground.token(), "file": (io.BytesIO(json.dumps(broken).encode()), "c.json")},
        content_type="multipart/form-data",
    )
    assert "Message 3 mixes up tool use" in page_text(playground)


# --- Replay with tools -----------------------------------------------------------------------------


def test_a_replayed_tool_call_is_answered_by_its_mock_or_halts_until_one_exists(app, playground):
    from prompt_tracker.extensions import services

    playground.save_settings(tools=json.dumps([WEATHER, TIME]))
    playground.send('/call get_weather {"city": "Paris"}')
    reply = playground.messages(app)[-1]
    answer(playground, reply.id, "call_echo_1_1", "18 °C")
    playground.send("thanks")

    def replay(**fields):
        data = {"provider": "echo", "model": "echo-1", "csrf_token": playground.token(), **fields}
        playground.client.post("/playground/replay", data=data)
        page = unescape(playground.client.get("/playground/replay").get_data(as_text=True))
        with app.app_context():
            return services.store.all(playground.store(), STANDALONE + "~replay"), page

    replayed, page = replay()
    assert [m.role for m in replayed] == ["user", "assistant", "tool", "assistant", "user", "assistant"]
    assert replayed[2].content == '{"temperature": 21}' and replayed[1].answered_calls == ["call_echo_1_1"]
    assert "Replay finished: 2 turns." in page
    # The turn's diff compares the calls and the last text: same call, another result.
    diff = replayed[3].diff
    assert diff is not None and diff.level == "words"
    text = "".join(piece.text for piece in diff.pieces if piece.kind != "removed")
    assert text == '[tool call] get_weather {"city": "Paris"}\nTool result for call_echo_1_1: {"temperature": 21}'
    assert any(piece.kind == "removed" and "18" in piece.text for piece in diff.pieces)

    # A call to a tool without a mock halts the replay with a sentence; Continue, once it has one, goes on.
    playground.send("/call get_time {}")
    answer(playground, playground.messages(app)[-1].id, "call_echo_3_1", "noon")
    replayed, page = replay()
    assert "Halted at turn 3 of 3: get_time has no mock to answer it" in page and "Continue" in page
    assert replayed[-1].tool_calls and not replayed[-1].answered_calls
    assert f'action="/playground/replay/messages/{replayed[-1].id}/tool-results"' in page
    # Answered by hand on the Replay page: the turn's next reply is written and the replay ends.
    response = playground.client.post(
        f"/playground/replay/messages/{replayed[-1].id}/tool-results",
        data={"csrf_token": playground.token(), "tool_call_id": "call_echo_3_1", "content": "half past"},
    )
    assert response.status_code == 303
    page = unescape(playground.client.get("/playground/replay").get_data(as_text=True))
    assert "Replay finished: 3 turns." in page and "Tool result for call_echo_3_1: half past" in page

    replayed, page = replay()  # again: halted again, and Continue once the tool has a mock
    assert "Halted at turn 3 of 3: get_time has no mock" in page
    playground.save_settings(tools=json.dumps([WEATHER, {**TIME, "mock": "12:00"}]))
    playground.client.post(
        "/playground/replay/continue",
        data={"csrf_token": playground.token()},
    )
    with app.app_context():
        replayed = services.store.all(playground.store(), STANDALONE + "~replay")
    assert [m.role for m in replayed[-4:]] == ["user", "assistant", "tool", "assistant"]
    assert replayed[-1].content == "Tool result for call_echo_3_1: 12:00"
    assert "Replay finished: 3 turns." in unescape(playground.client.get("/playground/replay").get_data(as_text=True))
