"""Sign-in: accounts (Flask-Login), header (trusted proxy) and none; rotation, sign-out, disabling, limits."""

import pytest

from prompt_tracker import create_app
from prompt_tracker.auth.accounts import create_user, find_user, set_disabled
from prompt_tracker.auth.models import User
from prompt_tracker.domain.keys import store_id
from prompt_tracker.extensions import db

from .conftest import COOKIE, CSRF_RE, Playground
from .postgres_server import PostgresServer

PASSWORD = "correct horse battery staple"


def make_app(**overrides):
    app = create_app("test", overrides=overrides)
    with app.app_context():
        db.create_all()
    return app


@pytest.fixture
def accounts_app():
    app = make_app(
        AUTH_MODE="accounts", RATE_LIMIT_LOGINS="3 per 15 minutes", RATE_LIMIT_LOGINS_PER_IP="5 per 15 minutes"
    )
    with app.app_context():
        create_user("alice@example.com", PASSWORD)
        create_user("bob@example.com", PASSWORD)
    return app


class Browser(Playground):
    """A person with a browser: signs in and out, and uses the playground."""

    def token(self, path="/playground") -> str:
        return CSRF_RE.search(self.client.get(path).get_data(as_text=True)).group(1)

    def login(self, email="alice@example.com", password=PASSWORD, next_path=None):
        token = self.token("/login")
        query = {"next": next_path} if next_path else None
        return self.client.post(
            "/login", query_string=query, data={"email": email, "password": password, "csrf_token": token}
        )

    def logout(self):
        return self.client.post("/logout", data={"csrf_token": self.token()})


def test_an_anonymous_page_view_is_sent_to_the_login_page(accounts_app):
    response = accounts_app.test_client().get("/playground")
    assert response.status_code == 303
    assert response.headers["Location"] == "/login?next=/playground"
    assert accounts_app.test_client().get("/healthz").status_code == 200


def test_wrong_email_and_wrong_password_get_the_same_generic_answer(accounts_app):
    browser = Browser(accounts_app.test_client())
    wrong_password = browser.login(password="not the password")
    wrong_email = browser.login(email="nobody@example.com")
    assert wrong_password.status_code == wrong_email.status_code == 401
    sentence = "That email and password do not match an account."
    assert sentence in wrong_password.get_data(as_text=True) and sentence in wrong_email.get_data(as_text=True)
    assert browser.client.get("/playground").status_code == 303


def test_login_without_csrf_token_is_refused(accounts_app):
    response = accounts_app.test_client().post("/login", data={"email": "alice@example.com", "password": PASSWORD})
    assert response.status_code == 400


def test_login_goes_to_next_only_on_this_site(accounts_app):
    browser = Browser(accounts_app.test_client())
    assert browser.login(next_path="/prompts").headers["Location"] == "/prompts"
    other = Browser(accounts_app.test_client())
    assert other.login(next_path="//evil.example/x").headers["Location"] == "/"


def test_login_rotates_the_session_id_and_the_old_id_stops_working(accounts_app):
    browser = Browser(accounts_app.test_client())
    browser.client.get("/login")
    assert browser.sid() is None  # the login page stores no session: signing in creates it
    assert browser.login().status_code == 303
    before = browser.sid()
    assert before
    page = browser.client.get("/playground")
    assert page.status_code == 200 and "alice@example.com" in page.get_data(as_text=True)
    assert browser.login().status_code == 303  # signing in again, from a session: a new id
    after = browser.sid()
    assert after and after != before
    assert browser.client.get("/playground").status_code == 200
    stale = accounts_app.test_client()
    stale.set_cookie(COOKIE, before)
    assert stale.get("/playground").status_code == 303


def test_a_second_login_keeps_the_conversation(accounts_app):
    browser = Browser(accounts_app.test_client())
    browser.login()
    browser.send("kept across the rotation")
    first = browser.sid()
    assert browser.login().status_code == 303
    assert browser.sid() != first
    assert "kept across the rotation" in browser.page().get_data(as_text=True)


def test_logout_ends_the_session_and_keeps_the_users_work(accounts_app):
    browser = Browser(accounts_app.test_client())
    browser.login()
    browser.send("kept after logout")
    sid = browser.sid()
    response = browser.logout()
    assert response.status_code == 303 and response.headers["Location"] == "/login"
    stale = accounts_app.test_client()
    stale.set_cookie(COOKIE, sid)
    assert stale.get("/playground").status_code == 303
    with accounts_app.app_context():  # the browser session's own keys are gone (there were none but its blob)
        assert accounts_app.session_interface.stored_data(store_id(sid)) is None
    browser.login()
    assert "kept after logout" in browser.page().get_data(as_text=True)


def test_a_disabled_user_is_signed_out_at_the_next_request_and_cannot_sign_in(accounts_app):
    browser = Browser(accounts_app.test_client())
    browser.login()
    assert browser.client.get("/playground").status_code == 200
    with accounts_app.app_context():
        set_disabled("alice@example.com")
    assert browser.client.get("/playground").status_code == 303
    assert browser.login().status_code == 401


def test_failed_logins_are_limited_per_account_and_address_with_a_sentence(accounts_app):
    for _ in range(3):
        assert Browser(accounts_app.test_client()).login(password="wrong").status_code == 401
    # The account is locked for now from this address, even with the right password...
    refused = Browser(accounts_app.test_client()).login()
    assert refused.status_code == 429
    text = refused.get_data(as_text=True)
    assert "Too many failed sign-ins" in text and "Try again in" in text
    # ...while another account signs in as usual (other addresses: tests/test_access.py).
    assert Browser(accounts_app.test_client()).login(email="bob@example.com").status_code == 303


def test_failed_logins_are_limited_per_address(accounts_app):
    for email in ("a@example.com", "b@example.com", "c@example.com", "d@example.com", "e@example.com"):
        Browser(accounts_app.test_client()).login(email=email, password="wrong")
    refused = Browser(accounts_app.test_client()).login(email="bob@example.com")
    assert refused.status_code == 429


def test_prompts_record_their_author(accounts_app):
    browser = Browser(accounts_app.test_client())
    browser.login()
    token = browser.token("/prompts")
    created = browser.client.post("/prompts", data={"name": "Greeter", "system_prompt": "Hi", "csrf_token": token})
    assert created.status_code == 303
    page = browser.client.get(created.headers["Location"]).get_data(as_text=True)
    assert "alice@example.com" in page


@pytest.mark.integration
def test_signed_in_pages_answer_the_503_page_while_postgresql_is_stopped():
    """Accounts mode loads the user from the database on every request: when PostgreSQL stops, a
    signed-in page is the app's 503 page (or JSON), never a bare 500 from the server."""
    server = PostgresServer().start()
    app = make_app(
        AUTH_MODE="accounts",
        SQLALCHEMY_DATABASE_URI=server.create_database(),
        PROPAGATE_EXCEPTIONS=False,  # as in production: what no handler answers becomes the server's 500
    )
    try:
        with app.app_context():
            create_user("alice@example.com", PASSWORD)
        browser = Browser(app.test_client())
        assert browser.login().status_code == 303
        assert browser.client.get("/playground").status_code == 200
        server.stop()  # mid-test: the pool's connection breaks, then new ones are refused
        for path in ("/playground", "/prompts", "/playground/export.json", "/playground"):
            response = browser.client.get(path)
            assert response.status_code == 503, path
            assert "The user database is not reachable right now" in response.get_data(as_text=True), path
        answer = browser.client.get("/playground", headers={"Accept": "application/json"})
        assert answer.status_code == 503
        assert answer.get_json()["error"].startswith("The user database is not reachable right now")
        assert browser.client.get("/healthz").status_code == 503
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        server.stop()


# --- header mode ----------------------------------------------------------------------------


@pytest.fixture
def header_app():
    return make_app(AUTH_MODE="header", TRUSTED_PROXIES=["10.0.0.0/8"], AUTH_HEADER="X-Forwarded-User")


def test_the_proxy_user_header_is_honoured_from_a_trusted_proxy(header_app):
    client = header_app.test_client()
    page = client.get(
        "/playground",
        headers={"X-Forwarded-User": "carol", "X-Forwarded-For": "192.0.2.7"},
        environ_base={"REMOTE_ADDR": "10.1.2.3"},
    )
    assert page.status_code == 200 and "carol" in page.get_data(as_text=True)
    with header_app.app_context():
        assert find_user("carol") is not None


def test_the_header_from_anywhere_else_is_refused(header_app):
    page = header_app.test_client().get(
        "/playground", headers={"X-Forwarded-User": "mallory"}, environ_base={"REMOTE_ADDR": "192.0.2.66"}
    )
    assert page.status_code == 401
    assert "did not come through" in page.get_data(as_text=True)
    with header_app.app_context():
        assert find_user("mallory") is None


def test_another_proxy_user_on_the_same_cookie_gets_a_fresh_session(header_app):
    client = header_app.test_client()
    trusted = {"REMOTE_ADDR": "10.0.0.1"}
    carol = Playground(client)
    client.get("/playground", headers={"X-Forwarded-User": "carol"}, environ_base=trusted)
    token = CSRF_RE.search(
        client.get("/playground", headers={"X-Forwarded-User": "carol"}, environ_base=trusted).get_data(as_text=True)
    ).group(1)
    client.post(
        "/playground/messages",
        data={"content": "carol's secret", "csrf_token": token},
        headers={"X-Forwarded-User": "carol"},
        environ_base=trusted,
    )
    page = client.get("/playground", headers={"X-Forwarded-User": "dave"}, environ_base=trusted)
    assert page.status_code == 200 and "carol's secret" not in page.get_data(as_text=True)
    assert carol.messages(header_app) == []


@pytest.mark.parametrize(
    "name",
    [
        "u" * 255,  # a user name is at most 254 characters (the users table's email column)
        "é" * 300,
        "carol\x00admin",  # a NUL byte, which PostgreSQL text refuses
        "carol\x1b[31m",
    ],
)
@pytest.mark.parametrize("accept", ["text/html", "application/json"])
def test_a_proxy_user_name_that_cannot_be_a_user_is_a_400_with_a_sentence(header_app, name, accept):
    response = header_app.test_client().get(
        "/playground",
        headers={"X-Forwarded-User": name.encode().decode("latin-1"), "Accept": accept},
        environ_base={"REMOTE_ADDR": "10.1.2.3"},
    )
    assert response.status_code == 400
    sentence = "The reverse proxy named a user this app cannot take"
    if accept == "application/json":
        assert response.get_json()["error"].startswith(sentence)
    else:
        assert sentence in response.get_data(as_text=True)
    with header_app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(User)) == 0


# --- configuration and CLI -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environment", "sentence"),
    [
        ({"AUTH_MODE": "none"}, "AUTH_MODE=none"),
        ({"AUTH_MODE": "header"}, "AUTH_MODE=header needs TRUSTED_PROXIES"),
        ({"AUTH_MODE": "header", "TRUSTED_PROXIES": "proxy.internal"}, "is not an IP address or network"),
        ({"AUTH_MODE": "sometimes"}, "AUTH_MODE must be one of none, accounts, header"),
    ],
)
def test_production_refuses_unsafe_sign_in_settings(monkeypatch, environment, sentence):
    from config import ConfigError

    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/2")
    monkeypatch.setenv("SECRET_KEY", "x" * 40)
    monkeypatch.setenv("DATABASE_URL", "sqlite://")
    monkeypatch.delenv("TRUSTED_PROXIES", raising=False)
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match=sentence):
        create_app("production")


def test_users_cli_creates_lists_and_disables(accounts_app):
    runner = accounts_app.test_cli_runner()
    created = runner.invoke(
        args=["users", "create", "Erin@Example.com", "--admin", "--password-stdin"], input=PASSWORD + "\n"
    )
    assert created.exit_code == 0 and "Created admin user erin@example.com." in created.output
    again = runner.invoke(args=["users", "create", "erin@example.com", "--password-stdin"], input=PASSWORD + "\n")
    assert again.exit_code != 0 and "There is already a user erin@example.com." in again.output
    short = runner.invoke(args=["users", "create", "frank@example.com", "--password-stdin"], input="short\n")
    assert short.exit_code != 0 and "at least 12 characters" in short.output
    prompted = runner.invoke(args=["users", "create", "gina@example.com"], input=f"{PASSWORD}\n{PASSWORD}\n")
    assert prompted.exit_code == 0, prompted.output
    disabled = runner.invoke(args=["users", "disable", "erin@example.com"])
    assert disabled.exit_code == 0 and "Disabled erin@example.com: signed out of 0 sessions." in disabled.output
    listed = runner.invoke(args=["users", "list"])
    assert "erin@example.com\tadmin\tdisabled" in listed.output and listed.output.strip().endswith("4 users.")
    assert Browser(accounts_app.test_client()).login(email="erin@example.com").status_code == 401


def test_no_sign_in_in_development_by_default():
    app = make_app()
    page = app.test_client().get("/playground")
    assert page.status_code == 200 and "Sign out" not in page.get_data(as_text=True)
    assert app.test_client().get("/login").status_code == 404


def test_sockets_need_a_signed_in_session_and_signing_out_disconnects_them(accounts_app):
    from prompt_tracker.extensions import socketio

    browser = Browser(accounts_app.test_client())
    browser.client.get("/login")  # a stored session, but nobody signed in
    anonymous = socketio.test_client(accounts_app, flask_test_client=browser.client)
    assert not anonymous.is_connected()

    browser.login()
    signed_in = socketio.test_client(accounts_app, flask_test_client=browser.client)
    assert signed_in.is_connected()
    browser.logout()
    assert not signed_in.is_connected()
