"""Alternatives you can see: ‹ 2/3 › switches a reply's attempts (the chosen one is what later turns send and
what an export names), Retry keeps a hand-written reply, Edit works on every role, Delete asks first."""

import json
import re

import msgspec
import pytest

from prompt_tracker import create_app
from prompt_tracker.domain.messages import Alternative, Message, NoSuchAttempt, with_attempt

from .conftest import CSRF_RE, Playground, press_send, screenshot
from .test_conversation_edits import add, edit
from .test_export_import import flashes, upload

JSON = {"Accept": "application/json"}


def choose(playground, message_id, attempt, base="/playground", **kwargs):
    data = {"csrf_token": playground.token(), "attempt": str(attempt)}
    return playground.client.post(f"{base}/messages/{message_id}/choose", data=data, **kwargs)


def delete(playground, message_id, confirm=False, **kwargs):
    data = {"csrf_token": playground.token(), **({"confirm": "yes"} if confirm else {})}
    return playground.client.post(f"/playground/messages/{message_id}/delete", data=data, **kwargs)


def item_of(page: str, message_id: str) -> str:
    """The HTML of one message on the page."""
    return re.search(rf'<li class="message[^"]*" id="m-{message_id}".*?</li>', page, re.S).group(0)


def three_attempts(app, playground, fake_openai):
    """A question whose reply was retried twice: "answer one", "answer two", "answer three" (shown)."""
    playground.save_settings(provider="openai", model="gpt-4o-mini")
    fake_openai.script.reply = "answer one"
    playground.send("Name a colour")
    reply = playground.messages(app)[1]
    for text in ("answer two", "answer three"):
        fake_openai.script.reply = text
        assert playground.retry(reply.id).status_code == 303
    return playground.messages(app)[1]


def test_a_chosen_attempt_is_shown_sent_with_the_next_turn_and_exported_as_chosen(app, playground, fake_openai):
    reply = three_attempts(app, playground, fake_openai)
    assert (reply.attempt, reply.content, [a.attempt for a in reply.alternatives]) == (3, "answer three", [1, 2])
    shown = item_of(playground.page().get_data(as_text=True), reply.id)
    assert f'action="/playground/messages/{reply.id}/choose"' in shown
    assert 'name="attempt" value="2" class="button button-small choose-previous"' in shown
    assert '"attempt 3 of 3">3/3</span>' in shown and "choose-next" in shown and "disabled>›</button>" in shown

    # Without JavaScript: a form post, 303 back to the message.
    response = choose(playground, reply.id, 1)
    assert response.status_code == 303 and response.location.endswith(f"/playground#m-{reply.id}")
    stored = playground.messages(app)[1]
    assert (stored.attempt, stored.content, [a.attempt for a in stored.alternatives]) == (1, "answer one", [2, 3])
    shown = item_of(playground.page().get_data(as_text=True), reply.id)  # the stored fragment, rendered again
    assert "answer one" in shown and "answer three" not in shown and '"attempt 1 of 3">1/3</span>' in shown
    assert "disabled>‹</button>" in shown

    # With JavaScript: the message's new HTML, to swap in place.
    answer = choose(playground, reply.id, 2, headers=JSON)
    assert answer.status_code == 200 and answer.get_json()["attempt"] == 2
    assert "answer two" in answer.get_json()["html"] and ">2/3</span>" in answer.get_json()["html"]

    # The next turn is sent with the chosen attempt as history.
    fake_openai.script.reply = "a later answer"
    playground.send("And another?")
    assert fake_openai.requests[-1].body["messages"][1:] == [
        {"role": "assistant", "content": "answer two"},
        {"role": "user", "content": "And another?"},
    ]
    # A Retry now is attempt 4 (past every kept one); the chosen attempt 2 is kept with the others.
    fake_openai.script.reply = "answer four"
    playground.retry(reply.id)
    retried = playground.messages(app)[1]
    assert (retried.attempt, [a.attempt for a in retried.alternatives]) == (4, [1, 2, 3])
    choose(playground, reply.id, 2)

    # Export names the chosen attempt; an import shows it again (and one a file names instead).
    exported = json.loads(playground.client.get("/playground/export.json").data)
    record = exported["messages"][1]
    assert (record["chosen_attempt"], record["attempt"], record["content"]) == (2, 2, "answer two")
    assert [a["attempt"] for a in record["alternatives"]] == [1, 3, 4]
    markdown = playground.client.get("/playground/export.md").get_data(as_text=True)
    assert (
        "## Assistant · openai / gpt-4o-mini\n\nanswer two\n" in markdown and " · attempt 2 of 4, chosen*" in markdown
    )
    assert "### Earlier attempt 1\n\nanswer one" in markdown and "### Later attempt 4\n\nanswer four" in markdown
    other = Playground(app.test_client())
    assert upload(other, json.dumps(exported).encode()).status_code == 303
    imported = other.messages(app)[1]
    assert (imported.attempt, imported.content, [a.attempt for a in imported.alternatives]) == (
        2,
        "answer two",
        [1, 3, 4],
    )
    record["chosen_attempt"] = 4  # a file that names another attempt as chosen: it is the one shown
    upload(other, json.dumps(exported).encode())
    assert other.messages(app)[1].content == "answer four"
    record["chosen_attempt"] = 9
    upload(other, json.dumps(exported).encode())
    assert "Message 2 names attempt 9 as chosen, and has no such attempt." in flashes(other)
    record["chosen_attempt"], record["alternatives"][0]["request"] = 2, {"provider": "echo", "url": "file:///x"}
    upload(other, json.dumps(exported).encode())  # another attempt's recorded request is checked as the record's
    assert "Message 2 has a recorded request Prompt Tracker does not write" in flashes(other)
    assert other.messages(app)[1].content == "answer four"  # nothing imported

    # Refused with a sentence, nothing changed: no such attempt, no attempts, no such message, no attempt named.
    assert choose(playground, reply.id, 9, headers=JSON).get_json()["error"].startswith("This reply has no attempt 9")
    user_id = playground.messages(app)[0].id
    assert choose(playground, user_id, 1, headers=JSON).status_code == 409
    assert choose(playground, "0123456789abcdef", 1, headers=JSON).status_code == 404
    missing = playground.client.post(f"/playground/messages/{reply.id}/choose", data={"csrf_token": playground.token()})
    assert missing.status_code == 303 and "Choose an attempt of this reply." in flashes(playground)
    assert playground.messages(app)[1].attempt == 2


def test_a_prompts_playground_switches_attempts_too():
    from prompt_tracker.extensions import db

    app = create_app("test")
    with app.app_context():
        db.create_all()
    client = app.test_client()
    token = CSRF_RE.search(client.get("/prompts").get_data(as_text=True)).group(1)
    client.post("/prompts", data={"name": "Greeter", "system_prompt": "Greet.", "csrf_token": token})
    base = "/prompts/greeter/playground"
    client.post(f"{base}/messages", data={"content": "hello", "csrf_token": token})
    reply_id = re.findall(r'class="message message-assistant[^"]*" id="m-([0-9a-f]+)"', client.get(base).text)[0]
    client.post(f"{base}/messages/{reply_id}/retry", data={"csrf_token": token})
    page = client.get(base).text
    assert f'action="{base}/messages/{reply_id}/choose"' in page and ">2/2</span>" in page
    response = client.post(f"{base}/messages/{reply_id}/choose", data={"csrf_token": token, "attempt": "1"})
    assert response.status_code == 303 and response.location.endswith(f"{base}#m-{reply_id}")
    assert ">1/2</span>" in client.get(base).text


def test_compares_second_model_switches_its_attempts_on_the_compare_page(app, playground, fake_openai):
    from prompt_tracker.domain.settings import STANDALONE
    from prompt_tracker.extensions import services

    from .test_compare import compare_with

    fake_openai.script.reply = "second model, first try"
    compare_with(playground, provider="openai", model="gpt-4o-mini")
    playground.send("Which is better?")
    with app.app_context():
        second = services.store.all(playground.store(), STANDALONE + "~compare")[1]
    token = playground.token()
    fake_openai.script.reply = "second model, second try"
    playground.client.post(f"/playground/compare/messages/{second.id}/retry", data={"csrf_token": token})
    page = playground.client.get("/playground/compare").text
    assert f'action="/playground/compare/messages/{second.id}/choose"' in page and ">2/2</span>" in page
    response = choose(playground, second.id, 1, base="/playground/compare")
    assert response.status_code == 303 and response.location.endswith("/playground/compare")
    page = playground.client.get("/playground/compare").text
    assert "second model, first try" in page and ">1/2</span>" in page


def test_with_attempt_swaps_the_attempt_with_its_request_and_provenance():
    message = Message(
        id="a", role="assistant", content="two", attempt=2, request={"n": 2}, version=3, created_at=1.0,
        alternatives=[Alternative(attempt=1, content="one", request={"n": 1}, draft=True)],
    )  # fmt: skip
    first = with_attempt(message, 1)
    assert (first.content, first.request, first.version, first.draft) == ("one", {"n": 1}, None, True)
    assert [(a.attempt, a.content, a.request, a.version) for a in first.alternatives] == [(2, "two", {"n": 2}, 3)]
    assert with_attempt(first, 2) == message and with_attempt(message, 2) is message
    assert first.next_attempt() == 3
    with pytest.raises(NoSuchAttempt):
        with_attempt(message, 5)


def test_retry_of_a_hand_written_reply_keeps_it_as_an_attempt(app, playground, fake_openai):
    playground.save_settings(provider="openai", model="gpt-4o-mini")
    add(playground, "user", "I loved it")
    add(playground, "assistant", "**positive**")
    _, example = playground.messages(app)
    fake_openai.script.reply = "Positive."
    assert playground.retry(example.id).status_code == 303
    retried = playground.messages(app)[1]
    assert (retried.content, retried.provider, retried.attempt) == ("Positive.", "openai", 2)
    assert [(a.attempt, a.content, a.provider) for a in retried.alternatives] == [(1, "**positive**", None)]
    shown = item_of(playground.page().get_data(as_text=True), example.id)
    assert ">2/2</span>" in shown and "gpt-4o-mini" in shown
    choose(playground, example.id, 1)
    shown = item_of(playground.page().get_data(as_text=True), example.id)
    assert "<strong>positive</strong>" in shown and "added by hand" in shown and ">1/2</span>" in shown
    playground.send("It was awful")
    assert fake_openai.requests[-1].body["messages"][1] == {"role": "assistant", "content": "**positive**"}


def test_edit_changes_system_and_assistant_messages_in_place(app, playground, fake_openai):
    app.config["RATE_LIMIT_SENDS"] = "1/minute"  # an edit in place calls no model: it does not count
    playground.save_settings(provider="openai", model="gpt-4o-mini")
    add(playground, "system", "Answer in one word.")
    add(playground, "user", "I loved it")
    add(playground, "assistant", "positive")
    fake_openai.script.reply = "Negative, I think."
    playground.send("It was awful")
    system, user, example, question, reply = playground.messages(app)
    calls = len(fake_openai.requests)

    form = playground.client.get(f"/playground/messages/{system.id}/edit").get_data(as_text=True)
    assert "Edit this system message; nothing is sent" in form and ">Save</button>" in form
    assert ">\nAnswer in one word.</textarea>" in form and "confirm_remove" not in form
    assert edit(playground, system.id, "Answer in two words.", confirm=False).status_code == 303
    response = edit(playground, example.id, "very positive", confirm=False)
    assert response.status_code == 303 and response.location.endswith(f"#m-{example.id}")
    answer = edit(playground, reply.id, "negative", confirm=False, headers=JSON)
    assert answer.status_code == 200 and answer.get_json()["in_place"] is True
    assert "<p>negative</p>" in answer.get_json()["html"] and ">2/2</span>" in answer.get_json()["html"]

    messages = playground.messages(app)
    assert [m.id for m in messages] == [system.id, user.id, example.id, question.id, reply.id]  # nothing went
    assert [m.content for m in messages] == [
        "Answer in two words.",
        "I loved it",
        "very positive",
        "It was awful",
        "negative",
    ]
    assert messages[2].alternatives == []  # text written by hand is replaced
    edited = messages[4]  # a model's reply is kept as an attempt; the edit is the next, written by hand
    assert (edited.attempt, edited.provider, edited.usage, edited.request) == (2, None, None, None)
    assert [(a.attempt, a.content, a.provider) for a in edited.alternatives] == [(1, "Negative, I think.", "openai")]
    assert "added by hand" in item_of(playground.page().get_data(as_text=True), reply.id)
    assert len(fake_openai.requests) == calls

    refused = edit(playground, example.id, "   ", confirm=False)
    assert refused.status_code == 400 and f'id="edit-{example.id}"' in refused.get_data(as_text=True)
    app.config["RATE_LIMIT_SENDS"] = "100/minute"
    fake_openai.script.reply = "ok"
    playground.send("Next")
    assert fake_openai.requests[-1].body["messages"] == [
        {"role": "system", "content": "Answer in two words."},
        {"role": "user", "content": "I loved it"},
        {"role": "assistant", "content": "very positive"},
        {"role": "user", "content": "It was awful"},
        {"role": "assistant", "content": "negative"},
        {"role": "user", "content": "Next"},
    ]


def test_delete_asks_first_and_says_what_goes(app, playground):
    playground.send("first")
    add(playground, "system", "Be terse.")
    user, reply, system = playground.messages(app)
    page = playground.page().get_data(as_text=True)
    shown = item_of(page, user.id)
    assert 'data-goes="this message and the reply after it"' in shown
    assert '<input type="checkbox" name="confirm" value="yes" required> confirm</label>' in shown
    assert 'title="Deletes this message"' in item_of(page, system.id)

    # Not confirmed: nothing is deleted, and the answer says what would go.
    refused = delete(playground, user.id)
    assert refused.status_code == 303
    assert "Deleting removes this message and the reply after it: tick “confirm” beside Delete" in flashes(playground)
    answer = delete(playground, system.id, headers=JSON)
    assert answer.status_code == 409 and answer.get_json()["error"].startswith("Deleting removes this message:")
    assert [m.id for m in playground.messages(app)] == [user.id, reply.id, system.id]

    answer = delete(playground, user.id, confirm=True, headers=JSON)
    assert answer.status_code == 200 and answer.get_json() == {"deleted": [user.id, reply.id], "total": 1}
    assert delete(playground, system.id, confirm=True).status_code == 303
    assert playground.messages(app) == []
    assert delete(playground, system.id, confirm=True, headers=JSON).status_code == 404


def test_a_retry_keeps_per_attempt_fields_apart(app, playground):
    """What one attempt recorded (its request, version or draft) goes with it when another is chosen."""
    playground.send("hello")
    _, reply = playground.messages(app)
    playground.save_settings(system_prompt="Be kind.")
    playground.retry(reply.id)
    retried = playground.messages(app)[1]
    assert retried.request["chat"]["system_prompt"] == "Be kind."
    assert retried.alternatives[0].request["chat"]["system_prompt"] == ""
    choose(playground, reply.id, 1)
    first = playground.messages(app)[1]
    assert first.request == retried.alternatives[0].request
    assert msgspec.structs.replace(first.alternatives[0], fragment=None).request == retried.request


@pytest.mark.browser
@pytest.mark.integration
def test_switch_attempts_with_and_without_javascript_and_delete_in_two_clicks(
    fake_openai, page, chromium, live_server, start_worker
):
    """‹ 2/3 › in a real Chromium: in place with JS (and in a second tab), by form without JS; Delete asks once."""
    from .test_browser import second_tab, wait_until_live

    start_worker()
    page.goto(live_server + "/playground")
    page.select_option("#provider", "openai")
    page.click("text=Save settings")
    page.wait_for_selector("text=Settings saved")
    for number, text in enumerate(["answer one", "answer two", "answer three"]):
        fake_openai.script.reply = text
        if number == 0:
            page.fill("#content", "Name a colour")
            press_send(page)
        else:
            page.click(".message-assistant button:has-text('Retry')")
        page.wait_for_selector(f'.message-assistant[data-status="done"] >> text={text}', timeout=20_000)
    reply = page.locator(".message-assistant")
    assert reply.locator(".attempt-position").inner_text() == "3/3"
    other = second_tab(page)
    other.goto(live_server + "/playground")
    wait_until_live(other)

    # With JS: ‹ swaps the message in place (no reload), focus stays on the arrow; the other tab follows.
    page.evaluate("window.notReloaded = true")
    reply.locator("button.choose-previous").click()
    page.wait_for_selector(".message-assistant .attempt-position:text-is('2/3')")
    assert "answer two" in reply.locator(".body").inner_text()
    assert page.evaluate("window.notReloaded") is True
    page.wait_for_function("() => document.activeElement.matches('.choose-previous')", timeout=5_000)
    page.keyboard.press("Enter")  # ‹ again, from the keyboard
    page.wait_for_selector(".message-assistant .attempt-position:text-is('1/3')")
    assert reply.locator("button.choose-previous").is_disabled()
    page.wait_for_function(
        "() => document.activeElement.matches('.choose-next')", timeout=5_000
    )  # ‹ is disabled at the first
    other.wait_for_selector(".message-assistant .attempt-position:text-is('1/3')")
    assert "answer one" in other.inner_text(".message-assistant .body")
    screenshot(page, "60-attempts")

    # Without JS: the arrows are a form; the page comes back at the message with the attempt chosen.
    plain = chromium.new_context(java_script_enabled=False, storage_state=page.context.storage_state())
    no_js = plain.new_page()
    no_js.goto(live_server + "/playground")
    no_js.click(".message-assistant button.choose-next")
    no_js.wait_for_selector(".message-assistant .attempt-position:text-is('2/3')")
    assert no_js.url.endswith("#m-" + reply.get_attribute("data-id"))
    assert "answer two" in no_js.inner_text(".message-assistant .body")
    screenshot(no_js, "61-no-js-attempts")
    # A delete without the box ticked is not sent (the box is required); ticked, it goes.
    assert no_js.is_visible(".message-user .delete-confirm")
    no_js.click(".message-user button:has-text('Delete')")
    assert no_js.locator(".message").count() == 2
    no_js.check(".message-user .delete-confirm input")
    no_js.click(".message-user button:has-text('Delete')")
    no_js.wait_for_selector("text=No messages yet")
    plain.close()

    # With JS again: a new conversation; the first click on Delete says what goes, the second deletes.
    page.reload()
    fake_openai.script.reply = "kept"
    for text in ("first question", "second question"):
        page.fill("#content", text)
        press_send(page)
        page.wait_for_selector(f".message-user >> text={text}")
    page.wait_for_function(
        "() => document.querySelectorAll('.message-assistant[data-status=\"done\"]').length === 2", timeout=20_000
    )
    assert not page.is_visible(".delete-confirm")  # with JS, a second click confirms instead of the box
    delete_first = page.locator(".message-user").first.locator(".delete-form button")
    delete_first.click()
    assert delete_first.inner_text() == "Delete this and the reply after it?"
    assert page.locator(".message").count() == 4
    screenshot(page, "62-delete-confirm")
    page.click("#composer textarea")  # a click elsewhere takes the question back
    assert page.locator(".message-user").first.locator(".delete-form button").inner_text() == "Delete"
    delete_first.click()
    delete_first.click()
    page.wait_for_function("() => document.querySelectorAll('.message').length === 2")
    assert page.inner_text(".message-user .body") == "second question"
    assert page.inner_text("#message-count") == "2 messages"
    other.wait_for_function("() => document.querySelectorAll('.message').length === 2")
    assert other.errors == []  # (and the page's: the fixture checks them)
