"""Signed in, the work follows the user, not the cookie: one workspace per user (conversations, settings,
Compare, Replay), shared by every browser of theirs, kept after sign-out, joined by a visitor's work at
sign-in; without sign-in (AUTH_MODE=none), one per browser session as before."""

import json
import re

import psutil
import pytest

from prompt_tracker.auth.accounts import create_user, find_user
from prompt_tracker.domain.keys import (
    conversation_key,
    is_workspace_id,
    parse_key,
    session_key,
    store_id,
    workspace_id,
)
from prompt_tracker.domain.settings import STANDALONE
from prompt_tracker.extensions import services, socketio
from prompt_tracker.prompts.library import create_prompt

from .conftest import COOKIE, CSRF_RE, Playground
from .test_auth import PASSWORD, Browser, make_app

ALICE, BOB = "alice@example.com", "bob@example.com"
PREFIX = "prompt_tracker:session:"


@pytest.fixture
def app():
    app = make_app(AUTH_MODE="accounts")
    with app.app_context():
        create_user(ALICE, PASSWORD)
        create_user(BOB, PASSWORD)
    return app


def signed_in(app, email=ALICE) -> Browser:
    browser = Browser(app.test_client())
    assert browser.login(email=email).status_code == 303
    return browser


def workspace_of(app, email=ALICE) -> str:
    with app.app_context():
        return app.session_interface.workspace_id(find_user(email).id)


def contents(app, store: str, playground: str = STANDALONE) -> list[str]:
    with app.app_context():
        return [message.content for message in services.conversations.all(store, playground)]


def test_the_workspace_id_is_an_hmac_of_the_secret_and_the_user_id_never_of_a_cookie(app):
    first = workspace_id("secret one", 1)
    assert first == workspace_id("secret one", 1)  # the same user finds it again from any browser
    assert re.fullmatch(r"ws-[0-9a-f]{64}", first) and is_workspace_id(first)
    assert first not in (workspace_id("secret one", 2), workspace_id("secret two", 1))
    assert not is_workspace_id(store_id("a" * 43))
    # Its keys have the same layout and hash tag as a session's; the key parser reads them as one.
    key = conversation_key(PREFIX, first, STANDALONE)
    assert key == f"{PREFIX}{{{first}}}:conversation:{STANDALONE}"
    assert parse_key(PREFIX, key) == (first, STANDALONE)
    assert parse_key(PREFIX, session_key(PREFIX, first)) == (first, None)

    browser = signed_in(app)
    assert workspace_of(app) == workspace_id("test-secret", 1)
    assert workspace_of(app) not in (browser.sid(), browser.store())  # no cookie names it


def test_two_browsers_of_one_user_share_conversation_and_settings_and_sign_out_keeps_them(app):
    laptop, phone = signed_in(app), signed_in(app)
    laptop.save_settings(system_prompt="You are terse.", temperature="0.3")
    laptop.send("written on the laptop")
    page = phone.page().get_data(as_text=True)
    assert "written on the laptop" in page and "You are terse." in page
    assert "kept 30 days after last activity" in page  # USER_WORKSPACE_LIFETIME, not the session's 24 h
    assert "Save settings (yours)" in page and "(this browser)" not in page  # the buttons say whose
    phone.send("answered on the phone")
    workspace = workspace_of(app)
    assert contents(app, workspace)[::2] == ["written on the laptop", "answered on the phone"]
    # Nothing of the work is kept under either browser's own store id; their blobs hold only their own keys.
    for browser in (laptop, phone):
        assert contents(app, browser.store()) == []
        with app.app_context():
            blob = app.session_interface.stored_data(browser.store())
        assert "_user_id" in blob and not {"settings", "conversations"} & set(blob)

    old_cookie = laptop.sid()
    assert laptop.logout().status_code == 303
    stale = app.test_client()
    stale.set_cookie(COOKIE, old_cookie)
    assert stale.get("/playground").status_code == 303  # the cookie's session ended
    with app.app_context():
        assert app.session_interface.stored_data(store_id(old_cookie)) is None
    assert "answered on the phone" in phone.page().get_data(as_text=True)  # the other browser goes on
    laptop.login()
    page = laptop.page().get_data(as_text=True)
    assert "written on the laptop" in page and "answered on the phone" in page and "You are terse." in page

    # Another user has a workspace of their own.
    bob = signed_in(app, BOB)
    assert "written on the laptop" not in bob.page().get_data(as_text=True)
    assert workspace_of(app, BOB) != workspace


def test_reset_still_deletes_the_users_conversation_at_once(app):
    laptop, phone = signed_in(app), signed_in(app)
    laptop.send("to be reset")
    assert phone.reset().status_code == 303
    assert contents(app, workspace_of(app)) == []
    assert "to be reset" not in laptop.page().get_data(as_text=True)


def test_every_tab_of_the_user_hears_the_events_of_any_other(app):
    laptop, phone = signed_in(app), signed_in(app)
    laptop.page()
    listening = socketio.test_client(app, flask_test_client=phone.client)
    assert listening.is_connected()
    laptop.send("heard on the phone")
    events = {packet["name"]: packet["args"][0] for packet in listening.get_received()}
    assert events["message.appended"]["playground"] == STANDALONE
    listening.disconnect()


def test_header_mode_shares_the_workspace_between_browsers_too_and_not_between_users():
    app = make_app(AUTH_MODE="header", TRUSTED_PROXIES=["10.0.0.0/8"])

    def behind_proxy(user: str) -> Playground:
        client = app.test_client()
        client.environ_base.update(REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_USER=user)
        return Playground(client)

    first, second, other = behind_proxy("carol"), behind_proxy("carol"), behind_proxy("dave")
    first.send("carol's from the first browser")
    assert "carol's from the first browser" in second.page().get_data(as_text=True)
    assert "carol's from the first browser" not in other.page().get_data(as_text=True)
    # Compare turned on in one browser is on in the other (its choice and its conversation are the work's).
    assert "now also goes to" not in first.client.get("/playground/compare").get_data(as_text=True)
    token = second.token()
    second.client.post("/playground/compare", data={"provider": "echo", "model": "echo-2", "csrf_token": token})
    assert "now also goes to" in first.client.get("/playground/compare").get_data(as_text=True)


def visitor_in_none_mode(app) -> Playground:
    """A visitor who used the playground before sign-in existed here (the same app, AUTH_MODE=none)."""
    app.config["AUTH_MODE"] = "none"
    visitor = Browser(app.test_client())
    return visitor


def test_a_visitors_work_joins_the_workspace_at_sign_in_without_overwriting_the_users(app):
    with app.app_context():
        prompt = create_prompt("Greeter", "You greet.", slug="greeter")
        prompt_playground = f"prompt-{prompt.id}"
    alice = signed_in(app)
    alice.save_settings(system_prompt="Alice's own prompt")
    alice.send("alice's own conversation")

    visitor = visitor_in_none_mode(app)
    visitor.save_settings(system_prompt="The visitor's prompt")
    visitor.send("the visitor's standalone conversation")
    token = visitor.token("/prompts/greeter/playground")
    visitor.client.post(
        "/prompts/greeter/playground/messages", data={"content": "visitor on greeter", "csrf_token": token}
    )
    visitor_store = visitor.store()
    assert contents(app, visitor_store)[0] == "the visitor's standalone conversation"

    app.config["AUTH_MODE"] = "accounts"
    signing_in = visitor.login()
    assert signing_in.status_code == 303
    workspace = workspace_of(app)
    # A playground the user had no conversation in receives the visitor's.
    assert contents(app, workspace, prompt_playground)[0] == "visitor on greeter"
    # Where the user had one, it stays, and the visitor's is kept beside it as an earlier copy.
    assert contents(app, workspace)[0] == "alice's own conversation"
    assert contents(app, workspace, f"{STANDALONE}~earlier")[0] == "the visitor's standalone conversation"
    assert contents(app, visitor_store) == [] == contents(app, visitor_store, prompt_playground)
    page = visitor.page().get_data(as_text=True)
    assert "Alice&#39;s own prompt" in page or "Alice's own prompt" in page  # the user's settings are not overwritten
    assert "kept beside it" in page  # the sign-in's notice, and the copy's offer on the page
    assert "You already had a conversation in the standalone playground" in page
    # The copy downloads as an export, with the visitor's settings: what Import takes back.
    exported = json.loads(visitor.client.get("/playground/earlier.json").get_data(as_text=True))
    assert exported["messages"][0]["content"] == "the visitor's standalone conversation"
    assert exported["settings"]["system_prompt"] == "The visitor's prompt"
    # The other browser of the user sees the joined work too; discarding the copy deletes it.
    assert "visitor on greeter" in alice.client.get("/prompts/greeter/playground").get_data(as_text=True)
    token = CSRF_RE.search(page).group(1)
    assert visitor.client.post("/playground/earlier/discard", data={"csrf_token": token}).status_code == 303
    assert contents(app, workspace, f"{STANDALONE}~earlier") == []
    assert "kept beside it" not in alice.page().get_data(as_text=True)


def test_without_sign_in_each_browser_keeps_its_own_session_as_before():
    app = make_app()  # AUTH_MODE=none
    first, second = Playground(app.test_client()), Playground(app.test_client())
    first.save_settings(system_prompt="first browser")
    first.send("only in the first browser")
    assert contents(app, first.store())[0] == "only in the first browser"
    assert first.store() == store_id(first.sid())
    page = second.page().get_data(as_text=True)
    assert "only in the first browser" not in page
    assert "Save settings (this browser)" in page
    with app.app_context():
        blob = app.session_interface.stored_data(first.store())
        assert blob["settings"][STANDALONE]["system_prompt"] == "first browser"
        assert not [key for key in services.session_redis.keys("*") if b"{ws-" in key]


def test_the_session_tools_show_workspaces_marked_as_such(app):
    laptop = signed_in(app)
    laptop.send("in the workspace")
    workspace = workspace_of(app)
    runner = app.test_cli_runner()
    listing = runner.invoke(args=["sessions", "list"])
    assert listing.exit_code == 0, listing.output
    rows = {line.split()[0]: line.split() for line in listing.output.splitlines()[1:-1]}
    assert rows[workspace[:11] + "…"][1:2] == ["workspace"]
    assert rows[laptop.store()[:8] + "…"][1:2] == ["session"]
    assert rows[workspace[:11] + "…"][3] in ("29d23h", "30d00h")  # expires with USER_WORKSPACE_LIFETIME
    shown = runner.invoke(args=["sessions", "show", workspace[:12]])
    assert shown.output.startswith(f"Workspace {workspace}\n") and "in the workspace" in shown.output
    stats = runner.invoke(args=["sessions", "stats"])
    assert "Sessions: 2, of which 1 users' workspaces" in stats.output
    sessions_only = runner.invoke(args=["sessions", "purge", "--kind", "session", "--yes"])
    assert sessions_only.exit_code == 0 and "Purged 1 session" in sessions_only.output
    assert contents(app, workspace)[0] == "in the workspace"
    purged = runner.invoke(args=["sessions", "purge", "--sid", workspace, "--yes"])
    assert purged.exit_code == 0 and "Purged 1 session" in purged.output
    assert contents(app, workspace) == []


# --- on a real Redis, with a real worker -----------------------------------------------------


@pytest.mark.integration
def test_two_browsers_of_one_user_on_redis_see_one_conversation_and_its_live_reply(
    real_redis, start_worker, monkeypatch, tmp_path
):
    import socketio as socketio_client

    from prompt_tracker import create_app
    from prompt_tracker.extensions import db

    from .conftest import service_env, wait_for
    from .test_access import serving
    from .test_session_store_efficiency import commands

    env = {"AUTH_MODE": "accounts", "DATABASE_URL": f"sqlite:///{tmp_path / 'users.sqlite3'}", "ECHO_DELAY": "0.02"}
    for key, value in {**service_env(real_redis), **env}.items():
        monkeypatch.setenv(key, value)
    app = create_app("development", overrides={"DEBUG": False})
    with app.app_context():
        db.create_all()
        create_user(ALICE, PASSWORD)
    worker = start_worker(env)
    laptop, phone = Browser(app.test_client()), Browser(app.test_client())
    assert laptop.login().status_code == phone.login().status_code == 303
    workspace = workspace_of(app)

    received = []
    with serving(app) as url:
        listener = socketio_client.Client(reconnection=False)
        listener.on("*", lambda event, data: received.append((event, data)))
        listener.connect(url, headers={"Cookie": f"{COOKIE}={phone.sid()}"}, transports=["websocket"], wait_timeout=10)
        try:
            laptop.send("hello from the laptop")
            # The phone's socket hears the laptop's send and the worker's reply, through the user's room.
            wait_for(lambda: any(event == "message.done" for event, _ in received), timeout=60)
        finally:
            listener.disconnect()
    assert "message.appended" in [event for event, _ in received]
    page = phone.page().get_data(as_text=True)
    assert "hello from the laptop" in page and "You said: hello from the laptop" in page

    db2 = real_redis.client(2)
    day, month = 24 * 3600, 30 * 24 * 3600
    assert month - 60 <= db2.ttl(conversation_key(PREFIX, workspace, STANDALONE)) <= month
    assert month - 60 <= db2.ttl(session_key(PREFIX, workspace)) <= month
    assert day - 60 <= db2.ttl(session_key(PREFIX, phone.store())) <= day  # a browser's session: 24 h

    # A signed-in page view costs two round trips, as one without sign-in: GET the browser's blob; then
    # one pipeline: the window's script (which reads the workspace's blob, the window, the open replies,
    # and pushes the expiry of the workspace's blob and of the conversations it names) and the EXPIRE of
    # the browser's blob (another hash slot).
    import redis.connection

    sent = []
    original = redis.connection.AbstractConnection.send_packed_command

    def counting(connection, command, check_health=True):
        sent.append(connection.db)
        return original(connection, command, check_health)

    # The server counts every client's commands: the worker's own (RQ's registries, its heartbeat) are not
    # the page view's, so it is held still meanwhile.
    worker_processes = [psutil.Process(worker.pid), *psutil.Process(worker.pid).children(recursive=True)]
    for process in worker_processes:
        process.suspend()
    try:
        db2.config_resetstat()
        with monkeypatch.context() as patch:
            patch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
            phone.page()
        counts = commands(db2)
    finally:
        for process in worker_processes:
            process.resume()
    assert sent.count(2) == 2
    assert counts == {"get": 2, "evalsha": 1, "expire": 3, "llen": 1, "lrange": 1, "zrange": 1}
