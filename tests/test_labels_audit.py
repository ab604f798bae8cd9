"""Issue 20: labels on versions (moves, rollback, protected labels), accounts and admins, the audit log.

Unit tests on the test config (in-memory SQLite, cachelib sessions, fakeredis); the last tests run the
same on the private PostgreSQL server (tests/postgres_server.py) and the migration on both databases.
"""

import json
import threading

import flask_migrate
import pytest
from sqlalchemy import event, inspect, select, text
from sqlalchemy.exc import DBAPIError

from prompt_tracker import create_app
from prompt_tracker.audit import EVENT_KINDS, AuditEvent, event_committed, record_event
from prompt_tracker.auth.accounts import create_user, find_user
from prompt_tracker.domain.settings import PlaygroundSettings
from prompt_tracker.extensions import db
from prompt_tracker.prompts.labels import (
    AmbiguousVersion,
    LabelInvalid,
    LabelProtected,
    VersionNotFound,
    move_label,
    resolve_version,
)
from prompt_tracker.prompts.library import create_prompt, find_prompt, save_version

from .conftest import COOKIE, CSRF_RE

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "a new and longer passphrase"


def make_app(**overrides):
    app = create_app("test", overrides=overrides)
    with app.app_context():
        db.create_all()
    return app


def close(app):
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


class Person:
    """Someone with a browser: signs in, posts the app's forms with their CSRF token."""

    def __init__(self, app):
        self.app = app
        self.client = app.test_client()

    def token(self, path="/prompts") -> str:
        return CSRF_RE.search(self.client.get(path).get_data(as_text=True)).group(1)

    def login(self, email, password=PASSWORD):
        return self.client.post(
            "/login", data={"email": email, "password": password, "csrf_token": self.token("/login")}
        )

    def post(self, path, headers=None, **fields):
        return self.client.post(path, data={**fields, "csrf_token": self.token()}, headers=headers)


def three_versions(app, slug="support"):
    """A prompt with versions 1, 2 and 3 (system prompts "v1", "v2 {{ who }}", "v3")."""
    with app.app_context():
        prompt = create_prompt(slug.title(), "v1", slug=slug, author="ann")
        for text_ in ("v2 {{ who }}", "v3"):
            save_version(
                prompt.id,
                system_prompt=text_,
                provider="echo",
                model="echo-1",
                params=PlaygroundSettings().params(),  # as a playground saves them
                variables={"who": "Ada"},
            )
        return prompt.id


def events(app, **where):
    with app.app_context():
        statement = select(AuditEvent).order_by(AuditEvent.id)
        for name, value in where.items():
            statement = statement.where(getattr(AuditEvent, name) == value)
        found = list(db.session.scalars(statement))
        db.session.expunge_all()
        return found


# --- labels ------------------------------------------------------------------------------------


def test_labels_move_roll_back_resolve_and_load_the_playground_as_the_local_admin():
    app = make_app()  # AUTH_MODE=none: everyone is the local admin, production included
    three_versions(app)
    announced = []
    event_committed.connect(lambda sender, event: announced.append(event), app, weak=False)
    person = Person(app)

    moved = person.post("/prompts/support/labels", label="production", version="2")
    assert moved.status_code == 303 and moved.headers["Location"] == "/prompts/support#v2"
    assert person.post("/prompts/support/labels", label="Staging ", version="3").status_code == 303
    assert person.post("/prompts/support/labels", label="production", version="3").status_code == 303
    back = person.post("/prompts/support/labels", label="production", version="2")  # the rollback
    assert "moved from version 3 to version 2" in person.client.get(back.headers["Location"]).get_data(as_text=True)
    same = person.post("/prompts/support/labels", label="production", version="2")  # no move: no event
    assert "already points at version 2" in person.client.get(same.headers["Location"]).get_data(as_text=True)

    for label, version, status, sentence in [
        ("latest", "1", 422, "latest always means the newest version"),
        ("Not OK!", "1", 422, "is not one"),
        ("x" * 41, "1", 422, "is not one"),
        ("canary", "9", 404, "has no version"),
    ]:
        refused = person.post("/prompts/support/labels", label=label, version=version)
        assert refused.status_code == status and sentence in refused.get_data(as_text=True), label
        answer = person.post(
            "/prompts/support/labels", label=label, version=version, headers={"Accept": "application/json"}
        )
        assert answer.status_code == status and sentence in answer.get_json()["error"]

    shown = person.client.get("/prompts/support").get_data(as_text=True)
    assert shown.count('label-badge label-protected">production<') == 1
    version_2 = shown.split('id="v2"')[1].split("</li>")[0]
    assert "production" in version_2 and "staging" not in version_2
    version_3 = shown.split('id="v3"')[1].split("</li>")[0]
    assert ">latest<" in version_3 and ">staging<" in version_3
    assert '<option value="production">production (version 2)</option>' in shown

    with app.app_context():
        prompt = find_prompt("support")
        assert resolve_version(prompt, "production").number == 2
        assert resolve_version(prompt, "staging").number == 3
        assert resolve_version(prompt).number == resolve_version(prompt, "latest").number == 3
        assert resolve_version(prompt, version="1").number == resolve_version(prompt, version=1).number == 1
        for label, version, refusal in [("nope", None, VersionNotFound), (None, 7, VersionNotFound)]:
            with pytest.raises(refusal):
                resolve_version(prompt, label, version)
        with pytest.raises(AmbiguousVersion):
            resolve_version(prompt, "production", 2)
        with pytest.raises(LabelInvalid):
            move_label(prompt, "latest", 1, "local", admin=True)
        with pytest.raises(LabelProtected):
            move_label(prompt, "production", 1, "someone", admin=False)

    moves = [
        (e.detail["label"], e.detail["from_version"], e.detail["to_version"]) for e in events(app, kind="label.moved")
    ]
    assert moves == [("production", None, 2), ("staging", None, 3), ("production", 2, 3), ("production", 3, 2)]
    # The webhooks' call site: each committed label move and version, once, after its commit.
    assert [(e["kind"], e["detail"].get("label") or e["detail"]["version"]) for e in announced] == [
        ("label.moved", "production"),
        ("label.moved", "staging"),
        ("label.moved", "production"),
        ("label.moved", "production"),
    ]
    history = person.client.get("/prompts/support/history").get_data(as_text=True)
    assert "label <code>production</code>: version 3 → version 2" in history and "version 3 saved" in history

    # The playground by label: production's settings (version 2), the typed variable values kept. A link
    # (?label=production) offers the load as a button; the load itself is a POST.
    offered = person.client.get("/prompts/support/playground?label=production").get_data(as_text=True)
    assert '<input type="hidden" name="label" value="production">' in offered
    assert "Load label production into this playground</button>" in offered
    loaded = person.post("/prompts/support/playground/load", label="production")
    assert loaded.status_code == 303 and loaded.headers["Location"] == "/prompts/support/playground"
    playground = person.client.get("/prompts/support/playground").get_data(as_text=True)
    assert "Loaded version 2 (production) into the playground." in playground
    assert (
        "v2 {{ who }}</textarea>" in playground
        and 'id="var-who" name="variables.who" type="text" value="Ada"' in playground
    )
    assert person.post("/prompts/support/playground/messages", content="hello").status_code == 303
    sent = person.client.get("/prompts/support/playground").get_data(as_text=True)
    assert ">version 2</span>" in sent and ">draft</span>" not in sent  # what produced the reply: version 2
    assert person.post("/prompts/support/playground/variables", who="Grace").status_code == 303
    assert person.post("/prompts/support/playground/load", label="latest").status_code == 303
    assert "v2 {{ who }}</textarea>" not in person.client.get("/prompts/support/playground").get_data(as_text=True)
    assert person.post("/prompts/support/playground/load", version="2").status_code == 303
    assert 'name="variables.who" type="text" value="Grace"' in person.client.get(
        "/prompts/support/playground"
    ).get_data(as_text=True)
    missing = person.post("/prompts/support/playground/load", label="canary")
    assert missing.status_code == 404 and "has no label &#39;canary&#39;" in missing.get_data(as_text=True)


@pytest.fixture
def accounts_app():
    app = make_app(AUTH_MODE="accounts", PROTECTED_LABELS=["production", "prod-eu"])
    with app.app_context():
        create_user("alice@example.com", PASSWORD)
        create_user("bob@example.com", PASSWORD, admin=True, actor="cli:root")
    three_versions(app)
    return app


def test_a_protected_label_is_refused_to_a_non_admin_with_a_403_and_moved_by_an_admin(accounts_app):
    alice, bob = Person(accounts_app), Person(accounts_app)
    alice.login("alice@example.com")
    bob.login("bob@example.com")
    for label in ("production", "prod-eu"):
        refused = alice.post("/prompts/support/labels", label=label, version="2")
        assert refused.status_code == 403
        assert f"Only an admin can move the label {label}" in refused.get_data(as_text=True)
    answer = alice.post(
        "/prompts/support/labels", label="production", version="2", headers={"Accept": "application/json"}
    )
    assert answer.status_code == 403 and answer.get_json()["error"].startswith("Only an admin can move")
    assert alice.post("/prompts/support/labels", label="staging", version="2").status_code == 303
    assert bob.post("/prompts/support/labels", label="production", version="2").status_code == 303
    assert bob.post("/prompts/support/labels", label="production", version="1").status_code == 303  # rollback
    moved = events(accounts_app, kind="label.moved")
    assert [(e.actor_name, e.detail["label"], e.detail["to_version"]) for e in moved] == [
        ("alice@example.com", "staging", 2),
        ("bob@example.com", "production", 2),
        ("bob@example.com", "production", 1),
    ]
    with accounts_app.app_context():
        assert moved[0].actor_id == find_user("alice@example.com").id


# --- accounts and admins ---------------------------------------------------------------------


def test_a_password_change_ends_the_users_other_sessions_and_keeps_this_one(accounts_app):
    here, elsewhere, other_user = Person(accounts_app), Person(accounts_app), Person(accounts_app)
    for person, email in ((here, "alice"), (elsewhere, "alice"), (other_user, "bob")):
        assert person.login(f"{email}@example.com").status_code == 303
    before = here.client.get_cookie(COOKIE).value
    page = here.client.get("/account").get_data(as_text=True)
    assert "Signed in as <strong>alice@example.com</strong>" in page and 'href="/account/tokens"' in page

    wrong = here.post(
        "/account/password", current_password="not it", new_password=NEW_PASSWORD, confirm_password=NEW_PASSWORD
    )
    assert wrong.status_code == 401 and "The current password is not right" in wrong.get_data(as_text=True)
    differ = here.post(
        "/account/password", current_password=PASSWORD, new_password=NEW_PASSWORD, confirm_password="something else"
    )
    assert differ.status_code == 422 and "The two new passwords differ." in differ.get_data(as_text=True)
    assert elsewhere.client.get("/playground").status_code == 200  # nothing changed yet

    changed = here.post(
        "/account/password", current_password=PASSWORD, new_password=NEW_PASSWORD, confirm_password=NEW_PASSWORD
    )
    assert changed.status_code == 303
    assert "You stay signed in here; 1 other session ended." in here.client.get("/account").get_data(as_text=True)
    assert here.client.get_cookie(COOKIE).value != before  # this session got a new id
    assert here.client.get("/playground").status_code == 200
    assert elsewhere.client.get("/playground").status_code == 303  # signed out
    assert other_user.client.get("/playground").status_code == 200  # another user's session untouched
    assert Person(accounts_app).login("alice@example.com").status_code == 401
    assert Person(accounts_app).login("alice@example.com", NEW_PASSWORD).status_code == 303
    [event_] = events(accounts_app, kind="user.password_changed")
    assert (event_.actor_name, event_.subject) == ("alice@example.com", "alice@example.com")


def test_the_admin_pages_disable_enable_and_make_admins_and_are_refused_to_others(accounts_app):
    alice, bob = Person(accounts_app), Person(accounts_app)
    alice.login("alice@example.com")
    bob.login("bob@example.com")
    with accounts_app.app_context():
        alice_id, bob_id = find_user("alice@example.com").id, find_user("bob@example.com").id
    for path in ("/admin/users", "/audit"):
        refused = alice.client.get(path)
        assert refused.status_code == 403 and "Only an admin can see this page" in refused.get_data(as_text=True)
    assert alice.post(f"/admin/users/{alice_id}/make-admin").status_code == 403
    assert "Admin</a>" not in alice.client.get("/prompts").get_data(as_text=True)

    users = bob.client.get("/admin/users").get_data(as_text=True)
    assert "alice@example.com" in users and "bob@example.com (you)" in users
    assert users.count("never") == 0  # both signed in: their last sign-in shows
    assert bob.post(f"/admin/users/{alice_id}/disable").status_code == 303
    assert alice.client.get("/playground").status_code == 303  # her session ended at once
    assert alice.login("alice@example.com").status_code == 401
    assert bob.post(f"/admin/users/{alice_id}/enable").status_code == 303
    assert alice.login("alice@example.com").status_code == 303
    assert bob.post(f"/admin/users/{alice_id}/make-admin").status_code == 303
    assert alice.client.get("/admin/users").status_code == 200
    assert alice.post("/prompts/support/labels", label="production", version="3").status_code == 303
    assert bob.post(f"/admin/users/{alice_id}/remove-admin").status_code == 303
    assert alice.client.get("/audit").status_code == 403
    for action in ("disable", "remove-admin"):
        itself = bob.post(f"/admin/users/{bob_id}/{action}")
        assert itself.status_code == 409 and "You cannot disable yourself" in itself.get_data(as_text=True)
    assert bob.post(f"/admin/users/{alice_id}/explode").status_code == 404
    assert bob.post("/admin/users/999/enable").status_code == 404

    kinds = [(e.kind, e.actor_name, e.subject) for e in events(accounts_app) if e.kind.startswith("user.")]
    assert kinds == [
        ("user.created", "system", "alice@example.com"),
        ("user.created", "cli:root", "bob@example.com"),
        ("user.disabled", "bob@example.com", "alice@example.com"),
        ("user.enabled", "bob@example.com", "alice@example.com"),
        ("user.admin_granted", "bob@example.com", "alice@example.com"),
        ("user.admin_revoked", "bob@example.com", "alice@example.com"),
    ]
    audit = bob.client.get("/audit", query_string={"kind": "user.disabled"}).get_data(as_text=True)
    assert audit.count("<tr id=") == 1 and "user disabled" in audit
    by_alice = bob.client.get("/audit", query_string={"user": "Alice@example.com"}).get_data(as_text=True)
    assert by_alice.count("<tr id=") == 1 and "label <code>production</code>" in by_alice
    of_prompt = bob.client.get("/audit", query_string={"prompt": "support"}).get_data(as_text=True)
    assert of_prompt.count("<tr id=") == 5  # created, versions 1-3, the label move
    assert bob.client.get("/audit", query_string={"prompt": "nothing"}).get_data(as_text=True).count("<tr id=") == 0


# --- the audit log ---------------------------------------------------------------------------


def test_every_event_kind_is_recorded_by_the_pages_and_commands_and_flask_audit_lists_them(tmp_path):
    app = make_app()
    runner = app.test_cli_runner()
    person = Person(app)
    assert person.post("/prompts", name="Greeter", system_prompt="Hi {{ who }}").status_code == 303
    assert person.post("/prompts/greeter/edit", name="Greeter", slug="greeter", description="new").status_code == 303
    assert person.post("/prompts/greeter/edit", name="Welcome", slug="welcome", description="new").status_code == 303
    assert person.post("/prompts/welcome/playground/versions", note="second").status_code == 303
    assert person.post("/prompts/welcome/labels", label="production", version="2").status_code == 303
    assert person.post("/prompts/welcome/archive").status_code == 303
    assert person.post("/prompts/welcome/restore").status_code == 303
    assert person.post("/prompts/welcome/tests", name="Hello", input="Hi").status_code == 303
    assert person.post("/prompts/welcome/tests/1", name="Hello there", input="Hi").status_code == 303
    assert person.post("/prompts/welcome/tests/1/delete", confirm="yes").status_code == 303
    (tmp_path / "cases.jsonl").write_text('{"name": "From a file", "input": "Hi"}\n')
    assert runner.invoke(args=["evals", "import", "welcome", str(tmp_path / "cases.jsonl")]).exit_code == 0
    exported = runner.invoke(args=["prompts", "export"]).output.replace('"welcome"', '"imported"')
    (tmp_path / "prompts.json").write_text(exported)
    assert runner.invoke(args=["prompts", "import", str(tmp_path / "prompts.json")]).exit_code == 0

    for args, output in [
        (["users", "create", "erin@example.com", "--password-stdin"], "Created user erin@example.com."),
        (["users", "set-password", "erin@example.com", "--password-stdin"], "signed out of 0 sessions."),
        (["users", "disable", "erin@example.com"], "Disabled erin@example.com"),
        (["users", "enable", "erin@example.com"], "Enabled erin@example.com"),
        (["users", "set-admin", "erin@example.com"], "erin@example.com is now an admin."),
        (["users", "set-admin", "erin@example.com", "--no-admin"], "erin@example.com is no longer an admin."),
        (["tokens", "create", "erin@example.com", "--name", "ci"], "Created token 1 'ci' for erin@example.com"),
        (["tokens", "revoke", "1"], "Revoked token 1 'ci' of erin@example.com."),
    ]:
        result = runner.invoke(args=args, input=NEW_PASSWORD + "\n")
        assert result.exit_code == 0 and output in result.output, (args, result.output)
    short = runner.invoke(args=["users", "set-password", "erin@example.com", "--password-stdin"], input="short\n")
    assert short.exit_code != 0 and "at least 12 characters" in short.output
    nobody = runner.invoke(args=["users", "set-admin", "nobody@example.com"])
    assert nobody.exit_code != 0 and "There is no user nobody@example.com." in nobody.output

    listed = runner.invoke(args=["audit", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    recorded = json.loads(listed.output)
    assert {event_["kind"] for event_ in recorded} == set(EVENT_KINDS)
    assert [event_["id"] for event_ in recorded] == sorted(event_["id"] for event_ in recorded)  # oldest first
    renamed = next(event_ for event_ in recorded if event_["kind"] == "prompt.renamed")
    assert renamed["detail"]["from_slug"] == "greeter" and renamed["detail"]["to_slug"] == "welcome"
    imported = next(event_ for event_ in recorded if event_["kind"] == "prompt.imported")
    assert imported["subject"] == "imported" and imported["detail"]["versions_added"] == [1]  # v2 says what v1 says
    assert all(event_["actor"]["name"].startswith("cli") for event_ in recorded if event_["kind"].startswith("user."))

    table = runner.invoke(args=["audit", "list", "--kind", "label.moved"]).output.splitlines()
    assert len(table) == 2 and "\tlocal\tlabel.moved\twelcome\t" in table[0] and table[-1] == "1 event."
    of_prompt = runner.invoke(args=["audit", "list", "--prompt", "welcome", "--json"]).output
    assert {event_["kind"] for event_ in json.loads(of_prompt)} == {
        "prompt.created",
        "prompt.edited",
        "prompt.renamed",
        "version.created",
        "label.moved",
        "prompt.archived",
        "prompt.restored",
        "case.created",
        "case.edited",
        "case.deleted",
        "cases.imported",
    }
    assert runner.invoke(args=["audit", "list", "--since", "2999-01-01"]).output == "0 events.\n"
    assert runner.invoke(args=["audit", "list", "--since", "2000-01-01T00:00+02:00", "--json"]).output == listed.output
    bad = runner.invoke(args=["audit", "list", "--since", "yesterday"])
    assert bad.exit_code != 0 and "is not an ISO 8601 date or time" in bad.output


def test_the_audit_log_is_append_only_no_route_or_command_edits_it_and_the_database_refuses():
    app = make_app()
    audit_rules = [rule for rule in app.url_map.iter_rules() if rule.endpoint in ("admin.audit", "prompts.history")]
    assert sorted(rule.rule for rule in audit_rules) == ["/audit", "/prompts/<slug>/history"]
    assert all(rule.methods <= {"GET", "HEAD", "OPTIONS"} for rule in audit_rules)
    assert not [rule.rule for rule in app.url_map.iter_rules() if "audit" in rule.rule and rule.rule != "/audit"]
    assert sorted(app.cli.commands["audit"].commands) == ["list"]
    with app.app_context():
        record_event("prompt.archived", "local", subject="x")
        db.session.commit()
        for statement in ("UPDATE audit_events SET kind = 'prompt.restored'", "DELETE FROM audit_events"):
            with pytest.raises(DBAPIError, match="append-only"):
                db.session.execute(text(statement))
            db.session.rollback()
        assert db.session.scalar(select(AuditEvent.kind)) == "prompt.archived"
        with pytest.raises(ValueError, match="unknown audit event kind"):
            record_event("prompt.deleted", "local")


def test_a_change_and_its_event_are_one_transaction():
    """A failed save writes neither the version nor its event, and announces nothing to the webhooks."""
    app = make_app()
    prompt_id = three_versions(app)
    announced = []
    event_committed.connect(lambda sender, event: announced.append(event), app, weak=False)
    with app.app_context():

        @event.listens_for(db.session, "before_commit")
        def fail(session):
            raise RuntimeError("the database went away")

        try:
            with pytest.raises(RuntimeError):
                save_version(prompt_id, system_prompt="v4", provider="echo", model="echo-1", params={}, variables={})
        finally:
            event.remove(db.session, "before_commit", fail)
        db.session.rollback()
        assert resolve_version(find_prompt("support")).number == 3
    assert len(events(app, kind="version.created")) == 3 and announced == []


# --- PostgreSQL, and the migration on both databases -------------------------------------------


@pytest.mark.integration
def test_labels_and_the_append_only_log_on_postgresql(postgres_server):
    app = make_app(SQLALCHEMY_DATABASE_URI=postgres_server.create_database())
    try:
        three_versions(app)
        with app.app_context():
            prompt = find_prompt("support")
            assert move_label(prompt, "production", 2, "local", admin=True) == (None, 2)
            assert move_label(prompt, "production", 3, "local", admin=True) == (2, 3)
            assert move_label(prompt, "production", 2, "local", admin=True) == (3, 2)
            prompt = find_prompt("support")  # as a request has it (the moves' commits expired it)
            statements = []
            listener = lambda *args: statements.append(args[2])  # noqa: E731
            event.listen(db.engine, "before_cursor_execute", listener)
            assert resolve_version(prompt, "production").number == 2  # one indexed query
            event.remove(db.engine, "before_cursor_execute", listener)
            assert len(statements) == 1, statements
            for statement in ("UPDATE audit_events SET kind = 'x'", "DELETE FROM audit_events"):
                with pytest.raises(DBAPIError, match="append-only"):
                    db.session.execute(text(statement))
                db.session.rollback()
        moves = [(e.detail["from_version"], e.detail["to_version"]) for e in events(app, kind="label.moved")]
        assert moves == [(None, 2), (2, 3), (3, 2)]

        # Moves of one label at once (the first ones racing to create it) queue up on the row: each
        # event's "from" is the previous event's "to", whatever the order they ran in.
        def move(number):
            with app.app_context():
                move_label(find_prompt("support"), "staging", number, "local", admin=True)
                db.session.remove()

        threads = [threading.Thread(target=move, args=(1 + index % 3,)) for index in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        chain = [(e.detail["from_version"], e.detail["to_version"]) for e in events(app, kind="label.moved")][3:]
        assert chain and chain[0][0] is None
        assert all(later[0] == earlier[1] for earlier, later in zip(chain, chain[1:])), chain
        with app.app_context():
            assert resolve_version(find_prompt("support"), "staging").number == chain[-1][1]
    finally:
        close(app)


@pytest.mark.integration
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migration_0005_makes_labels_and_an_append_only_log_and_goes_back(backend, postgres_server, tmp_path):
    url = postgres_server.create_database() if backend == "postgresql" else f"sqlite:///{tmp_path}/app.sqlite3"
    app = create_app("test", overrides={"SQLALCHEMY_DATABASE_URI": url})
    try:
        # In this process (a `flask db` process costs seconds of imports): up, down past 0005, up again.
        with app.app_context():
            flask_migrate.upgrade()
            flask_migrate.downgrade(revision="d4e5f6a7b8c9")
            assert not {"prompt_labels", "audit_events"} & set(inspect(db.engine).get_table_names())
            flask_migrate.upgrade()  # again: the downgrade left nothing behind (PostgreSQL: the trigger's function too)
        three_versions(app)
        with app.app_context():
            move_label(find_prompt("support"), "production", 1, "local", admin=True)
            with pytest.raises(DBAPIError, match="append-only"):
                db.session.execute(text("DELETE FROM audit_events"))
            db.session.rollback()
            assert db.session.scalar(select(db.func.count()).select_from(AuditEvent)) == 5
    finally:
        close(app)
