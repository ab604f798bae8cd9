"""Tools and structured output (issue 18): settings, validation, providers, the reply pipeline, the page."""

import json
import re
from html import unescape

import msgspec
import pytest
from jsonschema import validators

from prompt_tracker.domain.messages import Message, new_message_id
from prompt_tracker.domain.recorded_request import curl_command
from prompt_tracker.domain.settings import STANDALONE, PlaygroundSettings, load_settings, store_settings
from prompt_tracker.domain.tools import (
    check_arguments,
    check_tool_choice,
    minimal_instance,
    parse_json_schema,
    parse_tools,
    validate_instance,
)
from prompt_tracker.providers import ChatRequest, ProviderError, ToolCall, Usage, get_provider

from .conftest import jobs_ended
from .processes import wait_for

WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}},
        "required": ["city"],
    },
    "mock": {"temperature": 21},
}
TIME = {"name": "get_time", "description": "The time in a city.", "parameters": {"type": "object", "properties": {}}}
SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "minLength": 2},
        "rating": {"type": "integer", "minimum": 1, "maximum": 5},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "mood": {"enum": ["happy", "sad"]},
        "author": {"$ref": "#/$defs/person"},
        "note": {"type": "string"},
    },
    "required": ["title", "rating", "tags", "mood", "author"],
    "$defs": {"person": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}},
}


# --- validation sentences and minimal instances --------------------------------------------------


def test_tools_are_checked_with_sentences_that_say_where():
    tools, error = parse_tools(json.dumps([WEATHER, TIME]))
    assert error is None and [tool["name"] for tool in tools] == ["get_weather", "get_time"]
    assert parse_tools("  ") == ([], None)
    _, error = parse_tools('[{"name": "a",\n "parameters": {]')
    assert error.startswith("Tools is not valid JSON:") and "line 2, column" in error
    assert "JSON array" in parse_tools('{"name": "a"}')[1]
    assert "1 to 64 letters" in parse_tools('[{"name": "no spaces"}]')[1]
    assert "1 to 64 letters" in parse_tools(json.dumps([{"name": "x" * 65}]))[1]
    assert parse_tools(json.dumps([TIME, TIME]))[1] == "Two tools are named 'get_time': tool names must be unique."
    bad_schema = {**TIME, "parameters": {"type": "object", "properties": {"city": {"type": "strng"}}}}
    error = parse_tools(json.dumps([bad_schema]))[1]
    assert error.startswith("Tool 'get_time''s parameters is not a valid JSON Schema: at properties.city.type:")
    assert "unknown key 'function'" in parse_tools('[{"name": "a", "function": {}}]')[1]
    assert parse_tools('[{"name": "bare"}]')[0][0]["parameters"] == {"type": "object", "properties": {}}

    assert check_tool_choice("required", []) is None and check_tool_choice("get_time", [TIME]) is None
    assert "names no tool" in check_tool_choice("get_weather", [TIME])

    assert parse_json_schema(json.dumps(SCHEMA)) == (SCHEMA, None)
    assert "line 1, column" in parse_json_schema("{nope}")[1]
    assert parse_json_schema('{"type": 12}')[1].startswith("The schema is not a valid JSON Schema: at type:")
    assert parse_json_schema("[1]")[1] == "The schema must be a JSON object (a JSON Schema)."


def test_instances_are_checked_to_the_first_error_with_its_json_path():
    assert validate_instance(SCHEMA, minimal_instance(SCHEMA)) is None
    wrong = {**minimal_instance(SCHEMA), "tags": [3]}
    assert validate_instance(SCHEMA, wrong) == "$.tags[0]: 3 is not of type 'string'"
    assert validate_instance(SCHEMA, {}).startswith("$: 'title' is a required property")
    assert validate_instance(None, 3) is None
    assert check_arguments([WEATHER], "get_weather", '{"city": "Paris"}') is None
    assert check_arguments([WEATHER], "get_weather", '{"city": 1}') == "$.city: 1 is not of type 'string'"
    assert check_arguments([WEATHER], "get_weather", '{"city": ').startswith("The arguments is not valid JSON")
    assert check_arguments([WEATHER], "launch", "{}") == "No tool named 'launch' was offered."


def test_minimal_instances_are_small_valid_and_deterministic():
    instance = minimal_instance(SCHEMA)
    assert instance == {"title": "xx", "rating": 1, "tags": [""], "mood": "happy", "author": {"name": ""}}
    schemas = [
        {"type": "string"},
        {"type": ["null", "number"], "exclusiveMinimum": 0},
        {"anyOf": [{"type": "boolean"}, {"type": "string"}]},
        {"allOf": [{"properties": {"a": {"const": 7}}, "required": ["a"]}, {"required": ["b"]}]},
        {"type": "array", "items": {"type": "integer", "minimum": 3}, "minItems": 2},
        WEATHER["parameters"],
    ]
    for schema in schemas:
        validators.validator_for(schema).check_schema(schema)
        assert validate_instance(schema, minimal_instance(schema)) is None, schema
    assert minimal_instance({"$ref": "#"}) is None  # a loop ends


def test_old_settings_decode_and_defaults_stay_out_of_the_blob():
    session = {"settings": {STANDALONE: {"provider": "echo", "model": "echo-1", "temperature": 0.3}}}
    settings = load_settings(session, STANDALONE)
    assert (settings.tools, settings.tool_choice, settings.response_format, settings.strict) == (
        [],
        "auto",
        "text",
        True,
    )
    store_settings(session, STANDALONE, settings)
    assert not {"tools", "tool_choice", "response_format", "schema_name", "strict"} & set(
        session["settings"][STANDALONE]
    )
    chosen = msgspec.structs.replace(settings, tools=[WEATHER], response_format="json_schema", json_schema=SCHEMA)
    store_settings(session, STANDALONE, chosen)
    assert load_settings(session, STANDALONE) == chosen
    fields = chosen.tool_fields()
    assert "mock" not in fields["tools"][0] and fields["json_schema"] == SCHEMA  # mocks are ours, never sent


# --- the settings form and the echo model through the playground -----------------------------------


def page_text(playground) -> str:
    return unescape(playground.page().get_data(as_text=True))


def test_the_settings_form_says_what_is_wrong_under_each_json_field(app, playground):
    response = playground.save_settings(tools='[{"name": "a b"}]', response_format="json_schema", json_schema="{")
    assert response.status_code == 422
    html = unescape(response.get_data(as_text=True))
    assert re.search(r'<p class="field-error" id="tools-error">Tool 1\'s name must be', html)
    assert re.search(r'<p class="field-error" id="json_schema-error">The schema is not valid JSON: ', html)
    assert '[{"name": "a b"}]' in html  # what was typed is kept
    response = playground.save_settings(tools=json.dumps([TIME]), tool_choice="get_weather")
    assert "Tool choice 'get_weather' names no tool" in unescape(response.get_data(as_text=True))
    response = playground.save_settings(response_format="json_schema")
    assert "Give the JSON schema replies must follow" in response.get_data(as_text=True)

    saved = playground.save_settings(
        tools=json.dumps([WEATHER, TIME]),
        tool_choice="get_time",
        response_format="json_schema",
        schema_name="review",
        json_schema=json.dumps(SCHEMA),
        strict="off",
    )
    assert saved.status_code == 303
    html = page_text(playground)
    assert '"name": "get_weather"' in html and "<option selected>get_time</option>" in html
    assert '<option value="json_schema" selected>json_schema</option>' in html
    assert 'name="strict" value="on">' in html  # saved unticked
    # A form that does not post the new fields (an older page) keeps the defaults.
    assert playground.save_settings().status_code == 303
    assert '<option value="text" selected>text</option>' in page_text(playground)


def test_echo_calls_tools_and_answers_schemas_through_the_playground(app, playground):
    playground.save_settings(tools=json.dumps([WEATHER, TIME]))
    playground.send('/call get_weather {"city": "Paris"}\n/call get_weather {"town": 1}\n/call nothing {}')
    reply = playground.messages(app)[-1]
    assert reply.status == "done" and reply.content == ""
    assert reply.tool_calls == [
        ToolCall(id="call_echo_1_1", name="get_weather", arguments='{"city": "Paris"}'),
        ToolCall(id="call_echo_1_2", name="get_weather", arguments='{"town": 1}'),
    ]
    html = page_text(playground)
    assert html.count('class="tool-call"') == 2
    assert '<span class="badge badge-valid">arguments valid</span>' in html
    assert "<span class=\"badge badge-invalid\">$: 'city' is a required property</span>" in html
    assert '{\n  "city": "Paris"\n}' in html

    # Its answer (the tool-results form comes later: the record is written as that form will) goes back.
    with app.app_context():
        from prompt_tracker.extensions import services

        result = Message(id=new_message_id(), role="tool", content="21 °C", tool_call_id="call_echo_1_1", created_at=0)
        services.conversations.append(playground.store(), STANDALONE, result)
    playground.send("and now?")
    assert playground.messages(app)[-1].content.startswith("You said: and now?")

    playground.save_settings(response_format="json_schema", json_schema=json.dumps(SCHEMA))
    playground.send("review it")
    reply = playground.messages(app)[-1]
    assert json.loads(reply.content) == minimal_instance(SCHEMA)
    assert '<p class="badge badge-valid schema-badge">Valid against the schema</p>' in reply.html
    assert 'class="language-json"' in reply.html

    playground.save_settings(response_format="json_object")
    playground.send("anything")
    assert json.loads(playground.messages(app)[-1].content) == {"you_said": "anything"}
    assert "Valid JSON" in playground.messages(app)[-1].html


def test_request_view_and_curl_carry_tools_and_schema(app, playground, fake_openai):
    fake_openai.script.reply = '{"title": "Good"}'
    playground.save_settings(
        provider="openai",
        model="gpt-4o-mini",
        tools=json.dumps([WEATHER]),
        tool_choice="get_weather",
        response_format="json_schema",
        schema_name="review",
        json_schema=json.dumps(SCHEMA),
    )
    playground.send("review it")
    reply = playground.messages(app)[-1]
    sent = fake_openai.requests[-1].body
    assert sent["tools"] == [{"type": "function", "function": {k: v for k, v in WEATHER.items() if k != "mock"}}]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "review", "schema": SCHEMA, "strict": True},
    }
    # The reply is JSON, but not valid against the schema: said with the first error.
    assert "<p class=\"badge badge-invalid schema-badge\">$: 'rating' is a required property</p>" in unescape(
        reply.html
    )
    view = unescape(playground.client.get(f"/playground/messages/{reply.id}/request").get_data(as_text=True))
    assert '"tools": [' in view and '"response_format": {' in view and '"strict": true' in view
    body = json.loads(re.search(r"-d '(.*)'", curl_command(request_record(app, playground, reply))).group(1))
    assert body == sent  # the curl command sends what the server received


def request_record(app, playground, reply):
    from prompt_tracker.domain.recorded_request import sent_request

    return sent_request(reply, playground.messages(app))[0]


# --- providers, on the fake servers ---------------------------------------------------------------

REQUEST = ChatRequest(
    model="gpt-4o-mini",
    system_prompt="",
    messages=[
        ("user", "Weather in Paris and Rome?"),
        ("assistant", "", {"tool_calls": [{"id": "c1", "name": "get_weather", "arguments": '{"city": "Paris"}'}]}),
        ("tool", "21 °C", {"tool_call_id": "c1"}),
        ("user", "And Rome?"),
    ],
    tools=[{k: v for k, v in WEATHER.items() if k != "mock"}],
    tool_choice="required",
)
PAIR = [{"name": "get_weather", "arguments": '{"city": "Rome"}'}, {"name": "get_time", "arguments": '{"zone": "CET"}'}]


def test_openai_assembles_parallel_tool_calls_and_sends_the_history_in_its_format(fake_openai):
    fake_openai.script.reply = ""
    fake_openai.script.tool_calls = PAIR
    items = list(get_provider("openai").stream(REQUEST))
    assert [item for item in items if isinstance(item, ToolCall)] == [
        ToolCall(id="call_fake0", name="get_weather", arguments='{"city": "Rome"}'),
        ToolCall(id="call_fake1", name="get_time", arguments='{"zone": "CET"}'),
    ]
    assert isinstance(items[-1], Usage) and "".join(i for i in items if isinstance(i, str)) == ""
    body = fake_openai.requests[-1].body
    assert body["messages"][1:3] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "21 °C"},
    ]
    assert body["tool_choice"] == "required" and get_provider("openai").describe(REQUEST)["body"] == body


def test_anthropic_streams_tool_use_blocks_and_sends_the_history_in_its_format(fake_anthropic):
    fake_anthropic.script.reply = "Let me look."
    fake_anthropic.script.tool_calls = PAIR
    request = ChatRequest(**{**REQUEST.__dict__, "model": "claude-haiku-4-5"})
    items = list(get_provider("anthropic").stream(request))
    assert "".join(item for item in items if isinstance(item, str)) == "Let me look."
    assert [item for item in items if isinstance(item, ToolCall)] == [
        ToolCall(id="toolu_fake0", name="get_weather", arguments='{"city": "Rome"}'),
        ToolCall(id="toolu_fake1", name="get_time", arguments='{"zone": "CET"}'),
    ]
    body = fake_anthropic.requests[-1].body
    assert body["tools"] == [
        {"name": "get_weather", "description": WEATHER["description"], "input_schema": WEATHER["parameters"]}
    ]
    assert body["tool_choice"] == {"type": "any"}
    assert body["messages"][1:3] == [
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "c1", "name": "get_weather", "input": {"city": "Paris"}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c1", "content": "21 °C"}]},
    ]
    assert get_provider("anthropic").describe(request)["body"] == body

    schema = ChatRequest(
        model="claude-haiku-4-5",
        system_prompt="",
        messages=[("user", "hi")],
        response_format="json_schema",
        json_schema=SCHEMA,
    )
    list(get_provider("anthropic").stream(schema))
    assert fake_anthropic.requests[-1].body["output_config"] == {"format": {"type": "json_schema", "schema": SCHEMA}}
    older = ChatRequest(**{**schema.__dict__, "model": "claude-3-5-haiku-latest"})
    with pytest.raises(ProviderError, match="^claude-3-5-haiku-latest does not support structured output"):
        list(get_provider("anthropic").stream(older))


@pytest.mark.parametrize(
    "name, fixture, model, expected",
    [
        (
            "openai",
            "fake_openai",
            "fake-model",
            "fake-model does not support tools: registry.fake/fake-model does not support tools",
        ),
        (
            "anthropic",
            "fake_anthropic",
            "claude-haiku-4-5",
            "claude-haiku-4-5 does not support tools: tools: this model does not support tool use",
        ),
    ],
)
def test_a_model_that_refuses_tools_is_said_in_one_sentence(request, name, fixture, model, expected):
    server = request.getfixturevalue(fixture)
    server.script.reject_tools = True
    with pytest.raises(ProviderError) as raised:
        list(get_provider(name).stream(ChatRequest(**{**REQUEST.__dict__, "model": model})))
    assert str(raised.value) == expected


# --- through the real path: Redis, a worker, the fake servers ----------------------------------------


def test_tool_calls_and_structured_replies_through_a_real_worker(
    live_app, live_playground, real_redis, start_worker, fake_openai, fake_anthropic
):
    start_worker()

    def reply_to(text):
        live_playground.send(text)
        return wait_for(lambda: (m := live_playground.messages(live_app)[-1]).status in ("done", "failed") and m)

    # A parallel pair, streamed as interleaved deltas, recorded on the reply and shown with badges.
    fake_openai.script.reply = ""
    fake_openai.script.tool_calls = [PAIR[0], {"name": "get_weather", "arguments": '{"city": 3}'}]
    live_playground.save_settings(provider="openai", model="gpt-4o-mini", tools=json.dumps([WEATHER, TIME]))
    reply = reply_to("weather in Rome?")
    assert reply.status == "done" and [call.arguments for call in reply.tool_calls] == [
        '{"city": "Rome"}',
        '{"city": 3}',
    ]
    html = page_text(live_playground)
    assert "arguments valid" in html and "$.city: 3 is not of type 'string'" in html
    assert fake_openai.requests[-1].body["tools"][0]["function"]["name"] == "get_weather"

    # A model that refuses tools: one sentence under the reply.
    fake_openai.script.reject_tools = True
    live_playground.save_settings(provider="openai", model="fake-model", tools=json.dumps([WEATHER]))
    reply = reply_to("again")
    assert reply.status == "failed" and reply.error.startswith("fake-model does not support tools: ")
    assert reply.error in page_text(live_playground)

    # Structured output: a valid and an invalid reply, each with its badge.
    fake_openai.script.reject_tools = False
    fake_openai.script.tool_calls = None
    live_playground.save_settings(
        provider="openai", model="gpt-4o-mini", response_format="json_schema", json_schema=json.dumps(SCHEMA)
    )
    fake_openai.script.reply = json.dumps(minimal_instance(SCHEMA))
    assert "Valid against the schema" in reply_to("review").html
    fake_openai.script.reply = json.dumps({**minimal_instance(SCHEMA), "title": "x"})
    assert "$.title: 'x' is too short" in unescape(reply_to("review badly").html)
    fake_openai.script.reply = "{not json"
    assert "Not valid JSON: " in reply_to("break it").html

    # Anthropic's tool_use blocks, through the same pipeline.
    fake_anthropic.script.reply = "Checking."
    fake_anthropic.script.tool_calls = [PAIR[0]]
    live_playground.save_settings(provider="anthropic", model="claude-haiku-4-5", tools=json.dumps([WEATHER]))
    reply = reply_to("weather?")
    assert reply.content == "Checking." and reply.tool_calls == [
        ToolCall(id="toolu_fake0", name="get_weather", arguments='{"city": "Rome"}')
    ]
    wait_for(lambda: jobs_ended(real_redis))


def test_the_context_estimate_counts_tool_definitions_and_the_schema():
    from prompt_tracker.replies.context import estimated_tokens, fixed_text

    bare = PlaygroundSettings(system_prompt="Be brief.")
    tooled = msgspec.structs.replace(bare, tools=[WEATHER], response_format="json_schema", json_schema=SCHEMA)
    assert fixed_text(bare) == "Be brief."
    assert (
        '"get_weather"' in fixed_text(tooled) and '"mock"' not in fixed_text(tooled) and '"$defs"' in fixed_text(tooled)
    )
    assert estimated_tokens([], fixed_text(tooled), "hi", 0) > estimated_tokens([], fixed_text(bare), "hi", 0) + 50


def test_a_refusal_of_the_schema_or_tools_says_which_and_other_400s_stay_as_they_were():
    from prompt_tracker.providers.http_errors import feature_refused

    schema = ChatRequest(model="gpt-4o-mini", system_prompt="", messages=[], response_format="json_schema")
    detail = "Invalid schema for response_format 'review': 'additionalProperties' is required to be false"
    assert feature_refused(schema, 400, detail) == f"gpt-4o-mini refused the structured output (json_schema): {detail}"
    assert feature_refused(REQUEST, 400, "Invalid schema for function 'get_weather'").startswith(
        "gpt-4o-mini refused the tools: "
    )
    assert feature_refused(REQUEST, 400, "max_tokens is too large") is None
    assert feature_refused(REQUEST, 500, "tools broke") is None
    plain = ChatRequest(model="m", system_prompt="", messages=[])
    assert feature_refused(plain, 400, "this model does not support tools") is None
