"""Access that is taken away is gone: disabling a user signs them out everywhere at once; failed
sign-ins from one address lock nobody else out; ProxyFix applies in every mode; header mode has live
updates; anonymous requests learn nothing and store nothing."""

import threading
import urllib.request
from contextlib import contextmanager
from http.cookies import SimpleCookie

import pytest
import socketio as socketio_client
from werkzeug.serving import make_server

from prompt_tracker import create_app
from prompt_tracker.auth.accounts import create_user, find_user
from prompt_tracker.domain.keys import session_key
from prompt_tracker.domain.settings import STANDALONE
from prompt_tracker.extensions import db, services, socketio
from prompt_tracker.prompts.library import create_prompt
from prompt_tracker.store.user_sessions import user_sessions

from .conftest import COOKIE, CSRF_RE
from .test_auth import PASSWORD, Browser, make_app

ALICE, BOB = "alice@example.com", "bob@example.com"


def accounts_app(**overrides):
    app = make_app(AUTH_MODE="accounts", **overrides)
    with app.app_context():
        create_user(ALICE, PASSWORD)
        create_user(BOB, PASSWORD)
    return app


def stored_blob(app, store: str):
    with app.app_context():
        return app.session_interface._blob_get(session_key(app.config["SESSION_KEY_PREFIX"], store)).data


# --- a disabled user is signed out at once --------------------------------------------------


def test_disabling_a_user_signs_out_every_session_of_theirs_at_once(monkeypatch):
    app = accounts_app()
    with app.app_context():
        monkeypatch.setattr(services.queue, "enqueue", lambda *a, **k: None)  # the replies stay open
    laptop, phone, bob = (Browser(app.test_client()) for _ in range(3))
    for browser, email in ((laptop, ALICE), (phone, ALICE), (bob, BOB)):
        assert browser.login(email=email).status_code == 303
        browser.send(f"a message from {email}")
    stores = [laptop.store(), phone.store()]
    sockets = [socketio.test_client(app, flask_test_client=browser.client) for browser in (laptop, phone, bob)]
    assert all(sock.is_connected() for sock in sockets)
    with app.app_context():
        workspace = app.session_interface.workspace_id(find_user(ALICE).id)
        assert set(user_sessions(find_user(ALICE).id)) == set(stores)
        open_ids = [message_id for _, message_id in services.conversations.open_replies(workspace)]
    assert len(open_ids) == 2  # one per browser, both in alice's workspace

    disabled = app.test_cli_runner().invoke(args=["users", "disable", ALICE])
    assert disabled.exit_code == 0, disabled.output
    assert "signed out of 2 sessions" in disabled.output

    # Sockets closed, blobs gone, open replies stopped, all before any request; the work stays hers.
    assert not sockets[0].is_connected() and not sockets[1].is_connected()
    with app.app_context():
        conversations = services.conversations
        for store in stores:
            assert stored_blob(app, store) is None
        assert conversations.open_replies(workspace) == []
        assert [m.status for m in conversations.all(workspace, STANDALONE)] == ["done", "stopped"] * 2
        assert user_sessions(find_user(ALICE).id) == []
    # Bob is untouched.
    assert sockets[2].is_connected()
    assert bob.client.get("/playground").status_code == 200

    # Enabling again does not revive the old cookie.
    assert app.test_cli_runner().invoke(args=["users", "disable", ALICE, "--enable"]).exit_code == 0
    assert laptop.client.get("/playground").status_code == 303
    assert laptop.login().status_code == 303  # a new sign-in works


def test_a_disabled_user_is_signed_out_at_their_next_request_even_if_no_index_had_the_session():
    app = accounts_app()
    browser = Browser(app.test_client())
    browser.login()
    browser.send("kept in the workspace when the account is disabled")
    store = browser.store()
    with app.app_context():
        find_user(ALICE).disabled = True  # behind the CLI's back: no sign-out ran
        db.session.commit()
    assert browser.client.get("/playground").status_code == 303
    assert stored_blob(app, store) is None


def test_the_index_of_a_users_sessions_follows_sign_in_and_sign_out():
    app = accounts_app()
    browser = Browser(app.test_client())
    browser.login()
    first = browser.store()
    browser.login()  # a second sign-in rotates the id: the index follows
    second = browser.store()
    with app.app_context():
        user_id = find_user(ALICE).id
        assert user_sessions(user_id) == [second] != [first]
    browser.logout()
    with app.app_context():
        assert user_sessions(user_id) == []


# --- failed sign-ins lock nobody else out ----------------------------------------------------


@pytest.fixture
def proxied_app():
    return accounts_app(
        TRUSTED_PROXIES=["10.0.0.0/8"],
        RATE_LIMIT_LOGINS="3 per 15 minutes",
        RATE_LIMIT_LOGINS_PER_IP="5 per 15 minutes",
        RATE_LIMIT_LOGINS_PER_ACCOUNT="4 per 15 minutes",
        LOGIN_SLOWDOWN_SECONDS=0.3,
    )


def behind_proxy(app, address: str) -> Browser:
    """A browser at ``address`` whose requests reach the app through the trusted proxy 10.0.0.1."""
    client = app.test_client()
    client.environ_base.update(REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=address)
    return Browser(client)


def test_failures_from_one_address_behind_the_proxy_lock_out_no_other_address(proxied_app):
    for email in ("a@example.com", "b@example.com", "c@example.com", "d@example.com", "e@example.com"):
        assert behind_proxy(proxied_app, "192.0.2.1").login(email=email, password="wrong").status_code == 401
    assert behind_proxy(proxied_app, "192.0.2.1").login().status_code == 429
    assert behind_proxy(proxied_app, "192.0.2.2").login().status_code == 303


def test_failures_on_one_account_lock_it_only_for_that_address(proxied_app):
    for _ in range(3):
        assert behind_proxy(proxied_app, "192.0.2.1").login(password="wrong").status_code == 401
    refused = behind_proxy(proxied_app, "192.0.2.1").login()
    assert refused.status_code == 429 and "Too many failed sign-ins" in refused.get_data(as_text=True)
    assert behind_proxy(proxied_app, "192.0.2.2").login().status_code == 303


def test_many_failures_on_an_account_slow_its_sign_in_but_never_refuse_the_right_password(proxied_app, monkeypatch):
    from prompt_tracker.web.auth import routes

    waits = []
    monkeypatch.setattr(routes.time, "sleep", waits.append)
    for address in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
        for _ in range(2):
            assert behind_proxy(proxied_app, address).login(password="wrong").status_code == 401
    assert waits == [0.3, 0.3]  # past 4 failures on the account, from anywhere
    assert behind_proxy(proxied_app, "192.0.2.9").login().status_code == 303
    assert waits == [0.3] * 3
    assert behind_proxy(proxied_app, "192.0.2.9").login(email=BOB).status_code == 303  # another account: no wait
    assert waits == [0.3] * 3


def test_proxy_fix_applies_without_header_mode():
    app = make_app(TRUSTED_PROXIES=["10.0.0.0/8"])

    @app.get("/_address")
    def address():
        from flask import request

        return f"{request.remote_addr} {request.scheme}"

    client = app.test_client()
    proxied = client.get(
        "/_address",
        headers={"X-Forwarded-For": "192.0.2.5", "X-Forwarded-Proto": "https"},
        environ_base={"REMOTE_ADDR": "10.0.0.1"},
    )
    assert proxied.get_data(as_text=True) == "192.0.2.5 https"
    direct = client.get(
        "/_address", headers={"X-Forwarded-For": "192.0.2.5"}, environ_base={"REMOTE_ADDR": "192.0.2.9"}
    )
    assert direct.get_data(as_text=True) == "192.0.2.9 http"


@pytest.fixture
def production_env(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/2")
    monkeypatch.setenv("SECRET_KEY", "x" * 40)
    monkeypatch.setenv("DATABASE_URL", "sqlite://")
    monkeypatch.setenv("AUTH_MODE", "accounts")
    monkeypatch.delenv("TRUSTED_PROXIES", raising=False)
    return monkeypatch


def test_production_accounts_mode_refuses_to_start_without_trusted_proxies(production_env):
    from config import ConfigError

    with pytest.raises(ConfigError, match="TRUSTED_PROXIES=none"):
        create_app("production")
    production_env.setenv("TRUSTED_PROXIES", "none")
    assert create_app("production").config["TRUSTED_PROXIES"] == []
    production_env.setenv("TRUSTED_PROXIES", "10.0.0.1, 10.0.1.0/24")
    assert create_app("production").config["TRUSTED_PROXIES"] == ["10.0.0.1", "10.0.1.0/24"]
    production_env.setenv("AUTH_MODE", "header")
    production_env.setenv("TRUSTED_PROXIES", "none")
    with pytest.raises(ConfigError, match="AUTH_MODE=header needs TRUSTED_PROXIES"):
        create_app("production")


# --- header mode: live updates ---------------------------------------------------------------


@contextmanager
def serving(app):
    """The app on a real HTTP server (werkzeug, threads) on a free port of 127.0.0.1."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)


def page_cookie(url: str, user: str) -> str:
    """The session cookie a proxy user gets from the playground page."""
    request = urllib.request.Request(url + "/playground", headers={"X-Forwarded-User": user})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        cookie = SimpleCookie()
        for header in response.headers.get_all("Set-Cookie"):
            cookie.load(header)
    return cookie[COOKIE].value


def connect(url: str, user: str, sid: str) -> socketio_client.Client:
    client = socketio_client.Client(reconnection=False)
    client.connect(
        url, headers={"X-Forwarded-User": user, "Cookie": f"{COOKIE}={sid}"}, transports=["websocket"], wait_timeout=10
    )
    return client


def test_header_mode_sockets_honour_the_trusted_proxys_user_header():
    app = make_app(AUTH_MODE="header", TRUSTED_PROXIES=["127.0.0.1"], AUTH_HEADER="X-Forwarded-User")
    with serving(app) as url:
        sid = page_cookie(url, "carol")
        carol = connect(url, "carol", sid)
        try:
            assert carol.connected
        finally:
            carol.disconnect()
        # Another user than the session's, or none, is refused.
        for user in ("mallory", ""):
            with pytest.raises(socketio_client.exceptions.ConnectionError):
                connect(url, user, sid).disconnect()


def test_header_mode_sockets_refuse_the_header_from_an_untrusted_peer():
    app = make_app(AUTH_MODE="header", TRUSTED_PROXIES=["10.0.0.0/8"], AUTH_HEADER="X-Forwarded-User")
    with app.test_client() as client:
        client.get("/playground", headers={"X-Forwarded-User": "carol"}, environ_base={"REMOTE_ADDR": "10.0.0.1"})
        sid = client.get_cookie(COOKIE).value
    with serving(app) as url, pytest.raises(socketio_client.exceptions.ConnectionError):
        connect(url, "carol", sid).disconnect()  # the peer 127.0.0.1 is no trusted proxy


# --- anonymous requests learn nothing and store nothing --------------------------------------


def test_an_unknown_and_a_known_prompt_slug_both_send_an_anonymous_visitor_to_sign_in():
    app = accounts_app()
    with app.app_context():
        create_prompt("Greeter", "You greet.", slug="greeter")
    client = app.test_client()
    for slug in ("greeter", "no-such-prompt"):
        for path in (f"/prompts/{slug}/playground", f"/prompts/{slug}"):
            response = client.get(path)
            assert response.status_code == 303, path
            assert response.headers["Location"] == f"/login?next={path}"


def test_anonymous_login_page_views_store_no_session():
    app = accounts_app(SESSION_TYPE="redis")
    client = app.test_client(use_cookies=False)
    for _ in range(200):
        page = client.get("/login")
        assert page.status_code == 200
    assert client.get("/playground").status_code == 303
    with app.app_context():
        assert services.session_redis.keys("*session*") == []
    # The login form still works, its token tied to the browser that got it.
    browser = Browser(app.test_client())
    assert browser.login().status_code == 303
    with app.app_context():
        assert len(services.session_redis.keys("*session*")) == 1


def test_the_login_forms_token_works_only_with_its_own_browsers_cookie():
    app = accounts_app()
    first, second = app.test_client(), app.test_client()
    token = CSRF_RE.search(first.get("/login").get_data(as_text=True)).group(1)
    second.get("/login")
    stolen = second.post("/login", data={"email": ALICE, "password": PASSWORD, "csrf_token": token})
    assert stolen.status_code == 400
    assert first.post("/login", data={"email": ALICE, "password": PASSWORD, "csrf_token": token}).status_code == 303
    assert app.test_client().post("/login", data={"email": ALICE, "password": PASSWORD}).status_code == 400
