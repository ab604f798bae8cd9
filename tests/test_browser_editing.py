"""Editing in a real Chromium: edit a user message and resend, with and without JavaScript."""

import pytest

from .conftest import press_send, screenshot
from .test_browser import second_tab, wait_for_reply_without_script, wait_until_live

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def send_and_wait(page, text, replies):
    page.fill("#content", text)
    press_send(page)
    page.wait_for_function(
        f"() => document.querySelectorAll('.message-assistant[data-status=\"done\"]').length === {replies}",
        timeout=20_000,
    )


def test_edit_a_user_message_and_resend(fake_openai, page, live_server, start_worker):
    start_worker()
    page.goto(live_server + "/playground")
    page.select_option("#provider", "openai")
    page.click("text=Save settings")
    page.wait_for_selector("text=Settings saved")
    send_and_wait(page, "Name a colour", 1)
    send_and_wait(page, "And another", 2)
    other = second_tab(page)
    other.goto(live_server + "/playground")
    wait_until_live(other)

    first = page.locator(".message-user").first
    first.locator("text=Edit").click()
    editor = page.locator(".edit-form textarea")
    assert editor.input_value() == "Name a colour"
    assert page.evaluate("document.activeElement.matches('.edit-form textarea')")
    assert "removes the 3 messages after this one" in page.inner_text(".edit-form")
    editor.fill("Name a fruit")
    page.click(".edit-form button[type=submit]")
    # the first click only says what goes; nothing is sent yet
    page.wait_for_selector(".edit-form button:has-text('Remove 3 later messages and resend')")
    assert page.locator(".message").count() == 4
    screenshot(page, "30-edit-confirm")
    page.dblclick(".edit-form button[type=submit]")  # a double click resends once
    page.wait_for_function("() => document.querySelectorAll('.message').length === 2")
    page.wait_for_selector('.message-assistant[data-status="done"]', timeout=20_000)
    assert page.inner_text(".message-user .body") == "Name a fruit"
    assert fake_openai.requests[-1].body["messages"] == [{"role": "user", "content": "Name a fruit"}]
    assert len(fake_openai.requests) == 3
    assert page.inner_text("#message-count") == "2 messages"
    screenshot(page, "31-edit-resent")
    # the other tab of the session shows the edited conversation without a reload
    other.wait_for_function("() => document.querySelectorAll('.message').length === 2")
    assert other.inner_text(".message-user .body") == "Name a fruit"
    assert other.errors == []

    # Cancel puts the message back as it was; on a phone the form fits the screen
    page.set_viewport_size({"width": 390, "height": 844})
    page.locator(".message-user").first.locator("text=Edit").click()
    page.wait_for_selector(".edit-form")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "32-edit-phone")
    page.click(".edit-form >> text=Cancel")
    assert page.locator(".edit-form").count() == 0 and page.inner_text(".message-user .body") == "Name a fruit"


def test_edit_and_resend_without_javascript(chromium, live_server, start_worker):
    start_worker()
    context = chromium.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(live_server + "/playground")
    page.fill("#content", "no script here")
    page.click("button:has-text('Send')")
    wait_for_reply_without_script(page, "You said: no script here")
    page.click(".message-user >> text=Edit")
    page.wait_for_selector(".edit-form")
    assert "removes the 1 message after this one" in page.inner_text(".edit-form")
    page.fill(".edit-form textarea", "   ")
    page.check(".edit-form input[name=confirm_remove]")
    page.click(".edit-form button[type=submit]")
    page.wait_for_selector(".edit-form >> text=Type a message before sending.")
    page.fill(".edit-form textarea", "still no script")
    page.check(".edit-form input[name=confirm_remove]")
    screenshot(page, "33-edit-no-js")
    page.click(".edit-form button[type=submit]")
    wait_for_reply_without_script(page, "You said: still no script")
    assert page.locator(".message").count() == 2
    context.close()


@pytest.fixture
def openai_at_its_own_endpoint(monkeypatch):
    """OpenAI with a key and no base URL: the price data knows its context windows (no worker runs)."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-never-used")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def test_a_send_that_may_not_fit_the_context_window_asks_for_a_second_send(
    openai_at_its_own_endpoint, chromium, live_server
):
    # Not the ``page`` fixture: Chromium logs the 409 answer of the first Send as a console error.
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(live_server + "/playground")
    page.select_option("#provider", "openai")
    page.fill("#model", "gpt-4")  # an 8,192-token window
    page.fill("#max_tokens", "4000")
    page.click("text=Save settings")
    page.wait_for_selector("text=Settings saved")
    page.click("summary:has-text('Add a message without sending')")
    page.fill("#add-content", "long context " * 2_500)
    page.click("button:has-text('Add message')")
    page.wait_for_selector(".message-user")
    page.fill("#content", "Summarise the above")
    page.click("#composer button:has-text('Send')")
    page.wait_for_selector("#composer-error:has-text('This may not fit gpt-4')")
    assert "(an estimate:" in page.inner_text("#composer-error")
    assert page.input_value("#content") == "Summarise the above" and page.locator(".message").count() == 1
    screenshot(page, "34-context-warning")
    page.click("#composer button:has-text('Send')")  # the second Send goes ahead
    page.wait_for_function("() => document.querySelectorAll('.message').length === 3")
    page.wait_for_function("() => document.querySelector('#content').value === ''")
    assert page.is_hidden("#composer-error")
    context.close()


def test_unsaved_and_stale_settings_are_told(chromium, live_server, start_worker):
    start_worker()
    # Not the ``page`` fixture: Chromium logs the refused save's 409 page as a console error.
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(live_server + "/playground")
    other = second_tab(page)
    other.goto(live_server + "/playground")
    wait_until_live(page)

    # unsaved changes show, and a Send with them unsaved is held once
    page.fill("#system_prompt", "Answer in French.")
    page.wait_for_selector("#settings-unsaved:has-text('Unsaved changes')")
    page.fill("#content", "Bonjour?")
    page.click("#composer button:has-text('Send')")
    page.wait_for_selector("#composer-error:has-text('Your settings have unsaved changes')")
    assert page.locator(".message").count() == 0 and page.input_value("#content") == "Bonjour?"
    screenshot(page, "35-unsaved-settings")

    # another tab saves in between: this tab is told at once, and its save is refused with its text kept
    other.fill("#system_prompt", "Answer in German.")
    other.click("text=Save settings")
    other.wait_for_selector("text=Settings saved")
    page.wait_for_selector("#settings-stale:has-text('Another tab saved different settings')")
    page.click("text=Save settings")
    page.wait_for_selector("#settings-stale:has-text('Not saved: another tab saved different settings')")
    wait_until_live(page)  # the page's catch-up after its socket connects keeps the notice
    assert page.is_visible("#settings-stale") and page.is_visible("#settings-unsaved")
    assert page.input_value("#system_prompt") == "Answer in French."
    screenshot(page, "36-stale-settings")
    other.reload()
    assert other.input_value("#system_prompt") == "Answer in German."  # not silently undone
    page.click("text=Save settings")  # knowingly, this time
    page.wait_for_selector("text=Settings saved")
    assert page.input_value("#system_prompt") == "Answer in French." and page.is_hidden("#settings-unsaved")

    # flashes close; the skip link is the first stop of the Tab order and lands in the message box
    page.click(".flashes .flash-close")
    assert page.locator(".flashes").count() == 0
    page.focus(".brand")  # the top of the page: the skip link is the one stop before it
    page.keyboard.press("Shift+Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to the message box"
    screenshot(page, "39-skip-link")
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "content"
    assert other.errors == []
    context.close()


def test_settings_errors_and_an_earlier_window_on_a_phone(chromium, live_server, start_worker):
    start_worker()
    phone = chromium.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = phone.new_page()
    page.goto(live_server + "/playground")
    page.click(".settings-fold > summary")
    page.fill("#temperature", "9")
    page.fill("#model", "")
    page.click("text=Save settings")
    page.wait_for_selector("#temperature-error")  # visible: the settings stay unfolded when refused
    assert page.locator(".field-error").count() == 2  # each error once, under its field
    assert "Number must be between" in page.inner_text("#temperature-error")
    screenshot(page, "37-settings-errors-phone")
    page.goto(live_server + "/playground")
    # What was typed is still there, unsaved (a draft of this tab), until it is saved or discarded.
    assert page.input_value("#temperature") == "9" and page.is_visible("#settings-unsaved")
    page.click("#settings-discard")
    assert page.input_value("#temperature") == "0.70" and page.input_value("#model") == "echo-1"
    assert page.is_hidden("#settings-unsaved")
    for number in range(3):
        send_and_wait(page, f"message {number}", number + 1)
    page.goto(live_server + "/playground?before=2")
    assert page.locator("#composer").count() == 0
    assert page.is_visible("text=You are reading messages 1–2 of 6")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "38-earlier-window-phone")
    page.click("text=Back to the latest messages")
    page.wait_for_selector("#composer")
    phone.close()
