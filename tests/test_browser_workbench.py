"""The workbench in a real Chromium: Markdown replies with highlighted code and Copy buttons."""

import json

import pytest

from .conftest import press_send, screenshot
from .fake_llm_servers import OPENAI_KEY

pytestmark = [pytest.mark.browser, pytest.mark.integration]

MARKDOWN_REPLY = (
    "Here is **the plan**, ~~not~~ final:\n\n"
    "| step | owner |\n| --- | --- |\n| draft | Ada |\n| review | Lin |\n\n"
    "- read the [docs](https://example.org/docs)\n- run the code:\n\n"
    '```python\ndef greet(name):\n    return f"Hello, {name}!"\n```\n'
)


def ask_openai(page, live_server, text):
    page.goto(live_server + "/playground")
    if not page.is_visible("#provider"):  # on a phone the settings are folded away
        page.click(".settings-fold > summary")
    page.select_option("#provider", "openai")
    page.click("text=Save settings")
    page.wait_for_selector("text=Settings saved")
    page.fill("#content", text)
    press_send(page)
    page.wait_for_selector('.message-assistant[data-status="done"]', timeout=20_000)


def test_markdown_reply_with_highlighted_code_and_copy_buttons(fake_openai, chromium, live_server, start_worker):
    fake_openai.script.reply = MARKDOWN_REPLY
    start_worker()
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.new_page()
    ask_openai(page, live_server, "Plan with **stars** kept as typed")
    reply = page.locator(".message-assistant .body")
    # rendered once the reply is done (swapped in without a reload)
    assert reply.locator("strong").inner_text() == "the plan"
    assert reply.locator("s").inner_text() == "not"
    assert reply.locator("table td").first.inner_text() == "draft"
    assert reply.locator("a").get_attribute("rel") == "noopener noreferrer"
    keyword = reply.locator("pre.highlight code .k").first  # `def`, highlighted with a class
    assert keyword.inner_text() == "def"
    assert keyword.evaluate("node => getComputedStyle(node).color") != reply.locator("pre code").evaluate(
        "node => getComputedStyle(node).color"
    )
    # the user's text is plain, as typed
    assert page.inner_text(".message-user .body") == "Plan with **stars** kept as typed"
    screenshot(page, "20-markdown-reply")

    reply.locator(".code-block .copy-button").click()
    page.wait_for_selector(".code-block .copy-button:has-text('Copied')")
    assert page.evaluate("navigator.clipboard.readText()") == 'def greet(name):\n    return f"Hello, {name}!"\n'
    page.click(".message-user .copy-button")
    assert page.evaluate("navigator.clipboard.readText()") == "Plan with **stars** kept as typed"

    page.reload()  # the stored HTML, not a re-render
    assert page.locator(".message-assistant pre.highlight .k").first.inner_text() == "def"
    context.close()


def test_markdown_on_a_phone(fake_openai, chromium, live_server, start_worker):
    fake_openai.script.reply = MARKDOWN_REPLY
    start_worker()
    phone = chromium.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = phone.new_page()
    ask_openai(page, live_server, "Plan on a phone")
    assert page.locator(".message-assistant table").is_visible()
    # the page itself never scrolls sideways: wide tables and code scroll inside the message
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "21-markdown-phone")
    phone.close()


def test_parameters_follow_the_provider_and_show_under_the_reply(
    fake_openai, fake_anthropic, page, live_server, start_worker
):
    start_worker()
    page.goto(live_server + "/playground")
    assert not page.is_visible("#top_p") and not page.is_visible("#seed")  # echo takes neither
    page.select_option("#provider", "anthropic")
    assert page.is_visible("#thinking_budget") and page.is_visible("#top_p") and not page.is_visible("#seed")
    page.select_option("#provider", "openai")
    assert (
        page.is_visible("#seed") and page.is_visible("#frequency_penalty") and not page.is_visible("#thinking_budget")
    )
    page.fill("#top_p", "0.9")
    page.fill("#seed", "7")
    page.fill("#stop", "###")
    page.click("text=Save settings")
    page.wait_for_selector("text=Settings saved")
    page.fill("#content", "with parameters")
    press_send(page)
    page.wait_for_selector('.message-assistant[data-status="done"]', timeout=20_000)
    assert 'top_p=0.9 stop=["###"] seed=7' in page.inner_text(".message-assistant .params-used")
    body = fake_openai.requests[-1].body
    assert body["top_p"] == 0.9 and body["seed"] == 7 and body["stop"] == ["###"]
    screenshot(page, "22-parameters")


def test_view_request_shows_json_and_curl_and_copies_them(fake_openai, chromium, live_server, start_worker):
    start_worker()
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.new_page()
    ask_openai(page, live_server, "What was sent?")
    page.click(".message-assistant >> text=View request")
    page.wait_for_selector("text=What openai was sent")
    sent = fake_openai.requests[-1].body
    assert json.loads(page.inner_text("#request-json"))["body"] == sent
    assert page.inner_text("#request-curl").startswith("curl http://127.0.0.1:")
    assert OPENAI_KEY not in page.content()
    screenshot(page, "23-request-view")
    page.click("text=Copy JSON")
    assert json.loads(page.evaluate("navigator.clipboard.readText()"))["body"] == sent
    page.click("text=Copy curl")
    # every value single-quoted for the shell; only the key's variable expands
    assert "-H 'Authorization: Bearer '\"$OPENAI_API_KEY\"" in page.evaluate("navigator.clipboard.readText()")
    page.click("text=Back to the conversation")
    page.wait_for_selector(".message-assistant")
    # the same page on a phone: the code scrolls inside its box, the page does not
    page.set_viewport_size({"width": 390, "height": 844})
    page.go_back()
    page.wait_for_selector("#request-json")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "24-request-view-phone")
    context.close()


def test_export_then_import_in_another_browser(fake_openai, chromium, live_server, start_worker, tmp_path):
    fake_openai.script.reply = MARKDOWN_REPLY
    start_worker()
    context = chromium.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    page = context.new_page()
    ask_openai(page, live_server, "Export me")
    page.click("summary:has-text('Export / Import')")
    screenshot(page, "25-export-import")
    with page.expect_download() as download:
        page.click("text=Export JSON")
    exported = tmp_path / "conversation.json"
    download.value.save_as(exported)
    assert json.loads(exported.read_text())["messages"][1]["content"] == MARKDOWN_REPLY
    with page.expect_download() as download:
        page.click("text=Export Markdown")
    markdown = tmp_path / "conversation.md"
    download.value.save_as(markdown)
    assert "## You\n\nExport me" in markdown.read_text()
    context.close()

    phone = chromium.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = phone.new_page()
    page.goto(live_server + "/playground")
    page.click("summary:has-text('Export / Import')")
    page.set_input_files("#import-file", str(exported))
    screenshot(page, "26-import-phone")
    page.click(".import-form button:has-text('Import')")
    page.wait_for_selector("text=Imported 2 messages.")
    assert page.inner_text(".message-user .body") == "Export me"
    assert page.locator(".message-assistant pre.highlight .k").first.inner_text() == "def"
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    # a file that is not an export: a sentence, and the conversation stays
    bad = tmp_path / "bad.json"
    bad.write_text('{"hello": "world"}')
    page.click("summary:has-text('Export / Import')")
    page.set_input_files("#import-file", str(bad))
    page.click(".import-form button:has-text('Import')")
    page.wait_for_selector("text=This is not a Prompt Tracker conversation export")
    assert page.inner_text(".message-user .body") == "Export me"
    screenshot(page, "27-import-refused-phone")
    phone.close()


def test_add_few_shot_messages_and_delete_one(fake_openai, page, live_server, start_worker):
    start_worker()
    page.goto(live_server + "/playground")
    page.select_option("#provider", "openai")
    page.click("text=Save settings")
    page.wait_for_selector("text=Settings saved")
    for role, text in [("user", "I loved it"), ("assistant", "**positive**")]:
        if not page.eval_on_selector("#add-message", "(panel) => panel.open"):  # open again after an add
            page.click("summary:has-text('Add a message without sending')")
        page.select_option("#add-role", role)
        page.fill("#add-content", text)
        page.click("button:has-text('Add message')")
        page.wait_for_selector(f".message-{role} >> text={text.strip('*')}")
    assert page.inner_text(".message-assistant .body strong") == "positive"  # hand-written replies are Markdown too
    page.fill("#content", "It was awful")
    press_send(page)
    page.wait_for_selector('.message-assistant[data-status="done"] >> text=Hello there', timeout=20_000)
    assert [m["content"] for m in fake_openai.requests[-1].body["messages"]] == [
        "I loved it",
        "**positive**",
        "It was awful",
    ]
    screenshot(page, "28-few-shot")
    page.click(".message-user:has-text('I loved it') button:has-text('Delete')")
    page.click(".message-user:has-text('I loved it') button:has-text('Delete this and the reply after it?')")
    page.wait_for_selector("text=I loved it", state="detached")
    # a user message goes with the assistant message after it (its reply: here the example answer)
    assert page.locator(".message").count() == 2 and "positive" not in page.inner_text("#messages")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "29-few-shot-phone")
