"""The playground in a real Chromium: send, watch the reply stream, reload, Stop, Reset."""

import pytest

from prompt_tracker.playground_settings import STANDALONE
from prompt_tracker.redis_keys import conversation_key

from .conftest import screenshot
from .fake_llm_servers import OPENAI_KEY

pytestmark = [pytest.mark.browser, pytest.mark.integration]
PREFIX = "prompt_tracker:session:"


def sid_of(page):
    return next(c["value"] for c in page.context.cookies() if c["name"] == "_prompt_tracker_session")


def test_send_stream_reload_and_reset(page, live_server, start_worker, real_redis):
    start_worker({"ECHO_DELAY": "0.05"})
    page.goto(live_server + "/playground")
    screenshot(page, "01-empty")
    page.fill("#content", "Hello from Chromium, tell me something long enough to stream")
    page.keyboard.press("Control+Enter")
    # the user message appears at once, without a reload
    page.wait_for_selector(".message-user >> text=Hello from Chromium")
    assert page.input_value("#content") == ""
    # the reply streams in: partial text before it is done
    page.wait_for_selector(".message-assistant .live:not(:empty)")
    screenshot(page, "02-streaming")
    page.wait_for_selector('.message-assistant[data-status="done"]', timeout=20_000)
    assert "You said: Hello from Chromium" in page.inner_text(".message-assistant .body")
    screenshot(page, "03-done")

    page.reload()
    assert "You said: Hello from Chromium" in page.inner_text(".message-assistant .body")
    assert "2 messages" in page.inner_text(".topbar")

    key = conversation_key(PREFIX, sid_of(page), STANDALONE)
    assert real_redis.client(2).exists(key)
    page.click("summary:has-text('Reset')")
    screenshot(page, "04-reset-confirm")
    page.click("text=Delete conversation")
    page.wait_for_selector("text=No messages yet")
    assert not real_redis.client(2).exists(key)
    screenshot(page, "05-after-reset")


def test_stop_a_long_reply(page, live_server, start_worker):
    start_worker({"ECHO_DELAY": "0.1"})
    page.goto(live_server + "/playground")
    page.fill("#content", " ".join(f"w{i}" for i in range(80)))
    page.click("button:has-text('Send')")
    page.wait_for_selector(".message-assistant .live:not(:empty)", timeout=20_000)
    page.click(".message-assistant button:has-text('Stop')")
    page.wait_for_selector('.message-assistant[data-status="stopped"]', timeout=20_000)
    text = page.inner_text(".message-assistant .body")
    assert text.startswith("You said:") and "w79" not in text
    assert page.is_visible(".message-assistant button:has-text('Retry')")
    screenshot(page, "06-stopped")


def test_phone_layout_and_errors_keep_the_text(chromium, live_server):
    context = chromium.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    page.goto(live_server + "/playground")
    page.fill("#content", "   ")
    page.click("button:has-text('Send')")
    page.wait_for_selector("#composer-error:has-text('Type a message before sending.')")
    screenshot(page, "07-phone-error")
    context.close()


def test_page_works_with_javascript_off(chromium, live_server, start_worker):
    context = chromium.new_context(java_script_enabled=False)
    page = context.new_page()
    start_worker()
    page.goto(live_server + "/playground")
    page.fill("#content", "no script here")
    page.click("button:has-text('Send')")
    # the page refreshes itself (noscript meta refresh) until the reply is there
    page.wait_for_selector("text=You said: no script here", timeout=20_000)
    screenshot(page, "08-no-js")
    context.close()


def test_chat_with_an_openai_compatible_server(fake_openai, page, live_server, start_worker):
    """OPENAI_BASE_URL pointed at a (fake) OpenAI-compatible server: streamed reply, usage, cost, history."""
    fake_openai.script.reply = "Prompts are instructions. They shape what a model writes next."
    fake_openai.script.chunk_delay = 0.05
    start_worker()  # inherits OPENAI_API_KEY / OPENAI_BASE_URL from the fixture's environment
    page.goto(live_server + "/playground")
    page.select_option("#provider", "openai")
    assert page.input_value("#model") == "gpt-4o-mini"  # the script offers that provider's first model
    page.fill("#system_prompt", "You are a patient teacher.")
    page.click("text=Save settings")
    page.wait_for_selector("text=Settings saved")
    page.fill("#content", "What is a prompt?")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector(".message-assistant .live:not(:empty)", timeout=20_000)
    page.wait_for_selector('.message-assistant[data-status="done"]', timeout=20_000)
    reply = page.inner_text(".message-assistant")
    assert "Prompts are instructions. They shape what a model writes next." in reply
    # a server at OPENAI_BASE_URL that is not a known service (this fake one) has no known price
    assert "openai · gpt-4o-mini" in reply and "21 in / 9 out" in reply and "$" not in reply
    screenshot(page, "09-openai-compatible")
    sent = fake_openai.requests[-1].body
    assert sent["messages"][0] == {"role": "system", "content": "You are a patient teacher."}
    assert sent["messages"][-1] == {"role": "user", "content": "What is a prompt?"}
    assert OPENAI_KEY not in page.content()


def test_provider_errors_show_a_clear_failed_message_with_retry(fake_openai, page, live_server, start_worker):
    fake_openai.script.status = 401
    start_worker()
    page.goto(live_server + "/playground")
    page.select_option("#provider", "openai")
    page.click("text=Save settings")
    page.fill("#content", "hello?")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector('.message-assistant[data-status="failed"]', timeout=20_000)
    assert "OpenAI answered 401: check OPENAI_API_KEY" in page.inner_text(".message-assistant")
    assert page.inner_text(".message-user").strip().endswith("hello?")
    screenshot(page, "10-provider-401")
    fake_openai.script.status = 200
    page.click(".message-assistant button:has-text('Retry')")
    page.wait_for_selector('.message-assistant[data-status="done"]', timeout=20_000)
