"""The playground in a real Chromium: send, watch the reply stream, reload, Stop, Reset."""

from urllib.parse import urlsplit

import pytest

from prompt_tracker.domain.keys import conversation_key, store_id
from prompt_tracker.domain.settings import STANDALONE

from .conftest import press_send, screenshot, wait_for
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
    press_send(page)
    # the user message appears at once, without a reload
    page.wait_for_selector(".message-user >> text=Hello from Chromium")
    # emptied once the server answers the send (the message may show first, by its live event)
    page.wait_for_function("() => document.querySelector('#content').value === ''")
    # the reply streams in: partial text before it is done
    page.wait_for_selector(".message-assistant .live:not(:empty)")
    screenshot(page, "02-streaming")
    page.wait_for_selector('.message-assistant[data-status="done"]', timeout=20_000)
    assert "You said: Hello from Chromium" in page.inner_text(".message-assistant .body")
    screenshot(page, "03-done")

    page.reload()
    assert "You said: Hello from Chromium" in page.inner_text(".message-assistant .body")
    assert "2 messages" in page.inner_text(".topbar")

    key = conversation_key(PREFIX, store_id(sid_of(page)), STANDALONE)
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


def wait_for_reply_without_script(page, text: str, timeout: float = 20.0) -> None:
    """Without JS a reply is written in its own frame, which refreshes itself (the page never does): wait
    until it is done there, or in the page when it was done before the page was shown."""
    done = f'.message-assistant[data-status="done"]:has-text("{text}")'
    in_frame = page.frame_locator("iframe.reply-frame").last.locator(done)
    wait_for(lambda: page.locator(done).count() or in_frame.count(), timeout=timeout)


def test_page_works_with_javascript_off(chromium, live_server, start_worker):
    context = chromium.new_context(java_script_enabled=False)
    page = context.new_page()
    start_worker({"ECHO_DELAY": "0.1"})  # a tenth of a second a word: replies seen being written
    page.goto(live_server + "/playground")
    page.fill("#content", "no script here")
    page.click("button:has-text('Send')")
    # the reply's frame refreshes itself until the reply is there
    wait_for_reply_without_script(page, "You said: no script here")
    screenshot(page, "08-no-js")

    # Compare: both replies are written in their frames; the page never reloads, so the typing stays.
    page.goto(live_server + "/playground/compare")
    page.fill("#choice-model", "echo-2")
    page.click("text=Compare with this model")
    page.fill("#content", " ".join(f"w{i}" for i in range(30)))
    page.click("#composer button[type=submit]")
    page.wait_for_url("**/playground/compare*")  # back to Compare, not the playground
    address = page.url
    page.fill("#content", "typed while both replies are written")
    done = '.message[data-status="done"]:has-text("w29")'
    for column in (".compare-left", ".compare-right"):
        page.frame_locator(f"{column} iframe.reply-frame").locator(done).wait_for(timeout=30_000)
    assert page.url == address and page.input_value("#content") == "typed while both replies are written"
    screenshot(page, "08-no-js-compare")
    page.click("text=Turn Compare off")

    # Replay: the rows of a running replay are one frame that refreshes itself; the page does not reload.
    page.goto(live_server + "/playground/replay")
    page.fill("#choice-model", "echo-3")
    page.click("#replay-form button[type=submit]")
    page.wait_for_load_state()
    address = page.url
    page.fill("#choice-model", "typed while it replays")
    rows = page.frame_locator("iframe.rows-frame")
    rows.locator("text=Replay finished: 2 turns.").wait_for(timeout=30_000)
    assert rows.locator('.replay-new .message[data-status="done"]').count() == 2
    assert page.url == address and page.input_value("#choice-model") == "typed while it replays"
    screenshot(page, "08-no-js-replay")
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
    press_send(page)
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
    # The save reloads the page: typed into the page before it (its settings not saved), the send would wait.
    page.wait_for_selector("text=Settings saved")
    page.fill("#content", "hello?")
    press_send(page)
    page.wait_for_selector('.message-assistant[data-status="failed"]', timeout=20_000)
    assert "OpenAI answered 401: check OPENAI_API_KEY" in page.inner_text(".message-assistant")
    assert page.inner_text(".message-user").strip().endswith("hello?")
    screenshot(page, "10-provider-401")
    fake_openai.script.status = 200
    page.click(".message-assistant button:has-text('Retry')")
    page.wait_for_selector('.message-assistant[data-status="done"]', timeout=20_000)


# --- several tabs of one session, the live layer ---------------------------------------------------


def second_tab(page):
    """Another tab of the same browser (same cookie, its own socket); console errors fail the test."""
    tab = page.context.new_page()
    tab.errors = []
    tab.on("pageerror", lambda error: tab.errors.append(str(error)))
    tab.on("console", lambda message: message.type == "error" and tab.errors.append(message.text))
    return tab


def wait_until_live(tab):
    """Wait until the tab's socket joined its room (the page's catch-up ran once, after the connect)."""
    tab.wait_for_function(
        "() => performance.getEntriesByType('resource').some((r) => r.name.includes('/messages/open'))"
    )


def test_a_second_tab_shows_the_first_tabs_message_and_reset(page, live_server, start_worker):
    start_worker({"ECHO_DELAY": "0.05"})
    page.goto(live_server + "/playground")
    tab_b = second_tab(page)
    tab_b.goto(live_server + "/playground")
    wait_until_live(tab_b)
    page.fill("#content", "sent from tab A")
    press_send(page)
    tab_b.wait_for_selector(".message-user >> text=sent from tab A", timeout=10_000)
    tab_b.wait_for_selector('.message-assistant[data-status="done"] >> text=You said: sent from tab A', timeout=20_000)
    assert "2 messages" in tab_b.inner_text("#message-count")
    screenshot(tab_b, "11-tab-b-sees-tab-a")

    page.click("summary:has-text('Reset')")
    page.click("text=Delete conversation")
    page.wait_for_selector("text=Conversation cleared")
    tab_b.wait_for_selector("text=No messages yet", timeout=10_000)
    assert tab_b.query_selector_all(".message") == []
    assert "0 messages" in tab_b.inner_text("#message-count")
    screenshot(tab_b, "12-tab-b-after-tab-a-reset")
    assert tab_b.errors == []


def test_a_settings_form_older_than_another_tabs_save_says_so(page, live_server):
    page.goto(live_server + "/playground")
    tab_b = second_tab(page)
    tab_b.goto(live_server + "/playground")
    wait_until_live(tab_b)
    assert tab_b.is_hidden("#settings-stale")
    page.fill("#system_prompt", "Saved in tab A.")
    page.click("text=Save settings")
    page.wait_for_selector("text=Settings saved")
    tab_b.wait_for_selector("#settings-stale", state="visible", timeout=10_000)
    assert "Another tab saved different settings" in tab_b.inner_text("#settings-stale")
    assert page.is_hidden("#settings-stale")  # the saving tab itself is up to date
    screenshot(tab_b, "13-tab-b-settings-stale")
    tab_b.click("#settings-stale a")
    tab_b.wait_for_selector("#settings-stale", state="hidden")
    assert tab_b.input_value("#system_prompt") == "Saved in tab A."
    assert tab_b.errors == []


def test_ctrl_enter_twice_sends_once(page, live_server):
    page.goto(live_server + "/playground")
    held = []

    def hold(route):
        if route.request.url.endswith("?probe"):
            route.fulfill(status=204)
        elif route.request.method == "POST":
            held.append(route)  # the first send waits here
        else:
            route.continue_()

    def sends(url):
        return urlsplit(url).path == "/playground/messages"

    page.route(sends, hold)
    page.fill("#content", "only once")
    press_send(page)
    press_send(page)
    page.click("button:has-text('Send')", force=True)  # a click on the (disabled) button changes nothing either
    # The page sends at once (fetch in the key's handler): a request of the page made after the keys and the
    # click reaches the route after any send they made.
    assert page.evaluate("fetch('/playground/messages?probe', {method: 'POST'}).then((r) => r.status)") == 204
    assert len(held) == 1
    held[0].continue_()
    page.wait_for_selector(".message-user >> text=only once")
    # The send has ended in the page (the box emptied, the button back): what it shows is all it will.
    page.wait_for_function(
        "() => document.querySelector('#content').value === ''"
        " && !document.querySelector('#composer button[type=submit]').disabled"
    )
    assert len(held) == 1
    page.unroute(sends, hold)
    assert len(page.query_selector_all(".message-user")) == 1
    # the next message from the same page (no reload in between) is a new submission
    page.fill("#content", "and a second one")
    press_send(page)
    page.wait_for_selector(".message-user >> text=and a second one")
    page.reload()
    assert [text.strip() for text in page.locator(".message-user .body").all_inner_texts()] == [
        "only once",
        "and a second one",
    ]


def test_phone_layout_every_control_reachable(chromium, live_server, start_worker):
    context = chromium.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    start_worker()
    page.goto(live_server + "/playground")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing sticks out sideways
    screenshot(page, "14-phone-empty")
    # settings fold away, and open with a tap
    assert page.is_hidden("#system_prompt")
    page.tap(".settings-fold > summary")
    for field in ("#provider", "#model", "#temperature", "#max_tokens", "#system_prompt"):
        page.locator(field).scroll_into_view_if_needed()
        assert page.is_visible(field) and page.is_enabled(field)
    page.fill("#system_prompt", "Short answers.")
    page.tap("text=Save settings")
    page.wait_for_selector("text=Settings saved")
    # the composer and Send
    page.locator("#content").scroll_into_view_if_needed()
    page.fill("#content", "hello from a phone")
    page.tap("button:has-text('Send')")
    page.wait_for_selector('.message-assistant[data-status="done"]', timeout=20_000)
    page.locator(".message-assistant button:has-text('Retry')").scroll_into_view_if_needed()
    assert page.is_visible(".message-assistant button:has-text('Retry')")
    screenshot(page, "15-phone-conversation")
    # Reset and its confirmation, inside the screen
    page.tap("summary:has-text('Reset')")
    confirm = page.locator("text=Delete conversation")
    confirm.scroll_into_view_if_needed()
    assert "Delete this conversation (2 messages)" in page.inner_text(".reset-confirm")
    screenshot(page, "16-phone-reset-confirm")
    box = confirm.bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390
    confirm.tap()
    page.wait_for_selector("text=No messages yet")
    context.close()


def test_after_a_lost_connection_the_page_catches_up(chromium, real_redis, start_worker, tmp_path):
    """The web process goes away mid-conversation; the reply finishes meanwhile; the reconnected page shows it."""
    from .conftest import service_env
    from .processes import web_process
    from .redis_server import free_port

    port = free_port()
    env = service_env(real_redis)
    context = chromium.new_context()  # the outage logs connection errors in the console: expected here
    page = context.new_page()
    with web_process(env, tmp_path / "web-1.log", port=port) as url:
        page.goto(url + "/playground")
        wait_until_live(page)
        page.fill("#content", "answered while the server was away")
        # The send's answer, not only the pending reply: the page hears of the messages (message.appended)
        # before the reply is queued, and a server stopped in between would take the job with it.
        with page.expect_response(lambda response: response.request.method == "POST" and "/messages" in response.url):
            press_send(page)
        page.wait_for_selector('.message-assistant[data-status="pending"]')
    # the web process is gone; a worker answers now, and its events reach nobody
    start_worker()
    from .test_concurrency import all_done

    wait_for(lambda: all_done(real_redis, sid_of(page), 2), timeout=20)
    assert page.query_selector('.message-assistant[data-status="done"]') is None
    with web_process(env, tmp_path / "web-2.log", port=port):
        page.wait_for_selector(
            '.message-assistant[data-status="done"] >> text=You said: answered while', timeout=30_000
        )
    screenshot(page, "17-caught-up-after-reconnect")
    context.close()


def test_reload_mid_stream_shows_the_text_so_far(page, chromium, live_server, start_worker):
    """A reload, a second tab and the no-JS refresh all show the reply's text streamed so far, and it goes on."""
    start_worker({"ECHO_DELAY": "0.1"})
    page.goto(live_server + "/playground")
    page.fill("#content", " ".join(f"w{i}" for i in range(60)))
    press_send(page)
    page.wait_for_function(
        "() => (document.querySelector('.message-assistant .live') || {}).textContent?.includes('w10')", timeout=20_000
    )
    page.reload()
    assert page.get_attribute(".message-assistant", "data-status") == "streaming"
    assert "You said: w0 w1" in page.inner_text(".message-assistant .live")  # rendered by the server, not the socket
    screenshot(page, "18-reload-mid-stream")

    no_script = chromium.new_context(java_script_enabled=False, storage_state=page.context.storage_state())
    refresh = no_script.new_page()
    refresh.goto(live_server + "/playground")
    frame = refresh.frame_locator("iframe.reply-frame").last  # without JS the reply is written in its frame
    assert "You said: w0 w1" in frame.locator(".message-assistant .live").inner_text()
    no_script.close()

    tab_b = second_tab(page)
    tab_b.goto(live_server + "/playground")
    assert "You said: w0 w1" in tab_b.inner_text(".message-assistant .live")

    for tab in (page, tab_b):  # the stream goes on in both, without gaps or repeats
        tab.wait_for_selector('.message-assistant[data-status="done"]', timeout=30_000)
        text = tab.inner_text(".message-assistant .body")
        assert text.count("w59") == 1 and text.count("w10 ") == 1
    assert tab_b.errors == []


def test_typed_text_survives_a_reload_and_a_settings_save_until_it_is_sent(page, live_server):
    page.goto(live_server + "/playground")
    page.fill("#content", "half a thought,\nstill typing")
    page.reload()
    assert page.input_value("#content") == "half a thought,\nstill typing"
    page.fill("#system_prompt", "Be brief.")
    page.click("button:has-text('Save settings')")
    page.wait_for_load_state()
    page.wait_for_function("() => document.querySelector('#system_prompt').value === 'Be brief.'")
    assert page.input_value("#content") == "half a thought,\nstill typing"
    page.focus("#content")
    press_send(page)
    page.wait_for_selector(".message-user >> text=still typing")
    page.wait_for_function("() => document.querySelector('#content').value === ''")
    page.reload()
    assert page.input_value("#content") == ""  # sent: not brought back
    # The Compare page's box keeps its own draft the same way.
    page.goto(live_server + "/playground/compare")
    page.fill("#content", "for both models")
    page.reload()
    assert page.input_value("#content") == "for both models"
    page.goto(live_server + "/playground")
    assert page.input_value("#content") == ""
