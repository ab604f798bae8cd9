"""The playground page and a turn, on the test config (cachelib sessions, fakeredis, inline jobs)."""

import pytest

from .conftest import COOKIE


def test_root_redirects_to_playground(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/playground")


def test_empty_page_renders(playground):
    response = playground.page()
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "No messages yet" in html
    assert "kept 24 h after last activity" in html


def test_send_appends_user_message_and_reply(app, playground):
    response = playground.send("What is a prompt?")
    assert response.status_code == 303
    messages = playground.messages(app)
    assert [m.role for m in messages] == ["user", "assistant"]
    assert messages[0].content == "What is a prompt?"
    assert messages[1].status == "done"
    assert messages[1].content.startswith("You said: What is a prompt?")
    html = playground.page().get_data(as_text=True)
    assert "What is a prompt?" in html
    assert "2 messages" in html


def test_history_and_system_prompt_reach_the_model(app, playground):
    playground.save_settings(system_prompt="Be brief.")
    playground.send("one")
    playground.send("two")
    reply = playground.messages(app)[-1]
    assert "turn 2" in reply.content
    assert "system prompt: 9 characters" in reply.content


def test_cookie_carries_only_the_session_id(playground):
    playground.send("hello")
    cookie = playground.client.get_cookie(COOKIE)
    assert len(cookie.value) == 43
    assert len(f"{COOKIE}={cookie.value}") < 100
    assert cookie.http_only
    assert cookie.same_site == "Lax"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "Type a message before sending."),
        ("   \n ", "Type a message before sending."),
        ("x" * 20_001, "Messages are limited to 20,000 characters; this one has 20,001."),
    ],
)
def test_bad_messages_are_refused_and_nothing_is_stored(app, playground, content, expected):
    response = playground.send(content)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert expected in html
    assert playground.messages(app) == []
    if content.strip():
        assert content in html  # what the user typed stays in the composer


def test_post_without_csrf_token_is_refused(app, playground):
    playground.page()
    response = playground.client.post("/playground/messages", data={"content": "sneaky"})
    assert response.status_code == 400
    assert "Nothing was changed" in response.get_data(as_text=True)
    assert playground.messages(app) == []


def test_forged_session_cookie_starts_a_fresh_session(app, playground):
    playground.send("mine")
    playground.client.set_cookie(COOKIE, "A" * 43)
    html = playground.page().get_data(as_text=True)
    assert "No messages yet" in html
    playground.client.set_cookie(COOKIE, "../../etc/passwd")
    assert playground.page().status_code == 200


def test_settings_are_kept_and_used(app, playground):
    response = playground.save_settings(system_prompt="You are terse.", temperature="0.2", max_tokens="50")
    assert response.status_code == 303
    html = playground.page().get_data(as_text=True)
    assert "You are terse." in html
    playground.send("hi")
    reply = playground.messages(app)[-1]
    assert reply.params == {"temperature": 0.2, "max_tokens": 50}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"temperature": "3"}, "Temperature"),
        ({"max_tokens": "0"}, "Max tokens"),
        ({"provider": "nope"}, "Provider"),
        ({"model": "  "}, "Name a model."),
    ],
)
def test_bad_settings_are_refused(playground, fields, expected):
    playground.save_settings(system_prompt="keep me")
    response = playground.save_settings(**fields)
    assert response.status_code == 422
    assert expected in response.get_data(as_text=True)
    # the previous settings are untouched
    playground.client.get("/playground")
    assert "keep me" in playground.page().get_data(as_text=True)


def test_reset_deletes_the_conversation(app, playground):
    playground.send("to be forgotten")
    response = playground.reset()
    assert response.status_code == 303
    assert playground.messages(app) == []
    assert "No messages yet" in playground.page().get_data(as_text=True)


def test_html_in_messages_is_escaped(playground):
    playground.send("<script>alert(1)</script>")
    html = playground.page().get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_a_window_past_the_end_shows_the_latest_messages(playground):
    playground.send("only one")
    response = playground.page(before=5000)
    assert response.status_code == 302 and response.headers["Location"].endswith("/playground")
