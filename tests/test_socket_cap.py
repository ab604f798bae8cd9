"""One user cannot hold the site's sockets: past MAX_SOCKETS_PER_USER the oldest socket is closed.

Real python-socketio clients (WebSocket transport) against the test app served by werkzeug in a
thread (Socket.IO in threading mode, fakeredis); the test across web processes and signed-in users
is in test_team_deployment.
"""

import threading
import urllib.request
from contextlib import contextmanager

import pytest
import socketio
from werkzeug.serving import make_server

from prompt_tracker import create_app
from prompt_tracker.domain.keys import sockets_key, store_id
from prompt_tracker.extensions import services

from .conftest import COOKIE
from .processes import wait_for


@contextmanager
def serving(app):
    """``app`` on a free loopback port, served by werkzeug's threaded server; yields its URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)


def new_session(url: str) -> str:
    """Load the playground without a cookie; return the session cookie it sets."""
    with urllib.request.urlopen(url + "/playground", timeout=10) as response:
        header = response.headers["Set-Cookie"]
    return header.split(";")[0].split("=", 1)[1]


def open_socket(url: str, cookie: str) -> socketio.Client:
    client = socketio.Client(reconnection=False)
    client.connect(url, headers={"Cookie": f"{COOKIE}={cookie}"}, transports=["websocket"], wait_timeout=10)
    return client


def close_all(clients) -> None:
    """Disconnect the clients at once (each waits for the server's answer to its close frame)."""
    threads = [threading.Thread(target=client.disconnect) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)


@pytest.fixture
def capped_app():
    return create_app("test", overrides={"MAX_SOCKETS_PER_USER": 3})


def test_the_default_cap_is_20():
    assert create_app("test").config["MAX_SOCKETS_PER_USER"] == 20


def test_past_the_cap_the_oldest_socket_of_a_session_is_closed(capped_app):
    with serving(capped_app) as url:
        cookie, other_cookie = new_session(url), new_session(url)
        sockets = []
        try:
            sockets += [open_socket(url, cookie) for _ in range(3)]
            others = [open_socket(url, other_cookie) for _ in range(2)]
            sockets += others
            assert all(client.connected for client in sockets)

            fourth = open_socket(url, cookie)
            sockets.append(fourth)
            wait_for(lambda: not sockets[0].connected, timeout=10)
            fifth = open_socket(url, cookie)
            sockets.append(fifth)
            wait_for(lambda: not sockets[1].connected, timeout=10)
            # The newest three of the session stay, and another session's sockets are not touched.
            assert [client.connected for client in (sockets[2], fourth, fifth, *others)] == [True] * 5
            key = sockets_key(store_id(cookie))
            with capped_app.app_context():
                assert services.jobs_redis.zcard(key) == 3
                assert [member.decode() for member in services.jobs_redis.zrange(key, 0, -1)] == [
                    client.get_sid("/") for client in (sockets[2], fourth, fifth)
                ]
        finally:
            close_all(sockets)


def test_a_closed_socket_is_forgotten(capped_app):
    with serving(capped_app) as url:
        cookie = new_session(url)
        client = open_socket(url, cookie)
        key = sockets_key(store_id(cookie))
        with capped_app.app_context():
            assert services.jobs_redis.zcard(key) == 1
            client.disconnect()
            wait_for(lambda: services.jobs_redis.zcard(key) == 0, timeout=10)


def test_a_closed_client_that_ignores_its_disconnection_is_cut_off(capped_app):
    """The oldest socket's connection is closed by the server even if its client never lets go."""
    import time

    import simple_websocket

    from .test_live_events import RawSocket

    with serving(capped_app) as url:
        cookie = new_session(url)
        stubborn = RawSocket(url, cookie)  # answers nothing, closes nothing
        assert stubborn.connected
        sockets = [open_socket(url, cookie) for _ in range(3)]
        try:
            received = []
            deadline = time.monotonic() + 10
            with pytest.raises(simple_websocket.ConnectionClosed):
                while time.monotonic() < deadline:
                    received.append(stubborn.ws.receive(timeout=1))
            assert "41" in received  # Socket.IO's DISCONNECT, before the connection went
        finally:
            close_all(sockets)
