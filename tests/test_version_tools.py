"""Tools, tool choice and structured output kept with a prompt version (issue 18): saved from the playground
and no longer a draft, restored, diffed as pretty JSON, exported and imported (a bad file refused), and served
by the read API (mocks stripped) with render's request in the provider's SDK form."""

import json

import pytest
from sqlalchemy import select

from prompt_tracker import create_app
from prompt_tracker.extensions import db
from prompt_tracker.prompts.library import PromptInvalid, create_prompt, save_version
from prompt_tracker.prompts.models import Prompt, PromptVersion
from prompt_tracker.prompts.settings import is_saved, restored_settings, settings_from_version
from prompt_tracker.prompts.transfer import export_prompts, import_prompts

from .test_prompts import Library
from .test_read_api import bearer, make_app, new_token

WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city today.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "mock": {"temperature": 21, "sky": "clear"},
}
FORECAST = {"type": "object", "properties": {"summary": {"type": "string"}}, "required": ["summary"]}
SCHEMA_FORMAT = {"type": "json_schema", "schema_name": "forecast", "json_schema": FORECAST, "strict": True}


@pytest.fixture
def library():
    app = create_app("test")
    with app.app_context():
        db.create_all()
    yield Library(app, app.test_client())
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def page(response) -> str:
    return response.get_data(as_text=True)


def save_tool_settings(library, slug, tools, **fields):
    return library.save_settings(
        slug,
        system_prompt="You forecast.",
        tools=json.dumps(tools),
        tool_choice="get_weather",
        response_format="json_schema",
        schema_name="forecast",
        json_schema=json.dumps(FORECAST),
        strict="on",
        **fields,
    )


def test_a_version_saved_with_tools_and_a_schema_is_not_a_draft_restores_and_diffs_word_by_word(library):
    library.create("Weather", "You forecast.")
    assert save_tool_settings(library, "weather", [WEATHER]).status_code == 303
    assert "unsaved changes (a draft)" in page(library.client.get("/prompts/weather"))
    assert library.post("/prompts/weather/playground/versions", note="tools").status_code == 303
    first, second = library.versions("weather")
    assert (first.tools, first.tool_choice, first.response_format) == ([], "auto", {"type": "text"})
    assert (second.tools, second.tool_choice, second.response_format) == ([WEATHER], "get_weather", SCHEMA_FORMAT)

    # Saved: the playground's settings are version 2's, not a draft; a reply says so.
    assert "Your playground: the settings of version 2" in page(library.client.get("/prompts/weather"))
    library.send("weather", "hi")
    reply = library.messages(f"prompt-{library.prompt('weather').id}")[-1]
    assert (reply.version, reply.draft) == (2, False)

    # Restoring version 1 drops the tools; restoring 2 brings them (and the schema) back, not a draft.
    library.post("/prompts/weather/versions/1/restore")
    playground = page(library.client.get("/prompts/weather/playground"))
    assert "The weather in a city today." not in playground
    library.post("/prompts/weather/versions/2/restore")
    playground = page(library.client.get("/prompts/weather/playground"))
    assert "The weather in a city today." in playground
    assert '<option value="json_schema" selected>' in playground and 'value="forecast"' in playground
    with library.app.app_context():
        version = db.session.get(PromptVersion, second.id)
        restored = restored_settings(version, settings_from_version(version))
        assert is_saved(restored, version) and restored.json_schema == FORECAST and restored.strict
        assert not is_saved(restored, db.session.get(PromptVersion, first.id))

    # The diff shows tools and the response format as pretty JSON lines.
    shown = page(library.client.get("/prompts/weather/diff?from=1&to=2"))
    assert "<h2>Tools</h2>" in shown and "<h2>Response format</h2>" in shown
    assert "&#34;name&#34;: &#34;get_weather&#34;," in shown and "tool_choice = get_weather" in shown
    assert "&#34;schema_name&#34;: &#34;forecast&#34;," in shown
    # A changed description marks only its changed words.
    changed = {**WEATHER, "description": "The weather in a city tomorrow."}
    save_tool_settings(library, "weather", [changed])
    library.post("/prompts/weather/playground/versions")
    shown = page(library.client.get("/prompts/weather/diff?from=2&to=3"))
    assert "<del>today</del>" in shown and "<ins>tomorrow</ins>" in shown
    assert "Response format <small>unchanged</small>" in shown


def test_export_and_import_carry_tools_and_a_bad_tool_or_schema_is_refused_naming_the_version(library):
    with library.app.app_context():
        prompt = create_prompt("Weather", "You forecast.")
        save_version(
            prompt.id,
            system_prompt="You forecast.",
            provider="echo",
            model="echo-1",
            params={},
            variables={},
            tools=[WEATHER],
            tool_choice="required",
            response_format=SCHEMA_FORMAT,
        )
        exported = export_prompts()
    data = json.loads(exported)
    assert data["prompts"][0]["versions"][1]["tools"] == [WEATHER]
    assert data["prompts"][0]["versions"][0]["response_format"] == {"type": "text"}

    target = create_app("test")
    with target.app_context():
        db.create_all()
        assert import_prompts(exported)["versions_added"] == 2
        assert import_prompts(exported)["versions_unchanged"] == 2  # the same content: idempotent
        assert export_prompts() == exported  # an exact round trip
        # A bad tool's parameters, or a bad schema, is refused with the version named; nothing is imported.
        bad = json.loads(exported)
        bad["prompts"][0]["slug"] = "other"
        bad["prompts"][0]["versions"][1]["tools"][0]["parameters"] = {"type": "strng"}
        with pytest.raises(PromptInvalid) as refused:
            import_prompts(json.dumps(bad).encode())
        assert str(refused.value).startswith(
            "The file cannot be imported: prompt 1 ('other'): version 2: "
            "Tool 'get_weather''s parameters is not a valid JSON Schema"
        )
        bad["prompts"][0]["versions"][1]["tools"] = [WEATHER]
        bad["prompts"][0]["versions"][1]["response_format"] = {**SCHEMA_FORMAT, "json_schema": {"type": 3}}
        with pytest.raises(PromptInvalid, match=r"version 2: The schema is not a valid JSON Schema"):
            import_prompts(json.dumps(bad).encode())
        bad["prompts"][0]["versions"][1]["response_format"] = SCHEMA_FORMAT
        bad["prompts"][0]["versions"][1]["tool_choice"] = "get_rain"
        with pytest.raises(PromptInvalid, match=r"version 2: Tool choice 'get_rain' names no tool"):
            import_prompts(json.dumps(bad).encode())
        db.session.rollback()
        assert list(db.session.scalars(select(Prompt.slug))) == ["weather"]
        db.session.remove()
        db.engine.dispose()


@pytest.mark.parametrize(
    "provider, model, tools, tool_choice, structured",
    [
        (
            "openai",
            "gpt-4o-mini",
            [{"type": "function", "function": {key: WEATHER[key] for key in ("name", "description", "parameters")}}],
            {"type": "function", "function": {"name": "get_weather"}},
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "forecast", "schema": FORECAST, "strict": True},
                }
            },
        ),
        (
            "anthropic",
            "claude-sonnet-4-5",
            [{"name": "get_weather", "description": WEATHER["description"], "input_schema": WEATHER["parameters"]}],
            {"type": "tool", "name": "get_weather"},
            {"output_config": {"format": {"type": "json_schema", "schema": FORECAST}}},
        ),
    ],
)
def test_the_read_api_serves_tools_without_mocks_and_render_puts_them_in_the_sdk_request(
    provider, model, tools, tool_choice, structured
):
    app = make_app()
    with app.app_context():
        prompt = create_prompt("Weather", "You forecast for {{ city }}.", variables={"city": "Paris"})
        save_version(
            prompt.id,
            system_prompt="You forecast for {{ city }}.",
            provider=provider,
            model=model,
            params={"max_tokens": 300},
            variables={"city": "Paris"},
            tools=[WEATHER],
            tool_choice="get_weather",
            response_format=SCHEMA_FORMAT,
        )
    api = app.test_client()
    headers = bearer(new_token(app))
    answer = api.get("/api/v1/prompts/weather", headers=headers).get_json()
    assert answer["tools"] == [{key: WEATHER[key] for key in ("name", "description", "parameters")}]
    assert (answer["tool_choice"], answer["response_format"]) == ("get_weather", SCHEMA_FORMAT)
    # A version at the defaults says nothing of them.
    plain = api.get("/api/v1/prompts/weather?version=1", headers=headers).get_json()
    assert not {"tools", "tool_choice", "response_format"} & set(plain)

    rendered = api.post("/api/v1/prompts/weather/render", json={}, headers=headers).get_json()
    request = rendered["request"]
    assert (request["tools"], request["tool_choice"]) == (tools, tool_choice)
    key = next(iter(structured))  # the structured output in each SDK's own form
    assert request[key] == structured[key]
    assert "mock" not in json.dumps(request)
