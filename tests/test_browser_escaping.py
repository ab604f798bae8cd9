"""Values placed in attributes stay inside them, as Chromium parses the page."""

import json

import pytest

from .conftest import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.integration]

PAYLOAD = "\" onmouseover=\"document.title='owned'\" data-owned='<b>&amp;"


def test_a_variable_value_does_not_become_an_attribute_of_the_version_label(page, live_server, tmp_path):
    """The version label's title carries the reply's variable values (a prompt's defaults included)."""
    reply = {"role": "assistant", "content": "hi", "created_at": 2, "provider": "echo", "model": "echo-1"}
    conversation = {
        "format": "prompt-tracker/conversation",
        "version": 1,
        "messages": [
            {"id": "u1", "role": "user", "content": "hello", "created_at": 1},
            {**reply, "id": "a1", "version": 1, "variables": {"customer": PAYLOAD}},
            {**reply, "id": "a2", "draft": True, "variables": {"customer": PAYLOAD}},
        ],
    }
    path = tmp_path / "conversation.json"
    path.write_text(json.dumps(conversation))
    page.goto(live_server + "/playground")
    page.click("summary >> text=Export / Import")
    page.set_input_files("#import-file", str(path))
    page.click(".import-form button[type=submit]")
    page.wait_for_selector("text=Imported 3 messages.")

    labels = page.locator(".provenance")
    assert labels.count() == 2
    attributes = labels.evaluate_all("(spans) => spans.map((span) => span.getAttributeNames())")
    assert attributes == [["class", "title"], ["class", "title"]]
    titles = labels.evaluate_all("(spans) => spans.map((span) => span.title)")
    assert json.loads(titles[0]) == {"customer": PAYLOAD}
    assert json.loads(titles[1].removeprefix("unsaved changes: ")) == {"customer": PAYLOAD}
    assert page.locator("[data-owned], [onmouseover]").count() == 0
    labels.first.hover()
    assert page.title() != "owned"
    screenshot(page, "escaping-version-label")
