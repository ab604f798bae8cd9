"""A team deployment on the real path: AUTH_MODE=accounts, users in a real PostgreSQL, the web
process and a worker on a private Redis. Sign-in and sign-out in Chromium (the session id rotates,
the old one stops working, sign-out deletes the session's keys), and the per-user limits over real
HTTP with several users sending at once."""

import subprocess
import threading
import urllib.parse
from http.cookies import SimpleCookie

import pytest
from rq import Queue
from rq.serializers import JSONSerializer

from prompt_tracker.domain.keys import store_id, workspace_id
from prompt_tracker.web.auth.login_token import COOKIE as LOGIN_COOKIE

from .conftest import COOKIE, CSRF_RE, press_send, screenshot, service_env
from .processes import kill, run_flask, spawn_worker, wait_for, web_process
from .test_concurrency import Browser

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery staple"
USERS = ("alice@example.com", "bob@example.com", "carol@example.com")


def flask(env: dict, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return run_flask(["--app", "wsgi", *args], env, input=stdin)


@pytest.fixture
def team_env(real_redis, postgres_server, monkeypatch):
    """Environment of a deployment with accounts: a migrated PostgreSQL database holding three users."""
    from prompt_tracker import create_app
    from prompt_tracker.extensions import db

    env = {
        **service_env(real_redis),
        "AUTH_MODE": "accounts",
        "DATABASE_URL": postgres_server.create_database(migrated=True),
    }
    # The same command, run in this process: a `flask` process for each user took seconds.
    with monkeypatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        app = create_app("development", overrides={"DEBUG": False})
    runner = app.test_cli_runner()
    for email in USERS:
        created = runner.invoke(args=["users", "create", email, "--password-stdin"], input=PASSWORD + "\n")
        assert created.exit_code == 0, created.output
    with app.app_context():
        db.engine.dispose()
    return env


def session_keys(real_redis, sid: str) -> list[bytes]:
    return list(real_redis.client(2).scan_iter(match=f"*{{{store_id(sid)}}}*"))


def sign_in(page, url: str, email: str, password: str = PASSWORD) -> None:
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("button:has-text('Sign in')")


def session_cookie(context) -> str | None:
    return next((cookie["value"] for cookie in context.cookies() if cookie["name"] == COOKIE), None)


def test_sign_in_rotates_the_session_and_sign_out_ends_it_in_chromium(chromium, team_env, real_redis, tmp_path):
    worker = spawn_worker(team_env, tmp_path / "worker.log")
    try:
        with web_process(team_env, tmp_path / "web.log") as url:
            wait_for(lambda: real_redis.client(0).scard("rq:workers") > 0, timeout=60)
            context = chromium.new_context(viewport={"width": 1280, "height": 800})
            page = context.new_page()
            errors = []
            page.on("pageerror", lambda error: errors.append(str(error)))

            # A page of the app sends an anonymous visitor to the sign-in page, and back after it.
            page.goto(url + "/playground")
            assert urllib.parse.urlsplit(page.url).path == "/login"
            assert "next=%2Fplayground" in page.url or "next=/playground" in page.url
            screenshot(page, "sign-in-laptop")

            # A wrong password: the generic sentence, the email kept, the password not.
            sign_in(page, url, USERS[0], "wrong password")
            page.wait_for_selector(".form-error")
            assert page.inner_text(".form-error") == "That email and password do not match an account."
            assert page.input_value("#email") == USERS[0] and page.input_value("#password") == ""
            # Neither the sign-in page nor a failed sign-in stores a session.
            assert session_cookie(context) is None
            assert list(real_redis.client(2).scan_iter(match="*session*")) == []

            sign_in(page, url, USERS[0])
            page.wait_for_url(url + "/playground")
            after = session_cookie(context)
            assert after  # the session begins at sign-in, with a new id
            assert page.inner_text(".user-name") == USERS[0]

            page.fill("#content", "hello from alice")
            press_send(page)
            page.wait_for_selector(".message-assistant.status-done")
            assert "You said: hello from alice" in page.inner_text(".message-assistant .body")
            assert session_keys(real_redis, after)  # blob and conversation

            # Another user, another browser: none of alice's conversation.
            other = chromium.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
            phone = other.new_page()
            phone.goto(url + "/playground")
            screenshot(phone, "sign-in-phone")
            sign_in(phone, url, USERS[1])
            phone.wait_for_url(url + "/playground")
            assert phone.inner_text(".user-name") == USERS[1]
            assert "hello from alice" not in phone.content()
            screenshot(phone, "signed-in-phone")
            other.close()

            # Sign out: back to the sign-in page with a notice, every key of the browser's session deleted.
            page.click(".signed-in button:has-text('Sign out')")
            page.wait_for_url(lambda address: urllib.parse.urlsplit(address).path == "/login")
            assert "You are signed out." in page.content(), (page.url, page.inner_text("main")[:300])
            assert session_keys(real_redis, after) == []
            page.goto(url + "/playground")
            assert urllib.parse.urlsplit(page.url).path == "/login"
            replayed = Browser(url, cookie=after).request("GET", "/playground")
            assert replayed.status == 303  # the signed-out id is no session any more

            # Signing in again, the work is there: it is the user's, kept in their workspace.
            sign_in(page, url, USERS[0])
            page.wait_for_url(url + "/playground")
            page.wait_for_selector(".message-assistant.status-done")
            assert "You said: hello from alice" in page.inner_text(".message-assistant .body")
            screenshot(page, "signed-in-again-laptop")
            context.close()
            assert errors == []
    finally:
        kill(worker)


def signed_in_browser(url: str, email: str) -> Browser:
    """A real-HTTP client signed in as ``email``, with the playground's CSRF token."""
    browser = Browser(url)
    login = browser.request("GET", "/login")
    token = CSRF_RE.search(login.text).group(1)
    # The login form's token goes with a cookie of its own (no session exists before signing in).
    jar = SimpleCookie()
    for header in login.headers.get_all("Set-Cookie"):
        jar.load(header)
    login_cookie = f"{LOGIN_COOKIE}={jar[LOGIN_COOKIE].value}"
    body = urllib.parse.urlencode({"email": email, "password": PASSWORD, "csrf_token": token}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": login_cookie}
    answer = browser.request("POST", "/login", body, headers)
    assert answer.status == 303, answer.text
    assert browser.page().status == 200
    return browser


def test_rate_limits_hold_per_user_with_several_users_sending_at_once(team_env, real_redis, tmp_path):
    """Three users send 5 messages each, all at once, under a 3-per-minute limit: 3 each go, 2 each are refused."""
    env = {**team_env, "RATE_LIMIT_SENDS": "3/minute"}
    with web_process(env, tmp_path / "web.log") as url:
        browsers = {email: signed_in_browser(url, email) for email in USERS}
        answers: dict[str, list] = {email: [] for email in USERS}
        start = threading.Barrier(len(USERS) * 5)

        def send(email: str, index: int) -> None:
            start.wait()
            answer = browsers[email].tab().send(f"{email} message {index}", headers={"Accept": "application/json"})
            answers[email].append(answer)

        threads = [threading.Thread(target=send, args=(email, i)) for email in USERS for i in range(5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)

        for email in USERS:
            statuses = sorted(answer.status for answer in answers[email])
            assert statuses == [202, 202, 202, 429, 429], (email, statuses)
            refused = [answer for answer in answers[email] if answer.status == 429]
            for answer in refused:
                assert "Too many messages: the limit is 3 per minute. Try again in" in answer.text
        # Nothing queued for a refused send: one job per accepted message.
        queue = Queue("prompt_tracker", connection=real_redis.client(0), serializer=JSONSerializer)
        assert queue.count == 3 * len(USERS)
        # Each user's page holds their own three messages and none of the others'.
        for email, browser in browsers.items():
            page = browser.page().text
            assert sum(f"{email} message {i}" in page for i in range(5)) == 3
            assert not any(other in page for other in USERS if other != email)


def test_flask_users_disable_signs_the_user_out_of_the_web_process_at_once(team_env, real_redis, tmp_path):
    """`flask users disable`, another process: the user's socket is closed, their session's keys deleted,
    their open reply stopped (in their workspace, which is kept); enabling them again does not revive
    the old cookie."""
    import socketio

    with web_process(team_env, tmp_path / "web.log") as url:
        alice, bob = signed_in_browser(url, USERS[0]), signed_in_browser(url, USERS[1])
        # No worker runs: the reply stays open until the sign-out stops it.
        sent = alice.tab().send("an open reply", headers={"Accept": "application/json"})
        assert sent.status == 202, sent.text
        sockets = {}
        for email, browser in ((USERS[0], alice), (USERS[1], bob)):
            sockets[email] = socketio.Client(reconnection=False)
            sockets[email].connect(url, headers={"Cookie": f"{COOKIE}={browser.cookie}"}, transports=["websocket"])
        store = store_id(alice.cookie)
        assert real_redis.client(0).smembers("prompt_tracker:user:1:sessions") == {store.encode()}

        disabled = flask(team_env, "users", "disable", USERS[0])
        assert disabled.returncode == 0, disabled.stderr
        assert f"Disabled {USERS[0]}: signed out of 1 session." in disabled.stdout

        wait_for(lambda: not sockets[USERS[0]].connected, timeout=10)
        assert list(real_redis.client(2).scan_iter(match=f"*{{{store}}}*")) == []
        workspace = workspace_id(team_env.get("SECRET_KEY", "dev-only-not-secret"), 1)
        assert real_redis.client(2).zcard(f"prompt_tracker:session:{{{workspace}}}:open") == 0  # the reply stopped
        assert real_redis.client(2).llen(f"prompt_tracker:session:{{{workspace}}}:conversation:standalone") == 2
        assert sockets[USERS[1]].connected and bob.page().status == 200
        assert alice.page().status == 303

        assert flask(team_env, "users", "disable", USERS[0], "--enable").returncode == 0
        assert Browser(url, cookie=alice.cookie).page().status == 303  # the old cookie stays dead
        assert signed_in_browser(url, USERS[0]).page().status == 200
        for client in sockets.values():
            client.disconnect()


def test_a_user_holds_at_most_max_sockets_across_sessions_and_web_processes(team_env, real_redis, tmp_path):
    """Signed in, the cap counts the user's sockets in all their sessions: one more closes the oldest,
    held by another web process; another user's socket is not touched."""
    import socketio

    env = {**team_env, "MAX_SOCKETS_PER_USER": "2"}
    with web_process(env, tmp_path / "web-a.log") as web_a, web_process(env, tmp_path / "web-b.log") as web_b:
        laptop, phone = signed_in_browser(web_a, USERS[0]), signed_in_browser(web_a, USERS[0])
        bob = signed_in_browser(web_a, USERS[1])
        assert laptop.cookie != phone.cookie

        def open_socket(url, browser):
            client = socketio.Client(reconnection=False)
            client.connect(url, headers={"Cookie": f"{COOKIE}={browser.cookie}"}, transports=["websocket"])
            return client

        sockets = [open_socket(web_a, laptop), open_socket(web_b, phone), open_socket(web_a, bob)]
        try:
            assert all(client.connected for client in sockets)
            sockets.append(open_socket(web_b, laptop))  # alice's third: her oldest (on web A) is closed
            wait_for(lambda: not sockets[0].connected, timeout=10)
            assert [client.connected for client in sockets[1:]] == [True, True, True]
            held = real_redis.client(0).zrange("prompt_tracker:user:1:sockets", 0, -1)
            assert [member.decode() for member in held] == [sockets[1].get_sid("/"), sockets[3].get_sid("/")]
        finally:
            for client in sockets:
                client.disconnect()
