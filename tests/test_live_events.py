"""Socket.IO: a browser joins its own session's room; events of a reply reach that room only."""

import pytest

from prompt_tracker.extensions import socketio
from prompt_tracker.replies.live import room_for

from .conftest import CSRF_RE, Playground


def event_names(received):
    return [event["name"] for event in received]


def test_room_is_an_hmac_of_the_sid_not_the_sid(app):
    with app.app_context():
        room = room_for("A" * 43)
        assert "A" * 43 not in room and len(room) == 64
        app.config["SECRET_KEY"] = "another"
        assert room_for("A" * 43) != room


def test_socket_without_a_session_is_refused(app):
    client = socketio.test_client(app)
    assert not client.is_connected()


def test_socket_with_a_forged_cookie_is_refused(app):
    flask_client = app.test_client()
    flask_client.set_cookie("_prompt_tracker_session", "B" * 43)
    assert not socketio.test_client(app, flask_test_client=flask_client).is_connected()


def test_events_reach_only_their_own_session(app):
    alice, bob = Playground(app.test_client()), Playground(app.test_client())
    alice.page(), bob.page()
    alice_socket = socketio.test_client(app, flask_test_client=alice.client)
    bob_socket = socketio.test_client(app, flask_test_client=bob.client)
    assert alice_socket.is_connected() and bob_socket.is_connected()

    alice.send("for alice only")  # the job runs inline on the test config

    received = alice_socket.get_received()
    appended = [e["args"][0] for e in received if e["name"] == "message.appended"]
    sent, reply = alice.messages(app)
    assert [(a["playground"], a["ids"], a["message_id"]) for a in appended] == [
        ("standalone", [sent.id, reply.id], reply.id)
    ]
    assert f'id="m-{reply.id}"' in appended[0]["html"]  # the two messages' HTML, for the other tabs
    assert event_names(received)[:2] == ["message.appended", "message.started"]  # appended before the job runs
    received = [e for e in received if e["name"] != "message.appended"]
    names = event_names(received)
    assert names[0] == "message.started" and names[-1] == "message.done"
    assert "message.delta" in names
    text = "".join(e["args"][0]["text"] for e in received if e["name"] == "message.delta")
    assert text.startswith("You said: for alice only")
    done = received[-1]["args"][0]
    assert done["usage"]["output_tokens"] > 0 and done["latency_ms"] >= done["first_token_ms"] >= 0
    assert "cost_usd" in done  # None for echo: its price is unknown, so no cost rather than a wrong one
    assert bob_socket.get_received() == []


def test_long_polling_is_refused(client):
    """WebSocket only: a polling handshake gets 400, so no web process needs sticky sessions."""
    assert client.get("/socket.io/?EIO=4&transport=polling").status_code == 400


def tab_events(socket, name):
    return [event["args"][0] for event in socket.get_received() if event["name"] == name]


def test_send_reset_and_save_reach_every_tab_of_the_session_and_no_other(app):
    """Two tabs of one session (one cookie, two sockets) both hear a send, a Reset and a settings save."""
    alice, bob = Playground(app.test_client()), Playground(app.test_client())
    alice.page(), bob.page()
    tab_a = socketio.test_client(app, flask_test_client=alice.client)
    tab_b = socketio.test_client(app, flask_test_client=alice.client)
    stranger = socketio.test_client(app, flask_test_client=bob.client)
    assert tab_a.is_connected() and tab_b.is_connected() and stranger.is_connected()

    alice.send("seen in both tabs")
    sent, reply = alice.messages(app)
    for tab in (tab_a, tab_b):
        assert [(e["playground"], e["ids"]) for e in tab_events(tab, "message.appended")] == [
            ("standalone", [sent.id, reply.id])
        ]

    alice.save_settings(system_prompt="Be brief.")
    digests = [tab_events(tab, "settings.saved") for tab in (tab_a, tab_b)]
    assert digests[0] == digests[1] and len(digests[0]) == 1 and digests[0][0]["playground"] == "standalone"
    assert f'data-digest="{digests[0][0]["digest"]}"' in alice.page().get_data(as_text=True)

    alice.reset()
    for tab in (tab_a, tab_b):
        assert tab_events(tab, "conversation.reset") == [{"playground": "standalone"}]
    assert stranger.get_received() == []


def test_a_settings_digest_changes_with_the_settings(playground):
    playground.page()
    before = playground.page().get_data(as_text=True)
    playground.save_settings(temperature=0.3)
    after = playground.page().get_data(as_text=True)
    digest = lambda html: html.split('data-digest="')[1].split('"')[0]  # noqa: E731
    assert len(digest(before)) == 16 and digest(before) != digest(after)


def open_messages(playground, **query):
    response = playground.client.get("/playground/messages/open", query_string=query)
    assert response.status_code == 200
    return response.get_json()


def test_catch_up_returns_what_a_tab_lacks(app, playground):
    """After its last message: the newer ones and any it shows as open; a tab whose last message is gone gets all."""
    playground.page()
    playground.send("first")
    playground.send("second")
    first, first_reply, second, second_reply = playground.messages(app)

    state = open_messages(playground)  # a tab that shows no message yet
    assert state["replace"] and state["total"] == 4 and state["start"] == 0
    assert [m["id"] for m in state["messages"]] == [first.id, first_reply.id, second.id, second_reply.id]
    assert f'id="m-{second_reply.id}"' in state["messages"][-1]["html"]

    state = open_messages(playground, after=first_reply.id)
    assert not state["replace"] and [m["id"] for m in state["messages"]] == [second.id, second_reply.id]

    # a reply the tab still shows as open comes back too, with its final HTML
    state = open_messages(playground, after=second_reply.id, open=first_reply.id)
    assert [m["id"] for m in state["messages"]] == [first_reply.id]
    assert 'data-status="done"' in state["messages"][0]["html"]

    playground.reset()
    state = open_messages(playground, after=second_reply.id)
    assert state == {**state, "replace": True, "total": 0, "messages": []}


def test_catch_up_reports_the_saved_settings(playground):
    playground.page()
    playground.save_settings(system_prompt="Answer in French.")
    page = playground.page().get_data(as_text=True)
    assert f'data-digest="{open_messages(playground)["settings_digest"]}"' in page


class RawSocket:
    """A bare Socket.IO client over one WebSocket, speaking the protocol the page's script speaks."""

    def __init__(self, base_url, cookie=None):
        import simple_websocket

        url = base_url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
        headers = {"Cookie": f"_prompt_tracker_session={cookie}"} if cookie else None
        self.ws = simple_websocket.Client(url, headers=headers)
        # Ask to join at once: simple-websocket's client leaves a frame that arrived together with the
        # 101 answer unread until more data comes, so the Engine.IO open could wait for the first ping.
        self.ws.send("40")
        assert self.ws.receive(timeout=5).startswith("0")  # Engine.IO open
        self.answer = self.ws.receive(timeout=5)

    @property
    def connected(self):
        return self.answer.startswith("40")

    def events(self, until, timeout=20):
        """Collect events until one named ``until`` arrives."""
        import json
        import time

        received = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            packet = self.ws.receive(timeout=1)
            if packet == "2":
                self.ws.send("3")
            elif packet and packet.startswith("42"):
                name, payload = json.loads(packet[2:])
                received.append({"name": name, "args": [payload]})
                if name == until:
                    return received
        return received

    def close(self):
        import simple_websocket

        try:
            self.ws.close()
        except simple_websocket.ConnectionClosed:
            pass  # the server closed it first (a refused socket)


@pytest.mark.integration
def test_a_real_workers_events_reach_the_browser_through_the_queue(live_server, start_worker):
    """Worker → Redis DB 1 → web process → this session's socket, and no other socket."""
    import http.cookiejar
    import urllib.request

    def browser():
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        html = opener.open(live_server + "/playground").read().decode()
        token = CSRF_RE.search(html).group(1)
        cookie = next(c.value for c in jar if c.name == "_prompt_tracker_session")
        return opener, token, cookie

    alice, alice_token, alice_cookie = browser()
    bob, bob_token, bob_cookie = browser()
    alice_socket = RawSocket(live_server, alice_cookie)
    bob_socket = RawSocket(live_server, bob_cookie)
    stranger = RawSocket(live_server, "C" * 43)
    assert alice_socket.connected and bob_socket.connected
    assert not stranger.connected  # no stored session: refused
    start_worker()
    import urllib.parse

    alice.open(
        live_server + "/playground/messages",
        urllib.parse.urlencode({"content": "through redis", "csrf_token": alice_token}).encode(),
    )
    received = alice_socket.events(until="message.done")
    assert event_names(received)[0] == "message.appended"  # published by the send, before the worker starts
    assert event_names(received)[1] == "message.started"
    text = "".join(e["args"][0]["text"] for e in received if e["name"] == "message.delta")
    assert text.startswith("You said: through redis")
    # Bob saves his settings: that event reaches his socket through the same queue after any of Alice's.
    from .test_concurrency import SETTINGS

    bob.open(
        live_server + "/playground/settings", urllib.parse.urlencode({**SETTINGS, "csrf_token": bob_token}).encode()
    )
    assert event_names(bob_socket.events(until="settings.saved")) == ["settings.saved"]
    for socket in (alice_socket, bob_socket, stranger):
        socket.close()


def raw_refused_connection(base_url, cookie="D" * 43, timeout=5.0):
    """Open a WebSocket by hand, ask to join as Socket.IO does, and read until the server ends the TCP connection.

    Returns what was read, or raises if the connection is still open after ``timeout`` seconds.
    """
    import base64
    import os
    import socket
    import time
    from urllib.parse import urlsplit

    address = urlsplit(base_url)
    connection = socket.create_connection((address.hostname, address.port), timeout=timeout)
    key = base64.b64encode(os.urandom(16)).decode()
    connection.sendall(
        (
            "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
            f"Host: {address.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Cookie: _prompt_tracker_session={cookie}\r\n\r\n"
        ).encode()
    )
    received = b""
    while b'"sid"' not in received:  # the 101 answer and Engine.IO's open packet
        received += connection.recv(4096)
    assert received.startswith(b"HTTP/1.1 101")
    mask = os.urandom(4)
    payload = bytes(byte ^ mask[index % 4] for index, byte in enumerate(b"40"))  # Socket.IO CONNECT, masked
    connection.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + payload)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            chunk = connection.recv(4096)
            if not chunk:
                return received  # EOF: the server closed the connection
            received += chunk
    finally:
        connection.close()
    raise AssertionError(f"the server kept the refused connection open; read {received!r}")


@pytest.mark.integration
@pytest.mark.parametrize("server", ["flask", "production"])
def test_the_server_closes_a_refused_socket(server, real_redis, web_pool):
    """A socket without a stored session reads the refusal, then the server ends its TCP connection."""
    from .conftest import service_env

    received = raw_refused_connection(web_pool.url(service_env(real_redis), server))
    assert b'44{"message":"no session: load the playground page first"}' in received


def test_the_page_loads_the_pinned_official_client_from_this_site(client):
    """static/vendor/ holds socket.io-client at the version package-lock.json pins, with its licence."""
    import json
    import re

    from .conftest import ROOT

    lock = json.loads((ROOT / "package-lock.json").read_text())
    pinned = lock["packages"]["node_modules/socket.io-client"]["version"]
    assert json.loads((ROOT / "package.json").read_text())["dependencies"]["socket.io-client"] == pinned
    vendor = ROOT / "prompt_tracker" / "static" / "vendor"
    assert (vendor / "socket.io.min.js").read_text().startswith(f"/*!\n * Socket.IO v{pinned}\n")
    assert "MIT License" in (vendor / "socket.io-client.LICENSE").read_text()
    page = client.get("/playground").get_data(as_text=True)
    scripts = re.findall(r'<script src="([^"]+)"', page)
    assert all(src.startswith("/static/") for src in scripts)  # the CSP allows no other host anyway
    assert scripts.index("/static/vendor/socket.io.min.js") < scripts.index("/static/playground.js")
    with client.get(scripts[0]) as response:
        assert response.status_code == 200


@pytest.mark.parametrize("patched, mode", [(False, "threading"), (True, "gevent")])
def test_socketio_async_mode_follows_the_server(patched, mode, tmp_path):
    """gevent when the standard library is patched (gunicorn's gevent worker does it first), else threads."""
    import subprocess
    import sys

    from .conftest import ROOT

    script = ("from gevent import monkey; monkey.patch_all()\n" if patched else "") + (
        "from prompt_tracker import create_app\n"
        "from prompt_tracker.extensions import socketio\n"
        "create_app('test')\n"
        "print(socketio.server.eio.async_mode)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == mode
