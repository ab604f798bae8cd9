"""Hostile input over real HTTP: forged and guessed session cookies, markup in everything a user types,
CSRF tokens missing or from another session, bodies that are not UTF-8 forms; and the security
headers on every kind of response."""

import html
import json
import re
import secrets
import urllib.parse

import pytest

from prompt_tracker.domain.keys import store_id
from prompt_tracker.web.form_guard import FORM_NOT_UTF8, NOT_A_FORM

from .conftest import wait_for
from .test_concurrency import PREFIX, Browser, all_done, session_keys, stored_blob, stored_conversation

pytestmark = pytest.mark.integration

FORM_EXPIRED = "This form was not sent by the current page (missing or stale security token)."
SID_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def victim(live_server):
    """Someone else's session: a system prompt and a message, both secret."""
    browser = Browser(live_server)
    assert browser.save_settings(system_prompt="the victim's secret prompt").status == 303
    assert browser.send("the victim's secret message").status == 303
    return browser


def assert_fresh_empty_session(browser: Browser, sent_cookie: str, answer) -> None:
    """The answer is an empty playground under a new id of our shape, not ``sent_cookie``."""
    assert answer.status == 200
    assert "No messages yet" in answer.text
    assert "secret" not in answer.text
    assert browser.cookie and SID_RE.match(browser.cookie) and browser.cookie != sent_cookie


# --- session cookies --------------------------------------------------------------------------


HOSTILE_COOKIES = [
    "A" * 5000,  # over the 4 KB a cookie may hold
    "B" * 43 + "x" * 4100,  # a valid-shaped id followed by junk
    "eyJzaWQiOiJ4In0.Zx1234.forged-signature",  # a signed-cookie lookalike
    "../../etc/passwd",
    "*",
    "{" + "C" * 41 + "}",  # the braces of our key names
    '"' + "D" * 43 + '"',  # quoted
    "%00" + "E" * 40,
    "é" * 43,  # sent as UTF-8 bytes
]


def test_forged_malformed_and_oversized_cookies_get_a_fresh_empty_session(live_server, real_redis, victim):
    """Any cookie we did not issue is ignored: a fresh empty session, no key named after it, the victim untouched."""
    for cookie in HOSTILE_COOKIES:
        keys_before = session_keys(real_redis)
        browser = Browser(live_server)
        header = f"_prompt_tracker_session={cookie}".encode().decode("latin-1")  # http.client sends latin-1
        answer = browser.request("GET", "/playground", headers={"Cookie": header})
        assert_fresh_empty_session(browser, cookie, answer)
        assert session_keys(real_redis) - keys_before == {f"{PREFIX}{{{store_id(browser.cookie)}}}"}, cookie[:50]
    assert stored_conversation(real_redis, victim.cookie)[0].content == "the victim's secret message"


def test_guessed_session_ids_never_reach_another_users_data(live_server, real_redis, victim):
    """Random ids of the right shape, and near misses of the victim's id: a fresh empty session, never the victim's."""
    sid = victim.cookie
    conversation = stored_conversation(real_redis, sid)
    flipped = sid[:-1] + ("A" if sid[-1] != "A" else "B")
    guesses = [secrets.token_urlsafe(32) for _ in range(20)] + [flipped, sid[:42], sid + "A", sid.swapcase()]
    for guess in guesses:
        # A POST under the guessed id, even with the victim's own CSRF token, is refused.
        assert Browser(live_server, cookie=guess, token=victim.token).send("from the guesser").status == 400
        browser = Browser(live_server, cookie=guess)
        answer = browser.page()
        assert_fresh_empty_session(browser, guess, answer)
        assert "the victim" not in answer.text
    assert stored_conversation(real_redis, sid) == conversation
    assert not any(f"{{{guess}}}" in key for key in session_keys(real_redis) for guess in guesses)


# --- markup in what users type ----------------------------------------------------------------

MARKUP = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def assert_no_markup_from_user(text: str) -> None:
    """The user's markup shows as text: escaped, never as a tag or attribute."""
    assert "<script>alert" not in text and "<img src=x" not in text
    text = text.replace("&quot;", "&#34;")  # Markdown replies escape quotes the other (equally safe) way
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in text


def test_markup_in_messages_settings_and_json_fragments_is_escaped(live_server, real_redis, start_worker):
    """HTML/JS typed as a message, a system prompt and a model name is escaped on the page and in JSON fragments."""
    start_worker()
    browser = Browser(live_server)
    model = '"><script>alert("model")</script>'
    assert browser.save_settings(system_prompt=f"</textarea>{MARKUP}", model=model).status == 303
    answer = browser.send(f"hello {MARKUP}\n```\n{MARKUP}\n```", headers={"Accept": "application/json"})
    assert answer.status == 202
    sent = json.loads(answer.body)
    assert_no_markup_from_user(sent["html"])
    messages = wait_for(lambda: all_done(real_redis, browser.cookie, 2))
    fragment = browser.request("GET", f"/playground/messages/{messages[1].id}")
    assert fragment.status == 200 and "You said: hello" in fragment.text
    assert_no_markup_from_user(fragment.text)
    page = browser.page().text
    assert_no_markup_from_user(page)
    assert '<script>alert("model")' not in page and "&#34;&gt;&lt;script&gt;alert(&#34;model&#34;)" in page
    assert "&lt;/textarea&gt;&lt;script&gt;" in page
    assert re.findall(r"<script\b[^>]*>", page) == [
        '<script src="/static/requests.js" defer>',
        '<script src="/static/copy.js" defer>',
        '<script src="/static/flashes.js" defer>',
        '<script src="/static/drafts.js" defer>',
        '<script src="/static/vendor/socket.io.min.js" defer>',
        '<script src="/static/live.js" defer>',
        '<script src="/static/playground.js" defer>',
        '<script src="/static/settings.js" defer>',
    ]
    refused = browser.save_settings(system_prompt=MARKUP, model=MARKUP, temperature="not a number")
    assert refused.status == 422  # the form comes back with what was typed, escaped
    assert_no_markup_from_user(refused.text)


# --- CSRF -------------------------------------------------------------------------------------


FORGED_FORMS = {
    "/playground/messages": {"content": "forged message"},
    "/playground/settings": {
        "system_prompt": "forged prompt",
        "provider": "echo",
        "model": "forged",
        "temperature": "1",
        "max_tokens": "5",
    },
    "/playground/reset": {},
}


def test_a_missing_or_stale_csrf_token_is_a_400_that_changes_nothing(live_server, real_redis, victim):
    """Send, Save settings, Reset without the token, with another session's or a made-up one (field or header): 400."""
    blob_before = stored_blob(real_redis, victim.cookie)
    conversation_before = stored_conversation(real_redis, victim.cookie)
    other = Browser(live_server)
    other.page()
    for action, fields in FORGED_FORMS.items():
        for kind, token in {"missing": None, "other session": other.token, "made up": "x" * 40}.items():
            for where in ("field", "header"):
                body = {**fields, "csrf_token": token} if token and where == "field" else fields
                headers = {"X-CSRFToken": token} if token and where == "header" else {}
                answer = victim.request(
                    "POST", action, urllib.parse.urlencode(body).encode(), {"Content-Type": FORM, **headers}
                )
                case = f"{action}, token {kind} in {where}"
                assert answer.status == 400, case
                assert FORM_EXPIRED in answer.text and "Nothing was changed" in answer.text, case
    assert stored_blob(real_redis, victim.cookie) == blob_before
    assert stored_conversation(real_redis, victim.cookie) == conversation_before


# --- bodies that are not UTF-8 forms --------------------------------------------------------


def test_a_raw_non_utf8_form_body_is_a_4xx_that_stores_nothing(live_server, real_redis):
    """b"content=\\xff\\xfe" with the form content type: a 400 page, no 500, nothing stored."""
    browser = Browser(live_server)
    browser.page()
    answer = browser.request(
        "POST", "/playground/messages", b"content=\xff\xfe&csrf_token=" + browser.token.encode(), {"Content-Type": FORM}
    )
    assert answer.status == 400
    assert "Traceback" not in answer.text
    assert stored_conversation(real_redis, browser.cookie) == []


def multipart(fields: dict[str, bytes], boundary: str = "b0undary") -> tuple[bytes, str]:
    """A multipart/form-data body (what the page's script sends) and its content type."""
    body = (
        b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value + b"\r\n"
            for name, value in fields.items()
        )
        + f"--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def post_and_describe(browser: Browser, server, body: bytes, headers: dict) -> tuple:
    """POST to the send endpoint; return (status, what the error page says, contents added to the conversation)."""
    before = len(stored_conversation(server, browser.cookie))
    answer = browser.request("POST", "/playground/messages", body, headers)
    detail = re.search(r'<section class="error-page">.*?<p>(.*?)</p>', answer.text, re.S)
    added = [message.content for message in stored_conversation(server, browser.cookie)[before:]]
    return answer.status, html.unescape(detail.group(1)) if detail else "(no error page)", added


def test_a_non_utf8_form_is_refused_with_a_clear_message_and_stores_nothing(live_server, real_redis):
    """Invalid UTF-8 in a form field, however encoded: a 400 that says so, and nothing stored (not "\\ufffd")."""
    browser = Browser(live_server)
    browser.page()
    token = browser.token.encode()
    bodies = {
        "raw bytes": (b"csrf_token=" + token + b"&content=\xff\xfe", FORM),
        "percent-encoded": (b"csrf_token=" + token + b"&content=%FF%FE", FORM),
        "multipart": multipart({"csrf_token": token, "content": b"\xff\xfe"}),
    }
    outcomes = {}
    for name, (body, content_type) in bodies.items():
        outcomes[name] = post_and_describe(browser, real_redis, body, {"Content-Type": content_type})
    assert outcomes == dict.fromkeys(bodies, (400, FORM_NOT_UTF8, []))


def test_a_json_body_to_the_form_endpoint_is_a_clear_415(live_server, real_redis):
    """JSON to the form endpoint, with or without the token header, is a 415 saying it takes a form; never stored."""
    browser = Browser(live_server)
    browser.page()
    outcomes = {}
    for body in ({"content": "sent as JSON"}, ["content", "sent as JSON"], "sent as JSON", 1):
        for token_header in (False, True):
            headers = {"Content-Type": "application/json", **({"X-CSRFToken": browser.token} if token_header else {})}
            outcomes[json.dumps(body), token_header] = post_and_describe(
                browser, real_redis, json.dumps(body).encode(), headers
            )
    assert outcomes == dict.fromkeys(outcomes, (415, NOT_A_FORM.format(type="application/json"), []))


def test_the_page_scripts_multipart_form_still_works(live_server, real_redis):
    """The guard against bad bodies must not refuse what the page's script sends: multipart, UTF-8, token header."""
    browser = Browser(live_server)
    browser.page()
    body, content_type = multipart({"csrf_token": browser.token.encode(), "content": "héllo ✓".encode()})
    answer = browser.request(
        "POST",
        "/playground/messages",
        body,
        {"Content-Type": content_type, "Accept": "application/json", "X-CSRFToken": browser.token},
    )
    assert answer.status == 202
    assert stored_conversation(real_redis, browser.cookie)[0].content == "héllo ✓"


# --- security headers -------------------------------------------------------------------------


def assert_security_headers(headers) -> None:
    """CSP without inline script and with frame-ancestors 'none', nosniff, a Referrer-Policy."""
    policy = {
        directive.split()[0]: directive.split()[1:]
        for directive in headers["Content-Security-Policy"].split(";")
        if directive.strip()
    }
    assert "'unsafe-inline'" not in policy.get("script-src", policy.get("default-src"))
    assert "'unsafe-eval'" not in policy.get("script-src", policy.get("default-src"))
    assert policy["frame-ancestors"] == ["'none'"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] in (
        "same-origin",
        "no-referrer",
        "strict-origin-when-cross-origin",
        "strict-origin",
    )


def test_every_kind_of_response_carries_the_security_headers(live_server):
    """Page, redirect, 400/404/405/413 pages, static files and /healthz, over real HTTP."""
    browser = Browser(live_server)
    page = browser.page()
    answers = {
        "page": page,
        "redirect": browser.request("GET", "/"),
        "send (303)": browser.send("hello"),
        "csrf 400": browser.request("POST", "/playground/reset", b"", {"Content-Type": FORM}),
        "404": browser.request("GET", "/no-such-page"),
        "405": browser.request("DELETE", "/playground"),
        "413": browser.send("x" * 300_000),
        "style.css": browser.request("GET", "/static/style.css"),
        "playground.js": browser.request("GET", "/static/playground.js"),
        "missing static": browser.request("GET", "/static/nope.js"),
        "healthz": browser.request("GET", "/healthz"),
    }
    assert {name: answer.status for name, answer in answers.items()} == {
        "page": 200,
        "redirect": 302,
        "send (303)": 303,
        "csrf 400": 400,
        "404": 404,
        "405": 405,
        "413": 413,
        "style.css": 200,
        "playground.js": 200,
        "missing static": 404,
        "healthz": 200,
    }
    for name, answer in answers.items():
        try:
            assert_security_headers(answer.headers)
        except (AssertionError, KeyError) as error:
            raise AssertionError(f"{name}: {error!r}") from error


def test_the_page_has_no_inline_script_or_event_handler(live_server):
    """What the CSP forbids is not needed: every script has a src, no on*= attribute, no javascript: URL."""
    html = Browser(live_server).page().text
    assert all("src=" in tag for tag in re.findall(r"<script\b[^>]*>", html))
    assert not re.search(r"\son[a-z]+\s*=", html)
    assert "javascript:" not in html
