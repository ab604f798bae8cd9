"""The request view: each reply records what its provider was sent (keys as $VARIABLES), shown as JSON and curl."""

import json
import re
import subprocess
from html import unescape

import pytest

from prompt_tracker.domain.recorded_request import curl_command
from prompt_tracker.providers import ChatRequest, get_provider

from .fake_llm_servers import ANTHROPIC_KEY, OPENAI_KEY

REQUEST = ChatRequest(
    model="gpt-4o-mini",
    system_prompt="Be terse.",
    messages=[("user", "Hi"), ("assistant", "Hello"), ("user", "Say 'it\"s' $HOME `x`")],
    temperature=0.2,
    max_tokens=64,
    top_p=0.5,
    stop=["##"],
    seed=3,
)


@pytest.mark.parametrize(
    "name, fixture, model",
    [
        ("openai", "fake_openai", "gpt-4o-mini"),
        ("anthropic", "fake_anthropic", "claude-haiku-4-5"),
    ],
)
def test_the_recorded_body_is_exactly_what_the_server_received(request, name, fixture, model):
    server = request.getfixturevalue(fixture)
    chat = ChatRequest(**{**REQUEST.__dict__, "model": model})
    provider = get_provider(name)
    list(provider.stream(chat))
    described = provider.describe(chat)
    received = server.requests[-1]
    assert described["body"] == received.body
    assert described["url"] == server.url.rstrip("/") + received.path
    assert OPENAI_KEY not in json.dumps(described) and ANTHROPIC_KEY not in json.dumps(described)


def test_keys_show_as_the_variable_that_holds_them(fake_openai, fake_anthropic):
    assert get_provider("openai").describe(REQUEST)["headers"]["Authorization"] == "Bearer $OPENAI_API_KEY"
    assert get_provider("anthropic").describe(REQUEST)["headers"]["x-api-key"] == "$ANTHROPIC_API_KEY"


@pytest.mark.parametrize(
    "name, fixture, key_variable, key",
    [
        ("openai", "fake_openai", "OPENAI_API_KEY", OPENAI_KEY),
        ("anthropic", "fake_anthropic", "ANTHROPIC_API_KEY", ANTHROPIC_KEY),
    ],
)
def test_the_curl_command_sends_the_same_request(request, name, fixture, key_variable, key):
    server = request.getfixturevalue(fixture)
    model = "gpt-4o-mini" if name == "openai" else "claude-haiku-4-5"
    described = get_provider(name).describe(ChatRequest(**{**REQUEST.__dict__, "model": model}))
    command = curl_command(described)
    assert key not in command
    answer = subprocess.run(
        ["bash", "-c", command + " --silent --show-error --max-time 20"],
        env={"PATH": "/usr/bin:/bin", key_variable: key},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert answer.returncode == 0, answer.stderr
    received = server.requests[-1]
    assert received.body == described["body"]  # quotes, $ and backticks in the text arrived as typed
    assert received.sent_key() == key
    assert "Hello there" in answer.stdout or "Hello" in answer.stdout


def test_echo_has_no_http_request_and_no_curl():
    described = get_provider("echo").describe(REQUEST)
    assert described["body"]["messages"][-1] == ["user", "Say 'it\"s' $HOME `x`"]
    assert curl_command(described) is None


def shown_request(client, reply_id) -> tuple[dict, str]:
    """The request view's JSON (parsed) and its whole HTML."""
    view = client.get(f"/playground/messages/{reply_id}/request")
    assert view.status_code == 200
    html = view.get_data(as_text=True)
    shown = re.search(r'<pre class="request-code" id="request-json">(.*?)</pre>', html, re.S).group(1)
    return json.loads(unescape(shown)), html


def test_a_reply_records_its_request_and_the_page_links_to_it(app, playground, fake_openai):
    playground.save_settings(provider="openai", model="gpt-4o-mini", system_prompt="Be brief.", top_p="0.5")
    playground.send("first")
    playground.send("second")
    reply = playground.messages(app)[-1]
    page = playground.page().get_data(as_text=True)
    assert f'href="/playground/messages/{reply.id}/request">View request</a>' in page
    shown, html = shown_request(playground.client, reply.id)
    assert shown["body"] == fake_openai.requests[-1].body  # exactly what the server received
    assert [m["content"] for m in shown["body"]["messages"]] == [
        "Be brief.",
        "first",
        fake_openai.script.reply,
        "second",
    ]
    assert "&#34;top_p&#34;: 0.5" in html and "curl http://127.0.0.1:" in html
    assert "Bearer $OPENAI_API_KEY" in html and OPENAI_KEY not in html
    assert 'data-copy-target="request-json"' in html and 'data-copy-target="request-curl"' in html
    assert "have changed since it was sent" not in html


def test_a_reply_does_not_store_the_history_it_sent(app, playground):
    """Each record would otherwise hold the whole conversation before it: n² in Redis and in every page view."""
    playground.send("a long first message " + "x" * 5000)
    playground.send("second")
    reply = playground.messages(app)[-1]
    assert "x" * 5000 not in json.dumps(reply.request)
    assert reply.request["history"]["count"] == 3 and reply.request["history"]["dropped"] == 0
    shown, _ = shown_request(playground.client, reply.id)
    assert shown["body"]["messages"][0] == ["user", "a long first message " + "x" * 5000]


def test_the_view_says_when_the_conversation_changed_since_the_reply(app, playground):
    playground.send("first")
    playground.send("second")
    first_user, _, _, reply = playground.messages(app)
    token = playground.token()
    assert (
        playground.client.post(
            f"/playground/messages/{first_user.id}/delete", data={"csrf_token": token, "confirm": "yes"}
        ).status_code
        == 303
    )
    shown, html = shown_request(playground.client, reply.id)
    assert "have changed since it was sent" in html
    assert shown["body"]["messages"] == [["user", "second"]]  # the conversation as it is now


def test_no_request_view_for_a_missing_reply(playground):
    response = playground.client.get("/playground/messages/nosuchid/request")
    assert response.status_code == 404
    assert "no recorded request" in response.get_data(as_text=True)


# --- a recorded request from a file is data, never code for the copier's shell ----------------

HOSTILE = "$(touch {marker}) `touch {marker}` ${{HOME}} \"' \\ $HOME"


def run_curl_command(command: str, tmp_path) -> list[str]:
    """The arguments bash passes to curl for ``command`` (curl stubbed by a function that prints them)."""
    answer = subprocess.run(
        ["bash", "-c", "curl() { printf '%s\\0' \"$@\"; }\n" + command],
        env={"PATH": "/usr/bin:/bin", "HOME": "/home/copier", "OPENAI_API_KEY": "sk-copied", "ANTHROPIC_API_KEY": "a"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert answer.returncode == 0, answer.stderr
    return answer.stdout.split("\0")[:-1]


def test_the_curl_command_quotes_every_value_and_expands_only_the_key_variables(tmp_path):
    marker = tmp_path / "ran"
    hostile = HOSTILE.format(marker=marker)
    record = {
        "provider": "openai",
        "url": "https://api.example/v1/chat/completions?a=$(touch%20x)",
        "headers": {
            "Authorization": "Bearer $OPENAI_API_KEY",
            "x-api-key": "$ANTHROPIC_API_KEY$OPENAI_API_KEYS",
            "X-Note": hostile,
        },
        "body": {"messages": [["user", hostile]]},
    }
    arguments = run_curl_command(curl_command(record), tmp_path)
    assert not marker.exists()
    assert arguments == [
        "https://api.example/v1/chat/completions?a=$(touch%20x)",
        "-H",
        "Authorization: Bearer sk-copied",
        "-H",
        "x-api-key: a$OPENAI_API_KEYS",  # only the exact names expand
        "-H",
        f"X-Note: {hostile}",
        "-d",
        json.dumps(record["body"], ensure_ascii=False),
    ]


def test_no_curl_command_for_a_url_that_is_not_http():
    """curl would take ``-o…`` as an option, and file:// reads the copier's files."""
    for url in ("-o/tmp/owned", "file:///etc/passwd", "--config=/tmp/x"):
        assert curl_command({"provider": "openai", "url": url, "headers": {}, "body": {}}) is None


def test_an_imported_request_header_does_not_run_a_command_on_the_copiers_machine(app, playground, tmp_path):
    from .test_export_import import upload

    marker = tmp_path / "ran"
    playground.send("hello")
    exported = json.loads(playground.client.get("/playground/export.json").data)
    exported["messages"][1]["request"].update(
        url="https://api.example/v1/chat/completions",
        headers={"Authorization": f"Bearer $(touch {marker})", "X-Other": f"`touch {marker}`"},
    )
    assert upload(playground, json.dumps(exported).encode()).status_code == 303
    reply = playground.messages(app)[1]
    html = playground.client.get(f"/playground/messages/{reply.id}/request").get_data(as_text=True)
    command = unescape(re.search(r'<pre class="request-code" id="request-curl">(.*?)</pre>', html, re.S).group(1))
    arguments = run_curl_command(command, tmp_path)
    assert not marker.exists()
    assert f"Authorization: Bearer $(touch {marker})" in arguments and f"X-Other: `touch {marker}`" in arguments
