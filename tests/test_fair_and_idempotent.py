"""One session cannot fill the queue (at most MAX_OPEN_REPLIES open replies), and one composer
submission sent twice (Ctrl+Enter twice) is one message."""

import re

import pytest

from prompt_tracker import create_app

from .conftest import Playground

TOO_MANY = "You already have 3 replies being written"


@pytest.fixture
def capped(real_redis, monkeypatch):
    """The development app on the private Redis with the default cap of 3 and no worker: replies stay open."""
    from .conftest import service_env

    for key, value in service_env(real_redis).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("MAX_OPEN_REPLIES")
    app = create_app("development", overrides={"DEBUG": False})
    assert app.config["MAX_OPEN_REPLIES"] == 3
    return app, Playground(app.test_client())


@pytest.mark.integration
def test_a_send_past_the_open_replies_cap_is_refused_with_a_sentence_and_the_text_kept(capped):
    app, playground = capped
    for number in range(3):
        assert playground.send(f"question {number}").status_code == 303
    refused = playground.send("the fourth, kept in the box")
    html = refused.get_data(as_text=True)
    assert refused.status_code == 429
    assert TOO_MANY in html
    assert re.search(r'<textarea id="content"[^>]*>\s*the fourth, kept in the box</textarea>', html)
    assert len(playground.messages(app)) == 6  # nothing of the fourth was stored
    as_json = playground.client.post(
        "/playground/messages",
        data={"content": "again", "csrf_token": playground.token()},
        headers={"Accept": "application/json"},
    )
    assert as_json.status_code == 429 and TOO_MANY in as_json.get_json()["error"]

    # Without sign-in the cap is each browser session's own (signed in, the user's: every session of
    # theirs together, tests/test_limits_make_sense.py): another browser is not refused; stopping one
    # reply frees a place.
    other = Playground(app.test_client())
    assert other.send("someone else").status_code == 303
    first_reply = playground.messages(app)[1]
    playground.client.post(f"/playground/messages/{first_reply.id}/stop", data={"csrf_token": playground.token()})
    assert playground.send("the fourth, now").status_code == 303


@pytest.mark.integration
def test_retry_counts_against_the_cap_too(capped):
    app, playground = capped
    playground.send("one")
    first_reply = playground.messages(app)[1]
    playground.client.post(f"/playground/messages/{first_reply.id}/stop", data={"csrf_token": playground.token()})
    playground.send("two"), playground.send("three"), playground.send("four")
    refused = playground.retry(first_reply.id)
    assert refused.status_code == 303
    assert TOO_MANY in playground.page().get_data(as_text=True)  # flashed
    assert playground.messages(app)[1].status == "stopped"


def test_the_same_composer_submission_twice_sends_one_message(app, playground):
    token = playground.token()
    page = playground.page().get_data(as_text=True)
    client_token = re.search(r'name="client_token" value="([^"]+)"', page).group(1)
    form = {"content": "sent with Ctrl+Enter twice", "csrf_token": token, "client_token": client_token}
    assert playground.client.post("/playground/messages", data=form).status_code == 303
    assert playground.client.post("/playground/messages", data=form).status_code == 303
    assert [m.content for m in playground.messages(app) if m.role == "user"] == ["sent with Ctrl+Enter twice"]
    again = playground.client.post("/playground/messages", data=form, headers={"Accept": "application/json"})
    assert again.status_code == 200 and again.get_json() == {"duplicate": True}
    # A new page (a new token) sends again; a refused submission can be sent again once fixed.
    fresh = re.search(r'name="client_token" value="([^"]+)"', playground.page().get_data(as_text=True)).group(1)
    assert fresh != client_token
    blank = {"content": " ", "csrf_token": token, "client_token": fresh}
    assert playground.client.post("/playground/messages", data=blank).status_code == 422
    assert playground.client.post("/playground/messages", data={**blank, "content": "fixed"}).status_code == 303
    assert [m.content for m in playground.messages(app) if m.role == "user"][-1] == "fixed"
