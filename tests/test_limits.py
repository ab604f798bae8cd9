"""Sizes on a real Redis: message length, body size, conversation cap, and the page window over 1,000 messages."""

import re
from contextlib import contextmanager

import pytest

from prompt_tracker import create_app
from prompt_tracker.domain.keys import conversation_key
from prompt_tracker.domain.messages import encode_message, user_message
from prompt_tracker.domain.settings import STANDALONE
from prompt_tracker.extensions import services

from .conftest import Playground, service_env
from .test_concurrency import PREFIX, Browser, stored_conversation

pytestmark = pytest.mark.integration

MESSAGE_RE = re.compile(r'<li class="message message-user[^"]*" id="m-[0-9a-f]+"')


def composer_text(html: str) -> str:
    """What the composer's textarea holds on the page."""
    return re.search(r'<textarea[^>]*id="content"[^>]*>\r?\n?(.*?)</textarea>', html, re.S).group(1)


def shown_numbers(html: str) -> list[int]:
    """Numbers of the seeded messages ("message 123: ...") the page shows, in page order."""
    return [int(number) for number in re.findall(r"message (\d+): ", html)]


def test_an_over_long_message_is_a_422_that_stores_nothing_and_keeps_the_text(live_app, live_playground, real_redis):
    """MAX_MESSAGE_CHARS + 1 characters: 422 saying the limit, no key written, the text still in the composer."""
    limit = live_app.config["MAX_MESSAGE_CHARS"]
    too_long = "x" * limit + "y"
    response = live_playground.send(too_long)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert f"Messages are limited to {limit:,} characters; this one has {limit + 1:,}." in html
    assert composer_text(html) == too_long
    assert not real_redis.client(2).exists(conversation_key(PREFIX, live_playground.store(), STANDALONE))
    assert live_playground.send("x" * limit).status_code == 303  # exactly the limit is fine


def test_a_body_over_max_content_length_is_a_413_page_that_stores_nothing(live_app, live_playground, real_redis):
    """A body larger than MAX_CONTENT_LENGTH: the 413 page in plain words, nothing stored."""
    token = live_playground.token()
    body = "x" * (live_app.config["MAX_CONTENT_LENGTH"] + 1)
    response = live_playground.client.post("/playground/messages", data={"content": body, "csrf_token": token})
    html = response.get_data(as_text=True)
    assert response.status_code == 413
    assert "That was too large to accept. Shorten the message or the system prompt and send it again." in html
    assert "Traceback" not in html
    as_json = live_playground.client.post(
        "/playground/messages", data={"content": body, "csrf_token": token}, headers={"Accept": "application/json"}
    )
    assert as_json.status_code == 413 and "too large" in as_json.get_json()["error"]
    assert not real_redis.client(2).exists(conversation_key(PREFIX, live_playground.store(), STANDALONE))


def test_a_body_over_max_content_length_over_real_http(live_server, real_redis):
    """The same 413 through the real web server process: the answer arrives whole, and nothing is stored."""
    browser = Browser(live_server)
    answer = browser.send("x" * (300 * 1024))
    assert answer.status == 413 and "That was too large to accept." in answer.text
    assert stored_conversation(real_redis, browser.cookie) == []


def test_a_full_conversation_refuses_the_next_message_clearly(real_redis, monkeypatch):
    """MAX_CONVERSATION_MESSAGES = 6: three turns fit, the fourth is refused with "reached its limit", nothing stored."""
    for key, value in service_env(real_redis).items():
        monkeypatch.setenv(key, value)
    app = create_app("development", overrides={"DEBUG": False, "MAX_CONVERSATION_MESSAGES": 6})
    playground = Playground(app.test_client())
    for number in range(3):
        assert playground.send(f"turn {number}").status_code == 303
    response = playground.send("one too many")
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "This conversation has reached its limit of 6 messages. Press Reset to start a new one." in html
    assert composer_text(html) == "one too many"
    assert [m.content for m in stored_conversation(real_redis, playground.sid())[::2]] == ["turn 0", "turn 1", "turn 2"]
    as_json = playground.client.post(
        "/playground/messages",
        data={"content": "still too many", "csrf_token": playground.token()},
        headers={"Accept": "application/json"},
    )
    assert as_json.status_code == 422 and "reached its limit" in as_json.get_json()["error"]
    assert len(stored_conversation(real_redis, playground.sid())) == 6


@pytest.fixture
def thousand_messages(live_app, live_playground):
    """A session whose conversation holds 1,000 messages of about 2 KB ("message N: yyy…")."""
    live_playground.page()
    with live_app.app_context():
        services.store.append(
            live_playground.store(),
            STANDALONE,
            *[user_message(f"message {number}: " + "y" * 2000) for number in range(1000)],
        )
    return live_playground


def test_the_page_shows_the_latest_200_and_links_to_the_previous_window(live_app, thousand_messages):
    """1,000 messages, PAGE_WINDOW 200 (no byte budget): the page has 800..999 and a link to ?before=800, which has 600..799."""
    assert live_app.config["PAGE_WINDOW"] == 200
    live_app.config["PAGE_WINDOW_BYTES"] = 0
    html = thousand_messages.page().get_data(as_text=True)
    assert "1000 messages" in html
    assert shown_numbers(html) == list(range(800, 1000))
    assert len(MESSAGE_RE.findall(html)) == 200
    link = re.search(r'<a href="([^"]+)">Show earlier messages \(800 more\)</a>', html)
    assert link and link.group(1) == "/playground?before=800"

    earlier = thousand_messages.client.get(link.group(1)).get_data(as_text=True)
    assert shown_numbers(earlier) == list(range(600, 800))
    assert '<a href="/playground?before=600">Show earlier messages (600 more)</a>' in earlier
    first = thousand_messages.client.get("/playground?before=200").get_data(as_text=True)
    assert shown_numbers(first) == list(range(0, 200))
    assert "Show earlier messages" not in first


def test_a_page_of_long_messages_shows_only_the_newest_within_the_byte_budget(live_app, thousand_messages):
    """2 KB messages and the default 128 KiB budget: the newest that fit, then a link to the ones before."""
    budget = live_app.config["PAGE_WINDOW_BYTES"]
    assert budget == 131_072
    html = thousand_messages.page().get_data(as_text=True)
    shown = shown_numbers(html)
    record = len(encode_message(user_message("message 999: " + "y" * 2000)))
    assert len(shown) == budget // record and shown[-1] == 999 and shown == list(range(shown[0], 1000))
    assert f'<a href="/playground?before={shown[0]}">Show earlier messages ({shown[0]} more)</a>' in html
    earlier = thousand_messages.client.get(f"/playground?before={shown[0]}").get_data(as_text=True)
    assert shown_numbers(earlier) == list(range(shown[0] - len(shown), shown[0]))
    # One message over the budget alone is still shown.
    live_app.config["PAGE_WINDOW_BYTES"] = 100
    assert shown_numbers(thousand_messages.page().get_data(as_text=True)) == [999]


@contextmanager
def logged_lranges(server):
    """Collect the arguments of every LRANGE the server runs inside the block (SLOWLOG logging every command)."""
    db2 = server.client(2)
    previous = db2.config_get("slowlog-log-slower-than")["slowlog-log-slower-than"]
    db2.config_set("slowlog-max-len", 1000)
    db2.config_set("slowlog-log-slower-than", 0)
    db2.slowlog_reset()
    ranges = []
    try:
        yield ranges
        entries = db2.slowlog_get(1000)
    finally:
        db2.config_set("slowlog-log-slower-than", previous)
    commands = [entry["command"].decode().split() for entry in reversed(entries)]
    ranges += [command[2:] for command in commands if command[0].upper() == "LRANGE"]


def test_a_page_view_reads_only_its_window_never_lrange_0_minus_1(live_app, thousand_messages, real_redis):
    """The LRANGEs of two page views (latest, then ?before=800), with their arguments: one window each.

    Without a byte budget, one LRANGE of the window; with one, 16 records at a time from the
    window's end until the budget is spent (about 60 of these 2 KB messages).
    """
    live_app.config["PAGE_WINDOW_BYTES"] = 0
    with logged_lranges(real_redis) as ranges:
        thousand_messages.page()
        thousand_messages.page(before=800)
    assert ranges == [["-200", "-1"], ["-400", "-201"]]
    live_app.config["PAGE_WINDOW_BYTES"] = 131_072
    with logged_lranges(real_redis) as ranges:
        shown = shown_numbers(thousand_messages.page().get_data(as_text=True))
    assert ranges == [[str(-16 * (n + 1)), str(-16 * n - 1)] for n in range(len(ranges))]
    assert len(ranges) == len(shown) // 16 + 1 and shown[-1] == 999


def test_a_before_of_zero_or_less_never_reads_the_whole_conversation(thousand_messages, real_redis):
    """?before=0 and ?before=-5 (hand-typed) still read and render at most one window, never all 1,000 messages."""
    with logged_lranges(real_redis) as ranges:
        pages = {before: thousand_messages.page(before=before).get_data(as_text=True) for before in (0, -5)}
    assert {before: len(shown_numbers(html)) <= 200 for before, html in pages.items()} == {0: True, -5: True}
    assert ["0", "-1"] not in ranges
