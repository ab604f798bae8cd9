"""Tool calls shown while a reply streams (issue 18): the pieces providers yield, the worker's
``message.tool_calls`` events and the names on the streaming record, and the HTML of such a reply."""

import json
import time
from html import unescape

import pytest

from prompt_tracker.domain.messages import Message, new_message_id
from prompt_tracker.domain.settings import STANDALONE
from prompt_tracker.providers import ChatRequest, ToolCall, ToolCallDelta, get_provider
from prompt_tracker.replies import reply as reply_module

WEATHER = {
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
TIME = {"name": "get_time", "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}}}
PAIR = [{"name": "get_weather", "arguments": '{"city": "Rome"}'}, {"name": "get_time", "arguments": '{"zone": "CET"}'}]
REQUEST = ChatRequest(model="m", system_prompt="", messages=[("user", "weather and time?")], tools=[WEATHER, TIME])


def assembled(items) -> dict[int, dict]:
    """The calls the ``ToolCallDelta`` pieces of a stream add up to, by index."""
    calls: dict[int, dict] = {}
    for item in items:
        if isinstance(item, ToolCallDelta):
            call = calls.setdefault(item.index, {"name": "", "arguments": ""})
            call["name"] = item.name or call["name"]
            call["arguments"] += item.arguments
    return calls


@pytest.mark.parametrize(
    "name, fixture, model", [("openai", "fake_openai", "m"), ("anthropic", "fake_anthropic", "claude-haiku-4-5")]
)
def test_providers_yield_tool_call_pieces_before_the_whole_calls(request, name, fixture, model):
    server = request.getfixturevalue(fixture)
    server.script.reply = "Looking."
    server.script.tool_calls = PAIR
    items = list(get_provider(name).stream(ChatRequest(**{**REQUEST.__dict__, "model": model})))
    pieces = [index for index, item in enumerate(items) if isinstance(item, ToolCallDelta)]
    whole = [index for index, item in enumerate(items) if isinstance(item, ToolCall)]
    assert len(pieces) > 4 and max(pieces) < min(whole)  # several pieces, all before the calls themselves
    calls = assembled(items)
    assert [calls[index] for index in sorted(calls)] == [
        {"name": "get_weather", "arguments": '{"city": "Rome"}'},
        {"name": "get_time", "arguments": '{"zone": "CET"}'},
    ]


def test_a_streaming_reply_publishes_its_calls_as_they_assemble_and_keeps_their_names(
    app, playground, fake_openai, monkeypatch
):
    from prompt_tracker.extensions import services

    fake_openai.script.reply = ""
    fake_openai.script.tool_calls = PAIR
    monkeypatch.setattr(reply_module, "FLUSH_SECONDS", 0)  # every piece is a flush here
    seen = []
    publish = reply_module.publish

    def spy(store_id, name, payload):
        if name == "message.tool_calls":
            record = services.conversations.get(store_id, STANDALONE, payload["id"])
            seen.append((payload["calls"], record.status, [(call.name, call.arguments) for call in record.tool_calls]))
        publish(store_id, name, payload)

    monkeypatch.setattr(reply_module, "publish", spy)
    playground.save_settings(provider="openai", model="gpt-4o-mini", tools=json.dumps([WEATHER, TIME]))
    playground.send("weather and time?")

    first_calls, status, stored = seen[0]
    assert first_calls == [{"name": "get_weather", "arguments": "", "more": False}]
    assert status == "streaming" and stored == [("get_weather", "")]  # names only: arguments come at the end
    last_calls, status, stored = seen[-1]
    assert [(call["name"], call["arguments"]) for call in last_calls] == [
        ("get_weather", '{"city": "Rome"}'),
        ("get_time", '{"zone": "CET"}'),
    ]
    assert status == "streaming" and stored == [("get_weather", ""), ("get_time", "")]
    # The arguments grew piece by piece, in the events.
    assert len({call[0]["arguments"] for call, _, _ in seen}) > 3
    reply = playground.messages(app)[-1]
    assert reply.status == "done"
    assert [(call.name, call.arguments) for call in reply.tool_calls] == [
        ("get_weather", '{"city": "Rome"}'),
        ("get_time", '{"zone": "CET"}'),
    ]


def test_long_arguments_are_capped_in_the_events_not_in_the_reply(app, playground, fake_openai, monkeypatch):
    long = json.dumps({"city": "x" * (reply_module.LIVE_ARGUMENTS_CHARS + 500)})
    fake_openai.script.reply = ""
    fake_openai.script.tool_calls = [{"name": "get_weather", "arguments": long}]
    monkeypatch.setattr(reply_module, "FLUSH_SECONDS", 0)
    events = []
    publish = reply_module.publish
    monkeypatch.setattr(
        reply_module,
        "publish",
        lambda store_id, name, payload: (
            name == "message.tool_calls" and events.append(payload),
            publish(store_id, name, payload),
        ),
    )
    playground.save_settings(provider="openai", model="gpt-4o-mini", tools=json.dumps([WEATHER]))
    playground.send("a long one")
    last = events[-1]["calls"][0]
    assert len(last["arguments"]) == reply_module.LIVE_ARGUMENTS_CHARS and last["more"] is True
    assert playground.messages(app)[-1].tool_calls[0].arguments == long


def test_a_failed_reply_keeps_no_half_streamed_calls(app, playground, fake_openai, monkeypatch):
    monkeypatch.setattr(reply_module, "FLUSH_SECONDS", 0)  # the names reach the streaming record first
    fake_openai.script.reply = ""
    fake_openai.script.tool_calls = PAIR
    fake_openai.script.end_after = 6  # the stream ends in the middle of the calls
    playground.save_settings(provider="openai", model="gpt-4o-mini", tools=json.dumps([WEATHER, TIME]))
    playground.send("weather?")
    reply = playground.messages(app)[-1]
    assert reply.status == "failed" and reply.tool_calls == []
    assert "Calling" not in unescape(playground.page().get_data(as_text=True))


def test_a_streaming_reply_with_named_calls_says_which_tools_it_is_calling(app, playground):
    from prompt_tracker.web.playground.fragments import message_html

    streaming = Message(
        id=new_message_id(),
        role="assistant",
        status="streaming",
        provider="openai",
        model="m",
        created_at=time.time(),
        tool_calls=[ToolCall(id="c1", name="get_weather", arguments="")],
    )
    with app.test_request_context():
        html = unescape(message_html(streaming))
    assert '<ul class="tool-calls tool-calls-live">' in html
    assert 'Calling</span> <code class="tool-name">get_weather</code>…' in html
    assert 'class="tool-result-form"' not in html  # answered once it has ended
    with app.test_request_context():
        pending = unescape(message_html(Message(id=new_message_id(), role="assistant", status="pending", created_at=0)))
    assert '<ul class="tool-calls tool-calls-live" hidden></ul>' in pending


def test_a_reply_whose_worker_died_mid_call_shows_no_card_to_answer(app, playground):
    from prompt_tracker.web.playground.fragments import message_html

    dead = Message(
        id=new_message_id(),
        role="assistant",
        status="streaming",
        created_at=time.time(),
        tool_calls=[ToolCall(id="c1", name="get_weather", arguments="")],
    )
    with app.test_request_context():
        html = unescape(message_html(dead, stale_ids={dead.id}))
    assert "The worker stopped before finishing this reply." in html
    assert "Calling</span>" in html and "Tool call</span>" not in html and "tool-result-form" not in html
