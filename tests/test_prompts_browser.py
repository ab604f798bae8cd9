"""The prompt library in a real Chromium, on the real web process, a real worker, Redis and PostgreSQL."""

import json

import pytest

from .conftest import press_send, screenshot, service_env
from .processes import run_flask, web_process

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def flask_cli(env, *args):
    result = run_flask(["--app", "wsgi", *args], env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture
def database_env(real_redis, postgres_server):
    """The app's environment on the private Redis and a fresh, migrated PostgreSQL database."""
    return {**service_env(real_redis), "DATABASE_URL": postgres_server.create_database(migrated=True)}


@pytest.fixture
def prompt_server(database_env, tmp_path):
    with web_process(database_env, tmp_path / "web.log") as url:
        yield url


def reply_done(page, count):
    page.wait_for_selector(f'.message-assistant[data-status="done"] >> nth={count - 1}', timeout=20_000)


def test_prompt_versions_variables_diff_tabs_and_export(
    page, prompt_server, start_worker, database_env, postgres_server, tmp_path
):
    start_worker()
    base = prompt_server

    # Create a prompt from the list page.
    page.goto(base + "/playground")
    page.click("nav >> text=Prompts")
    page.fill("#name", "Support bot")
    page.fill("#system_prompt", "You answer support questions.")
    page.click("text=Create prompt")
    page.wait_for_url(base + "/prompts/support-bot")
    assert "Version 1" in page.inner_text("main")
    screenshot(page, "prompts-01-created")

    # Its playground starts from version 1; add a variable and fill it.
    page.click("text=Open in playground")
    page.wait_for_url(base + "/prompts/support-bot/playground")
    assert page.input_value("#system_prompt") == "You answer support questions."
    page.fill("#system_prompt", "You answer support questions for {{ customer }}.")
    page.click("text=Save settings")
    page.wait_for_selector("#var-customer")
    page.fill("#var-customer", "Ada Ltd")
    page.click("text=Save values")
    page.wait_for_selector("text=Variables saved")
    assert page.input_value("#var-customer") == "Ada Ltd"

    # Chat: the reply records that unsaved settings (a draft) produced it.
    page.fill("#content", "Where is my parcel?")
    press_send(page)
    reply_done(page, 1)
    assert "draft" in page.inner_text(".message-assistant .meta-line")
    screenshot(page, "prompts-02-playground-draft")

    # Ctrl+S saves version 2 with its note; the next reply is "version 2".
    page.fill("#version-note", "names the customer")
    page.keyboard.press("Control+s")
    page.wait_for_selector("text=Saved as version 2.")
    assert page.is_visible("text=Save as version 3")
    page.fill("#content", "And now?")
    press_send(page)
    reply_done(page, 2)
    assert "version 2" in page.locator(".message-assistant .meta-line").nth(1).inner_text()
    screenshot(page, "prompts-03-version-2")

    # Diff 1 <-> 2.
    page.goto(base + "/prompts/support-bot")
    assert "names the customer" in page.inner_text("main")
    page.click("text=Diff")
    page.wait_for_url("**/prompts/support-bot/diff?from=1&to=2")
    changed = page.inner_text(".diff-split tr.changed")
    assert "You answer support questions." in changed and "for {{ customer }}." in changed
    screenshot(page, "prompts-04-diff")
    page.select_option("#view", "unified")
    page.click("text=Show")
    assert "+You answer support questions for {{ customer }}." in page.inner_text(".diff-unified")

    # A second prompt in another tab keeps its own conversation.
    other = page.context.new_page()
    other.goto(base + "/prompts")
    other.fill("#name", "Translator")
    other.fill("#system_prompt", "Translate to French.")
    other.click("text=Create prompt")
    other.click("text=Open in playground")
    other.fill("#content", "Good morning")
    press_send(other)
    reply_done(other, 1)
    assert "Where is my parcel?" not in other.inner_text("#messages")

    page.goto(base + "/prompts/support-bot/playground")
    page.reload()
    conversation = page.inner_text("#messages")
    assert "Where is my parcel?" in conversation and "And now?" in conversation
    assert "Good morning" not in conversation
    assert page.input_value("#var-customer") == "Ada Ltd"
    other.reload()
    assert "Good morning" in other.inner_text("#messages") and "parcel" not in other.inner_text("#messages")
    other.close()

    # Export, then import into an empty database: the same prompts and versions.
    exported = flask_cli(database_env, "prompts", "export")
    path = tmp_path / "prompts.json"
    path.write_text(exported)
    data = json.loads(exported)
    assert [(p["slug"], len(p["versions"])) for p in data["prompts"]] == [("support-bot", 2), ("translator", 1)]
    empty = {**database_env, "DATABASE_URL": postgres_server.create_database(migrated=True)}
    assert "2 new prompts, 0 updated, 3 new versions" in flask_cli(empty, "prompts", "import", str(path))
    assert flask_cli(empty, "prompts", "export") == exported


def test_prompt_pages_on_a_phone(chromium, prompt_server, start_worker):
    start_worker()
    context = chromium.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    page.goto(prompt_server + "/prompts")
    page.fill("#name", "Phone prompt")
    page.fill("#system_prompt", "Hello {{ name }}")
    page.click("text=Create prompt")
    page.wait_for_url("**/prompts/phone-prompt")
    screenshot(page, "prompts-05-phone-show")
    page.click("text=Open in playground")
    page.fill("#var-name", "Bea")
    page.click("text=Save values")
    page.fill("#content", "hi")
    page.click("button:has-text('Send')")
    reply_done(page, 1)
    assert "version 1" in page.inner_text(".message-assistant .meta-line")
    assert page.is_visible("#save-version")
    screenshot(page, "prompts-06-phone-playground")
    page.goto(prompt_server + "/prompts")
    screenshot(page, "prompts-07-phone-list")

    # Version 2; the diff on the phone is stacked (old above new, each nearly the screen's width), words marked.
    page.goto(prompt_server + "/prompts/phone-prompt/playground")
    if not page.is_visible("#system_prompt"):  # the settings folded away on a phone
        page.click("details:has(#system_prompt) > summary")
    page.fill("#system_prompt", "Hello {{ name }}, welcome back")
    page.click("#save-version")
    page.wait_for_selector("text=Saved as version 2.")
    page.goto(prompt_server + "/prompts/phone-prompt/diff?from=1&to=2")
    old = page.locator(".diff-split tr.changed td.left").first.bounding_box()
    new = page.locator(".diff-split tr.changed td.right").first.bounding_box()
    assert new["y"] >= old["y"] + old["height"] - 1 and min(old["width"], new["width"]) > 250, (old, new)
    assert "welcome back" in page.locator(".diff-split tr.changed ins").first.inner_text()
    screenshot(page, "prompts-08-phone-diff")

    # Version 1 opened in the playground from the prompt page; then a rename: the old address redirects.
    page.goto(prompt_server + "/prompts/phone-prompt")
    page.click("#v1 >> text=Open in playground")
    page.wait_for_selector("text=Settings of version 1 loaded; the latest is version 2.")
    assert page.input_value("#system_prompt") == "Hello {{ name }}"
    screenshot(page, "prompts-09-phone-version-1-opened")
    page.goto(prompt_server + "/prompts/phone-prompt")
    page.fill("#slug", "renamed-prompt")
    page.click("aside >> text=Save")
    page.wait_for_url("**/prompts/renamed-prompt")
    page.goto(prompt_server + "/prompts/phone-prompt/diff?from=1&to=2")
    assert page.url.endswith("/prompts/renamed-prompt/diff?from=1&to=2")
    context.close()
