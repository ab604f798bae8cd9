"""What you see is what is sent: a Send carries the settings version and the variable values its page
shows; a reply being written shows, without JavaScript, in a frame that refreshes itself, never the page."""

import re
from html import unescape

import msgspec
import pytest

from prompt_tracker.domain.keys import alive_key
from prompt_tracker.domain.messages import assistant_placeholder, user_message
from prompt_tracker.domain.settings import STANDALONE
from prompt_tracker.extensions import services
from prompt_tracker.web.headers import CONTENT_SECURITY_POLICY

from .conftest import CSRF_RE, press_send

VERSION_RE = re.compile(r'name="settings_version" value="([0-9a-f]+)"')
HELD = "Settings changed in another tab"
JSON = {"Accept": "application/json"}


def shown(playground) -> tuple[str, str]:
    """The settings version a freshly loaded page carries (its settings form and its composer alike), and its token."""
    html = playground.page().get_data(as_text=True)
    versions = set(VERSION_RE.findall(html))
    # The form's, the composer's, and each finished reply's Retry.
    assert len(versions) == 1 and len(VERSION_RE.findall(html)) == 2 + html.count('class="inline retry-form"')
    return versions.pop(), CSRF_RE.search(html).group(1)


def send(playground, content, version, token, headers=None, **fields):
    data = {"content": content, "settings_version": version, "csrf_token": token, **fields}
    return playground.client.post("/playground/messages", data=data, headers=headers or {})


def test_a_send_from_a_page_older_than_another_tabs_save_is_held_until_confirmed(app, playground):
    tab_b, token = shown(playground)  # tab B loads the page
    playground.save_settings(system_prompt="Tab A's prompt")  # tab A saves different settings

    # Script: 409 with the sentence and the flag the page shows its two choices for; nothing stored.
    response = send(playground, "typed in tab B", tab_b, token, headers=JSON)
    assert response.status_code == 409
    assert response.get_json()["settings_changed"] is True and response.get_json()["error"].startswith(HELD)
    assert playground.messages(app) == []

    # No script: the page again, the typed text kept, the saved settings now shown, and "send with them".
    response = send(playground, "typed in tab B", tab_b, token)
    html = response.get_data(as_text=True)
    assert response.status_code == 409 and HELD in html
    assert ">\ntyped in tab B</textarea>" in html
    assert ">\nTab A&#39;s prompt</textarea>" in html
    assert 'name="confirm_settings" value="1"' in html
    assert playground.messages(app) == []

    # Send with them anyway: sent with the saved (tab A's) settings.
    response = send(playground, "typed in tab B", tab_b, token, headers=JSON, confirm_settings="1")
    assert response.status_code == 202
    sent, reply = playground.messages(app)
    assert sent.content == "typed in tab B"
    assert "Tab A's prompt" in str(reply.request)

    # A page that shows the saved settings sends at once; so does a client that names no version.
    current, token = shown(playground)
    assert send(playground, "from a fresh page", current, token).status_code == 303
    assert playground.send("no version named").status_code == 303
    # Saving the variable values elsewhere does not make a page's settings older.
    playground.save_settings(system_prompt="Hello {{ name }}")
    current, token = shown(playground)
    playground.client.post("/playground/variables", data={"variables.name": "Ada", "csrf_token": token})
    assert send(playground, "still current", current, token).status_code == 303


def test_retry_and_resend_from_a_page_older_than_another_tabs_save_are_held_until_confirmed(app, playground):
    playground.send("first")
    user, reply = playground.messages(app)
    tab_b, token = shown(playground)
    playground.save_settings(system_prompt="Tab A's prompt")

    def retry(version, headers=JSON, **fields):
        data = {"csrf_token": token, "settings_version": version, **fields}
        return playground.client.post(f"/playground/messages/{reply.id}/retry", data=data, headers=headers)

    # Retry (its form carries the page's version, and the page's script the composer's): held with the
    # sentence; nothing retried.
    page = playground.page().get_data(as_text=True)
    assert re.search(r'class="inline retry-form">\s*<input[^>]*>\s*<input type="hidden" name="settings_version"', page)
    response = retry(tab_b)
    assert response.status_code == 409 and response.get_json()["settings_changed"] is True
    assert response.get_json()["error"].startswith(HELD)
    assert playground.messages(app)[1].attempt == reply.attempt
    response = retry(tab_b, headers={})  # no script: back to the page (now showing them), the sentence flashed
    assert response.status_code == 303 and playground.messages(app)[1].attempt == reply.attempt
    assert HELD in playground.page().get_data(as_text=True)
    assert retry(tab_b, confirm_settings="1").status_code == 202  # "with them anyway"
    retried = playground.messages(app)[1]
    assert retried.attempt == reply.attempt + 1 and "Tab A's prompt" in str(retried.request)
    current, token = shown(playground)
    assert retry(current).status_code == 202 and retry("").status_code == 202  # current, or no version named

    # Resend of an edited message: its form carries the version of the settings the page shows.
    form = playground.client.get(f"/playground/messages/{user.id}/edit").get_data(as_text=True)
    assert f'name="settings_version" value="{current}"' in form
    playground.save_settings(system_prompt="Tab A's prompt, again")
    edit = {"content": "first, edited", "csrf_token": token, "settings_version": current}
    edit.update(confirm_remove="yes", removes="1")
    response = playground.client.post(f"/playground/messages/{user.id}/edit", data=edit, headers=JSON)
    assert response.status_code == 409 and response.get_json()["settings_changed"] is True
    assert playground.messages(app)[0].content == "first"
    # No script: the edit form again, the typed text kept, the saved settings' version in it now.
    response = playground.client.post(f"/playground/messages/{user.id}/edit", data=edit)
    html = response.get_data(as_text=True)
    assert response.status_code == 409 and HELD in html and "first, edited</textarea>" in html
    newer = re.search(r'class="edit-form".*?name="settings_version" value="([0-9a-f]+)"', html, re.S).group(1)
    assert newer != current
    edit["confirm_settings"] = "1"
    response = playground.client.post(f"/playground/messages/{user.id}/edit", data=edit, headers=JSON)
    assert response.status_code == 202 and playground.messages(app)[0].content == "first, edited"


def test_the_variables_shown_are_the_ones_sent_and_kept(app, playground):
    playground.save_settings(system_prompt="You are a {{ role }}. Talk about {{ topic }}.")
    html = playground.page().get_data(as_text=True)
    # The panel's fields belong to the composer: a Send without JS carries them too.
    for name in ("role", "topic"):
        assert f'name="variables.{name}" type="text" value="" autocomplete="off" form="composer"' in html
    assert re.search(
        r'<button type="submit" class="button" formaction="/playground/variables" formnovalidate form="composer">', html
    )
    version, token = shown(playground)

    # Empty fields: the sentence names them, the typed text is kept (JSON and page alike).
    response = send(playground, "hello", version, token, headers=JSON)
    assert (
        response.status_code == 422
        and response.get_json()["error"] == "Fill in the variables role, topic before sending."
    )
    response = send(playground, "hello", version, token, **{"variables.role": "pirate"})
    assert response.status_code == 422 and ">\nhello</textarea>" in response.get_data(as_text=True)
    assert "Fill in the variable topic before sending." in response.get_data(as_text=True)
    assert 'id="var-role" name="variables.role" type="text" value="pirate"' in response.get_data(as_text=True)

    # Both filled in: sent with them (never "Fill in the variables" while both fields hold values), and kept.
    values = {"variables.role": "pirate", "variables.topic": "tides & <moons>"}
    response = send(playground, "hello", version, token, headers=JSON, **values)
    assert response.status_code == 202
    reply = playground.messages(app)[-1]
    assert reply.variables == {"role": "pirate", "topic": "tides & <moons>"}
    assert "You are a pirate. Talk about tides & <moons>." in str(reply.request)
    html = playground.page().get_data(as_text=True)
    assert 'id="var-topic" name="variables.topic" type="text" value="tides &amp; &lt;moons&gt;"' in html

    # Changed in the panel and sent without script: the new values go, and stay.
    response = send(playground, "again", version, token, **{"variables.role": "poet", "variables.topic": "tides"})
    assert response.status_code == 303
    assert playground.messages(app)[-1].variables == {"role": "poet", "topic": "tides"}
    # "Save values" keeps them without sending.
    token = CSRF_RE.search(playground.page().get_data(as_text=True)).group(1)
    response = playground.client.post(
        "/playground/variables",
        data={"content": "not sent", "variables.role": "judge", "variables.topic": "law", "csrf_token": token},
    )
    assert response.status_code == 303 and len(playground.messages(app)) == 4
    assert 'value="judge"' in playground.page().get_data(as_text=True)
    # A variable named as one of the Send's own fields takes only its own field's value.
    playground.save_settings(system_prompt="Quote {{ content }}.")
    version, token = shown(playground)
    response = send(playground, "the message", version, token, headers=JSON, **{"variables.content": "Ada"})
    assert response.status_code == 202 and playground.messages(app)[-1].variables == {"content": "Ada"}
    response = send(playground, "the message", version, token, headers=JSON)
    assert playground.messages(app)[-1].variables == {"content": "Ada"}  # kept, not the message


@pytest.mark.parametrize("status", ["pending", "streaming"])
def test_without_script_an_open_reply_is_a_frame_that_refreshes_itself_not_the_page(app, playground, status):
    playground.page()
    with playground.client.session_transaction() as session:
        session.add_playground(STANDALONE)
    reply = assistant_placeholder("echo", "echo-1", {})
    with app.app_context():
        services.store.append(playground.store(), STANDALONE, user_message("hi"), reply)
        if status == "streaming":  # claimed by a live worker, which wrote some text
            services.store.update(
                playground.store(), STANDALONE, reply.id, lambda m: msgspec.structs.replace(m, status="streaming")
            )
            services.store.flush(playground.store(), STANDALONE, reply.id, reply.attempt, "You said: h")
            services.jobs_redis.set(alive_key(reply.id), 1)

    response = playground.page()
    html = response.get_data(as_text=True)
    frame = f"/playground/messages/{reply.id}/frame"
    assert f'<noscript><iframe class="reply-frame" src="{frame}#end"' in html
    assert 'http-equiv="refresh"' not in html  # the page never reloads itself
    assert "noscript.css" in html
    policy = response.headers["Content-Security-Policy"]
    assert "frame-src 'self'" in policy and "frame-ancestors 'none'" in policy

    response = playground.client.get(frame)
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "frame-ancestors 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "SAMEORIGIN"
    refresh = re.search(r'<meta http-equiv="refresh" content="1; url=([^"]+)">', body)
    assert refresh and unescape(refresh.group(1)).startswith(frame + "?t=") and refresh.group(1).endswith("#end")
    assert "<iframe" not in body and '<base target="_top">' in body  # no frame in the frame; its forms act on the page
    assert ("You said: h" in body) == (status == "streaming")
    assert f'action="/playground/messages/{reply.id}/stop"' in body

    with app.app_context():  # the reply ends: the frame shows it as final and stops refreshing
        services.store.update(
            playground.store(),
            STANDALONE,
            reply.id,
            lambda m: msgspec.structs.replace(m, status="done", content="Done."),
        )
    body = playground.client.get(frame).get_data(as_text=True)
    assert 'http-equiv="refresh"' not in body and 'data-status="done"' in body and "Done." in body
    assert playground.client.get("/playground/messages/nope/frame").status_code == 404


def reopen(app, playground, name: str, message_id: str) -> None:
    """Make a finished reply open again (the test config's jobs run inline: every reply ends at once)."""
    with app.app_context():
        services.store.update(
            playground.store(), name, message_id, lambda m: msgspec.structs.replace(m, status="pending", content="")
        )


def test_without_script_compare_and_replay_show_open_replies_in_frames_not_page_reloads(app, playground):
    token = playground.token()
    form = {"provider": "echo", "model": "echo-2", "csrf_token": token}
    assert playground.client.post("/playground/compare", data=form).status_code == 303
    # The Compare page's composer comes back to Compare (the playground's own goes to the playground).
    html = playground.client.get("/playground/compare").get_data(as_text=True)
    assert 'action="/playground/messages?back=compare"' in html
    sent = playground.client.post("/playground/messages?back=compare", data={"content": "to both", "csrf_token": token})
    assert sent.status_code == 303 and sent.headers["Location"].startswith("/playground/compare#m-")
    left, right = (services_all(app, playground, name)[-1] for name in (STANDALONE, STANDALONE + "~compare"))
    reopen(app, playground, STANDALONE, left.id)
    reopen(app, playground, STANDALONE + "~compare", right.id)

    # Compare: each open reply in its frame (the second model's under the companion's own URLs); no reload.
    html = playground.client.get("/playground/compare").get_data(as_text=True)
    assert 'http-equiv="refresh"' not in html and "noscript.css" in html
    assert f'<noscript><iframe class="reply-frame" src="/playground/messages/{left.id}/frame#end"' in html
    frame = f"/playground/compare/messages/{right.id}/frame"
    assert f'<noscript><iframe class="reply-frame" src="{frame}#end"' in html
    response = playground.client.get(frame)
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "frame-ancestors 'self'" in response.headers["Content-Security-Policy"]
    refresh = re.search(r'<meta http-equiv="refresh" content="1; url=([^"]+)">', body)
    assert refresh and unescape(refresh.group(1)).startswith(frame + "?t=")
    assert f'action="/playground/compare/messages/{right.id}/stop"' in body and "<iframe" not in body
    assert playground.client.get("/playground/compare/messages/nope/frame").status_code == 404

    # Replay: while it runs, its rows in one frame that refreshes itself (later turns appear in it); no reload.
    assert playground.client.post("/playground/compare/off", data={"csrf_token": token}).status_code == 303
    playground.send("second turn")
    assert playground.client.post("/playground/replay", data=form).status_code == 303
    replayed = services_all(app, playground, STANDALONE + "~replay")[-1]
    reopen(app, playground, STANDALONE + "~replay", replayed.id)
    html = playground.client.get("/playground/replay").get_data(as_text=True)
    assert 'http-equiv="refresh"' not in html and "noscript.css" in html
    assert '<noscript><iframe class="rows-frame" src="/playground/replay/rows/frame"' in html
    assert 'class="reply-frame"' not in html  # the rows frame shows the replies, not a frame each
    response = playground.client.get("/playground/replay/rows/frame")
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and response.headers["X-Frame-Options"] == "SAMEORIGIN"
    refresh = re.search(r'<meta http-equiv="refresh" content="1; url=([^"]+)">', body)
    assert refresh and unescape(refresh.group(1)).startswith("/playground/replay/rows/frame?t=")
    assert refresh.group(1).endswith("#turn-2") and 'id="turn-2"' in body and "<iframe" not in body
    assert f'action="/playground/replay/messages/{replayed.id}/stop"' in body and '<base target="_top">' in body

    with app.app_context():  # the replay's last reply ends: the frame stops refreshing
        services.store.update(
            playground.store(),
            STANDALONE + "~replay",
            replayed.id,
            lambda m: msgspec.structs.replace(m, status="done", content="Done."),
        )
    body = playground.client.get("/playground/replay/rows/frame").get_data(as_text=True)
    assert 'http-equiv="refresh"' not in body and "Replay finished" in body
    assert "rows-frame" not in playground.client.get("/playground/replay").get_data(as_text=True)


def services_all(app, playground, name):
    with app.app_context():
        return services.store.all(playground.store(), name)


def test_pages_other_than_the_reply_frame_may_not_be_framed(playground):
    response = playground.page()
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["X-Frame-Options"] == "DENY"


# --- in Chromium: two tabs of one browser, a reload, and JavaScript off --------------------------------


def console_errors(tab) -> list[str]:
    """Errors a tab logs (a page error or a console error) from now on."""
    errors = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.on("console", lambda message: message.type == "error" and errors.append(message.text))
    return errors


@pytest.mark.browser
@pytest.mark.integration
def test_in_chromium_what_is_sent_is_what_the_tab_shows_and_nothing_typed_is_lost(
    page, chromium, live_server, start_worker
):
    from .conftest import screenshot
    from .test_browser import wait_until_live

    start_worker({"ECHO_DELAY": "0.08"})
    page.goto(live_server + "/playground")
    tab_b = page.context.new_page()
    b_errors = console_errors(tab_b)
    tab_b.goto(live_server + "/playground")
    wait_until_live(tab_b)

    # Tab A saves a new system prompt; tab B, still showing the old one, sends: held, its text kept.
    page.fill("#system_prompt", "Saved in tab A.")
    page.click("text=Save settings")
    page.wait_for_selector("text=Settings saved")
    tab_b.fill("#content", "typed in tab B")
    press_send(tab_b)
    tab_b.wait_for_selector("#settings-changed:has-text('Settings changed in another tab')", state="visible")
    assert tab_b.input_value("#content") == "typed in tab B"
    assert tab_b.query_selector_all(".message") == []
    screenshot(tab_b, "wysiwys-01-send-held")
    # "Send with them anyway": sent (with tab A's settings), the choices gone.
    tab_b.click("#settings-changed button:has-text('Send with them anyway')")
    tab_b.wait_for_selector(".message-user >> text=typed in tab B")
    tab_b.wait_for_selector("#settings-changed", state="hidden")
    tab_b.wait_for_function("() => document.querySelector('#content').value === ''")
    tab_b.wait_for_selector('.message-assistant[data-status="done"]', timeout=20_000)
    # Held again (the tab still shows the old settings); "Load them" shows tab A's, the text still kept.
    tab_b.fill("#content", "second thought")
    press_send(tab_b)
    tab_b.wait_for_selector("#settings-changed", state="visible")
    tab_b.click("#load-settings")  # the page again
    tab_b.wait_for_selector("#settings-changed", state="hidden")
    tab_b.wait_for_load_state()
    assert tab_b.input_value("#system_prompt") == "Saved in tab A."
    assert tab_b.input_value("#content") == "second thought"
    # Only the expected 409s were logged.
    assert [error for error in b_errors if "409" not in error] == []

    # An unsaved system prompt survives a reload, said to be unsaved; a save clears it.
    tab_b.fill("#system_prompt", "Not saved yet.")
    tab_b.reload()
    assert tab_b.input_value("#system_prompt") == "Not saved yet."
    assert tab_b.is_visible("#settings-unsaved:has-text('Unsaved changes')")
    screenshot(tab_b, "wysiwys-02-settings-draft")
    # Another tab saves different settings: the draft is not brought back silently.
    page.fill("#system_prompt", "Saved again in tab A.")
    page.click("text=Save settings")
    page.wait_for_selector("text=Settings saved")
    tab_b.reload()
    assert tab_b.input_value("#system_prompt") == "Saved again in tab A."
    assert "were dropped" in tab_b.inner_text("#settings-draft-dropped")
    assert tab_b.is_hidden("#settings-unsaved")
    tab_b.fill("#system_prompt", "Mine, as {{ role }}.")
    tab_b.click("text=Save settings")
    tab_b.wait_for_selector("text=Settings saved")
    tab_b.reload()
    assert tab_b.input_value("#system_prompt") == "Mine, as {{ role }}."
    assert tab_b.is_hidden("#settings-unsaved") and tab_b.query_selector("#settings-draft-dropped") is None

    # The variable value shown (typed, not saved) is the one sent, and it stays.
    tab_b.fill("#var-role", "pirate")
    tab_b.fill("#content", "ahoy")
    press_send(tab_b)
    tab_b.wait_for_selector('.message-assistant[data-status="done"] >> text=You said: ahoy', timeout=20_000)
    assert "system prompt: 16 characters" in tab_b.inner_text(".message-assistant >> nth=-1")  # "Mine, as pirate."
    assert tab_b.is_hidden("#composer-error")
    tab_b.reload()
    assert tab_b.input_value("#var-role") == "pirate"

    # JavaScript off (the same session): the reply is written in its frame; the page keeps what is typed.
    no_script = chromium.new_context(java_script_enabled=False, storage_state=page.context.storage_state())
    plain = no_script.new_page()
    plain_errors = console_errors(plain)
    plain.goto(live_server + "/playground")
    plain.fill("#var-role", "poet")  # sent with the message (the field belongs to the composer)
    plain.fill("#content", " ".join(f"w{i}" for i in range(50)))
    plain.click("#composer .composer-bar button")
    plain.wait_for_load_state()
    frame = plain.frame_locator("iframe.reply-frame").last
    frame.locator('.message[data-status="streaming"] .live:has-text("You said: w0")').wait_for(timeout=20_000)
    address = plain.url
    plain.fill("#content", "typing while it streams")
    plain.fill("#system_prompt", "Edited while it streams.")
    assert plain.input_value("#var-role") == "poet"  # kept
    screenshot(plain, "wysiwys-03-no-js-frame")
    frame.locator('.message[data-status="done"]:has-text("w49")').wait_for(timeout=30_000)
    assert "system prompt: 14 characters" in frame.locator(".message").inner_text()  # "Mine, as poet."
    assert plain.url == address
    assert plain.input_value("#content") == "typing while it streams"
    assert plain.input_value("#system_prompt") == "Edited while it streams."
    screenshot(plain, "wysiwys-04-no-js-done")
    assert plain_errors == []
    no_script.close()


@pytest.mark.browser
@pytest.mark.integration
def test_text_typed_while_a_send_is_answered_is_the_next_message_not_wiped(page, live_server, start_worker):
    """The message shows by its live event before the send's answer comes (a loaded server): what is typed
    then stays in the box when that answer lands, and a Send pressed while the first is on its way goes after it."""
    start_worker()
    page.goto(live_server + "/playground")
    held = []

    def hold_the_answer(route):
        if held:  # the first send's answer only
            return route.continue_()
        held.append((route, route.fetch()))  # the server stores and queues the message; the page waits

    page.route(lambda url: url.endswith("/playground/messages"), hold_the_answer)
    page.fill("#content", "first question")
    press_send(page)
    page.wait_for_selector(".message-user >> text=first question")  # from the live event: the answer is held
    assert len(held) == 1
    page.fill("#content", "second question")
    press_send(page)  # while the first is on its way: it goes once that is answered
    route, response = held[0]
    route.fulfill(response=response)
    page.wait_for_selector(".message-user >> text=second question")
    page.wait_for_function(
        "() => document.querySelectorAll('.message-assistant[data-status=\"done\"]').length === 2", timeout=20_000
    )
    users = page.locator(".message-user")
    assert users.count() == 2 and "first question" in users.nth(0).inner_text()
    assert "second question" in users.nth(1).inner_text()
    page.wait_for_function("() => document.querySelector('#content').value === ''")


@pytest.mark.browser
@pytest.mark.integration
def test_settings_typed_before_the_page_script_ran_are_unsaved_changes(page, live_server):
    """A quick hand on a slow page: a system prompt typed before settings.js ran is an unsaved change (kept
    over a reload, said to be unsaved), not taken for the saved settings."""
    held = []
    page.route("**/static/settings.js", lambda route: held.append(route))  # the script waits for the typing
    page.goto(live_server + "/playground", wait_until="commit")  # deferred scripts hold DOMContentLoaded
    page.fill("#system_prompt", "typed before the script")
    held.pop().continue_()
    page.wait_for_selector("#settings-unsaved", state="visible")
    page.unroute("**/static/settings.js")
    page.reload()
    assert page.input_value("#system_prompt") == "typed before the script"
    assert page.is_visible("#settings-unsaved")
