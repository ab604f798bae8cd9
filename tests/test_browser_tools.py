"""Tools and structured output in a real Chromium (issue 18): a tool saved in the settings, a reply that
streams a tool call ("Calling get_weather…", then its card), the user's answer through the card's form and
the next reply, a structured reply with its badge; Compare streaming calls in both columns; the answer
form without JavaScript."""

import json

import pytest

from .conftest import screenshot, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.integration]

WEATHER = {
    "name": "get_weather",
    "description": "The current weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}},
        "required": ["city"],
    },
    "mock": {"temperature": 21, "sky": "clear"},
}
# Long enough (about 20 pieces of 4 characters, half a second apart) to be seen assembling, and across a reload.
CALL = {
    "name": "get_weather",
    "arguments": '{"city": "Paris", "unit": "celsius", "note": "for the walk by the river tonight"}',
}
FORMATTED = '{\n  "city": "Paris",\n  "unit": "celsius",\n  "note": "for the walk by the river tonight"\n}'
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "temperature": {"type": "number"}, "advice": {"type": "string"}},
    "required": ["city", "temperature"],
    "additionalProperties": False,
}
STREAMING_CALL = '.message-assistant[data-status="streaming"] .tool-call-live'


def save_settings(page, **fields):
    """Open the tools panel, fill its fields (``tools``/``json_schema`` as JSON, ``response_format``), save."""
    if not page.is_visible("#provider"):  # on a phone the settings are folded away
        page.click(".settings-fold > summary")
    page.select_option("#provider", "openai")
    if not page.eval_on_selector(".tools-fields", "(panel) => panel.open"):
        page.click("summary:has-text('Tools and structured output')")
    if "tools" in fields:
        page.fill("#tools", json.dumps(fields["tools"], indent=2))
    if "response_format" in fields:
        page.select_option("#response_format", fields["response_format"])
    if "json_schema" in fields:
        page.fill("#json_schema", json.dumps(fields["json_schema"], indent=2))
    page.click("text=Save settings")
    page.wait_for_selector("text=Settings saved")


def send(page, text):
    page.fill("#content", text)
    page.keyboard.press("Control+Enter")


def test_a_tool_call_streams_is_answered_in_its_card_and_a_structured_reply_shows_its_json(
    fake_openai, page, chromium, live_server, start_worker
):
    start_worker()
    page.goto(live_server + "/playground")
    save_settings(page, tools=[WEATHER])
    assert json.loads(page.input_value("#tools")) == [WEATHER]  # saved as given, mock included

    # A reply that calls the tool, slowly: the call shows while it assembles, and after a reload too.
    fake_openai.script.reply = ""
    fake_openai.script.tool_calls = [CALL]
    fake_openai.script.chunk_delay = 0.5
    send(page, "Is it warm enough in Paris for a walk?")
    page.wait_for_selector(f"{STREAMING_CALL} .tool-name:text('get_weather')", timeout=20_000)
    assert "Calling get_weather…" in page.inner_text(STREAMING_CALL)
    page.wait_for_selector(f"{STREAMING_CALL} .tool-arguments:has-text('Paris')", timeout=20_000)
    screenshot(page, "60-tool-call-streaming")
    page.reload()  # mid-stream (some 7 s of it left): the streaming record names the call
    page.wait_for_selector(f"{STREAMING_CALL} .tool-name:text('get_weather')", timeout=5_000)

    # Its end: the card, with the arguments formatted and the badge.
    card = page.locator('.message-assistant[data-status="done"] .tool-call')
    card.wait_for(timeout=30_000)
    assert card.locator(".tool-name").inner_text() == "get_weather"
    assert card.locator(".tool-arguments").inner_text() == FORMATTED
    assert card.locator(".badge").inner_text() == "arguments valid"
    assert page.locator(".tool-call-live").count() == 0
    screenshot(page, "61-tool-call-card")

    # The user answers it through the card (with text that is not JSON: a result is text), with a double
    # click: one result, one next reply, streamed in.
    fake_openai.script.tool_calls = None
    fake_openai.script.chunk_delay = 0.05
    fake_openai.script.reply = "It is 21 °C and clear in Paris: a fine evening for a walk."
    card.locator("textarea").fill('{"temperature": 21, "sky": "clear"')
    card.locator("button:has-text('Answer')").dblclick()
    page.wait_for_selector('.message-assistant[data-status="done"] >> text=a fine evening for a walk', timeout=30_000)
    assert page.locator(".message-tool").count() == 1
    assert page.inner_text(".message-tool .body") == '{"temperature": 21, "sky": "clear"'
    assert page.locator(".message-assistant").count() == 2
    assert page.locator(".tool-result-form").count() == 0 and "Answered." in card.inner_text()
    wait_for(lambda: fake_openai.stream_requests() == 2)
    sent = fake_openai.requests[-1].body["messages"]
    assert sent[-1] == {"role": "tool", "tool_call_id": "call_fake0", "content": '{"temperature": 21, "sky": "clear"'}
    page.reload()
    assert page.locator(".message-tool").count() == 1 and page.locator(".message-assistant").count() == 2

    # A structured reply: its JSON formatted, and the badge.
    save_settings(page, response_format="json_schema", json_schema=SCHEMA)
    fake_openai.script.reply = '{"city": "Paris", "temperature": 21, "advice": "Take a light jacket."}'
    send(page, "The same, as JSON")
    structured = page.locator('.message-assistant[data-status="done"] >> nth=2')
    structured.locator(".schema-badge").wait_for(timeout=30_000)
    assert structured.locator(".schema-badge").inner_text() == "Valid against the schema"
    assert json.loads(structured.locator("pre").inner_text()) == json.loads(fake_openai.script.reply)
    assert '\n  "city": "Paris"' in structured.locator("pre").inner_text()
    assert fake_openai.requests[-1].body["response_format"]["json_schema"]["schema"] == SCHEMA
    screenshot(page, "62-tools-and-structured-laptop")
    # The same conversation on a phone: the cards and the JSON fit, the page never scrolls sideways.
    phone = chromium.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, storage_state=page.context.storage_state()
    )
    small = phone.new_page()
    small.goto(live_server + "/playground")
    small.wait_for_selector(".schema-badge")
    assert small.evaluate("document.documentElement.scrollWidth") <= 390
    card_box = small.locator(".tool-call").first.bounding_box()
    assert card_box["x"] >= 0 and card_box["x"] + card_box["width"] <= 390
    screenshot(small, "63-tools-and-structured-phone")
    phone.close()


def test_compare_streams_tool_calls_in_both_columns_and_the_card_answers_without_javascript(
    fake_openai, page, chromium, live_server, start_worker
):
    start_worker(), start_worker()  # both replies at once
    page.goto(live_server + "/playground")
    save_settings(page, tools=[WEATHER])
    page.goto(live_server + "/playground/compare")
    page.select_option("#choice-provider", "openai")
    page.fill("#choice-model", "gpt-4o")
    page.click("text=Compare with this model")
    page.wait_for_selector("text=Comparing with openai / gpt-4o")
    fake_openai.script.reply = ""
    fake_openai.script.tool_calls = [CALL]
    fake_openai.script.chunk_delay = 0.4
    send(page, "Weather in Paris?")
    for column in (".compare-left", ".compare-right"):
        page.wait_for_selector(
            f'{column} .message[data-status="streaming"] .tool-call-live .tool-name:text("get_weather")',
            timeout=20_000,
        )
    screenshot(page, "64-compare-tool-calls-streaming")
    for column in (".compare-left", ".compare-right"):
        page.wait_for_selector(f'{column} .message[data-status="done"] .tool-call .badge', timeout=30_000)
        assert page.inner_text(f"{column} .tool-arguments") == FORMATTED

    # Without JavaScript (the same session): the playground's card form posts, and the next reply is
    # written in the frame that refreshes itself.
    fake_openai.script.tool_calls = None
    fake_openai.script.chunk_delay = 0.0
    fake_openai.script.reply = "Mild and clear: 21 °C."
    plain = chromium.new_context(java_script_enabled=False, storage_state=page.context.storage_state())
    no_script = plain.new_page()
    no_script.goto(live_server + "/playground")
    no_script.fill(".tool-result-form textarea", "21 °C, clear")
    no_script.click(".tool-result-form button:has-text('Answer')")
    done = '.message-assistant[data-status="done"]:has-text("Mild and clear")'
    in_frame = no_script.frame_locator("iframe.reply-frame").last.locator(done)
    wait_for(lambda: no_script.locator(done).count() or in_frame.count(), timeout=30_000)
    no_script.reload()
    assert no_script.locator(".message-tool").inner_text().count("21 °C, clear") == 1
    assert no_script.locator(".tool-result-form").count() == 0
    screenshot(no_script, "65-tool-answer-no-js")
    plain.close()
