"""Socket.IO: a browser joins its own session's room; events of a reply reach that room only."""

import pytest

from prompt_tracker.extensions import socketio
from prompt_tracker.turns.live import room_for

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
    names = event_names(received)
    assert names[0] == "message.started" and names[-1] == "message.done"
    assert "message.delta" in names
    text = "".join(e["args"][0]["text"] for e in received if e["name"] == "message.delta")
    assert text.startswith("You said: for alice only")
    done = received[-1]["args"][0]
    assert done["usage"]["output_tokens"] > 0 and done["latency_ms"] >= done["first_token_ms"] >= 0
    assert "cost_usd" in done  # None for echo: its price is unknown, so no cost rather than a wrong one
    assert bob_socket.get_received() == []


class RawSocket:
    """A bare Socket.IO client over one WebSocket, speaking the protocol the page's script speaks."""

    def __init__(self, base_url, cookie=None):
        import simple_websocket

        url = base_url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
        headers = {"Cookie": f"_prompt_tracker_session={cookie}"} if cookie else None
        self.ws = simple_websocket.Client(url, headers=headers)
        assert self.ws.receive(timeout=5).startswith("0")  # Engine.IO open
        self.ws.send("40")
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
        self.ws.close()


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
    _, _, bob_cookie = browser()
    alice_socket = RawSocket(live_server, alice_cookie)
    bob_socket = RawSocket(live_server, bob_cookie)
    stranger = RawSocket(live_server, "C" * 43)
    assert alice_socket.connected and bob_socket.connected
    assert not stranger.connected  # no stored session: refused
    start_worker()
    import urllib.parse

    alice.open(live_server + "/playground/messages",
               urllib.parse.urlencode({"content": "through redis", "csrf_token": alice_token}).encode())
    received = alice_socket.events(until="message.done")
    assert event_names(received)[0] == "message.started"
    text = "".join(e["args"][0]["text"] for e in received if e["name"] == "message.delta")
    assert text.startswith("You said: through redis")
    assert bob_socket.events(until="message.done", timeout=1) == []
    for socket in (alice_socket, bob_socket, stranger):
        socket.close()
