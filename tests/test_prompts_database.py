"""The database under the prompt library: migrations, a missing schema, a database that is down, query counts."""

import logging
import os

import flask_migrate
import pytest
from sqlalchemy import event, inspect, text

from prompt_tracker import create_app
from prompt_tracker.extensions import db
from prompt_tracker.prompts.models import PromptVersion

from .conftest import CSRF_RE, ROOT
from .processes import run_flask
from .redis_server import free_port


def flask_cli(*args, database_url):
    env = {**os.environ, "PROMPT_TRACKER_ENV": "development", "DATABASE_URL": database_url, "PYTHONPATH": str(ROOT)}
    return run_flask(["--app", "wsgi", *args], env)


@pytest.mark.integration
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_flask_db_upgrade_creates_the_schema_the_models_describe(backend, postgres_server, tmp_path):
    url = postgres_server.create_database() if backend == "postgresql" else f"sqlite:///{tmp_path}/app.sqlite3"
    if backend == "postgresql":
        url = url.replace("postgresql+psycopg://", "postgresql://")  # the plain form a platform gives
    upgrade = flask_cli("db", "upgrade", database_url=url)
    assert upgrade.returncode == 0, upgrade.stderr
    # 0004 and later go down and up again cleanly (in this process: a CLI start costs seconds).
    app = create_app("test", overrides={"SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        flask_migrate.downgrade(revision="5b1e7c2d9a40")
        assert "prompt_slug_history" not in inspect(db.engine).get_table_names()
        # A version saved before 0007 gets no tools, "auto" and plain text.
        flask_migrate.upgrade(revision="f6a7b8c9d0e1")
        db.session.execute(
            text(
                "INSERT INTO prompts (id, slug, name, description, created_at, updated_at, archived)"
                " VALUES (900, 'old', 'Old', '', '2026-01-01', '2026-01-01', false)"
            )
        )
        db.session.execute(
            text(
                "INSERT INTO prompt_versions (prompt_id, number, system_prompt, provider, model, params, variables,"
                " note, created_at, created_by) VALUES (900, 1, 'x', 'echo', 'echo-1', '{}', '{}', '', '2026-01-01', '')"
            )
        )
        db.session.commit()
        flask_migrate.upgrade()
        version = db.session.scalar(db.select(PromptVersion).where(PromptVersion.prompt_id == 900))
        assert (version.tools, version.tool_choice, version.response_format) == ([], "auto", {"type": "text"})
        db.session.remove()
        flask_migrate.check()  # `flask db check`: no difference between models and migrations (else it raises)
        db.engine.dispose()
    # A migration run in the app's process leaves its loggers on (alembic's fileConfig disabled them).
    assert not logging.getLogger("prompt_tracker").disabled

    client = app.test_client()
    token = CSRF_RE.search(client.get("/prompts").get_data(as_text=True)).group(1)
    response = client.post("/prompts", data={"name": "Migrated", "system_prompt": "x", "csrf_token": token})
    assert response.status_code == 303
    # A rename keeps the old slug in prompt_slug_history: it redirects.
    client.post("/prompts/migrated/edit", data={"name": "Migrated", "slug": "moved", "csrf_token": token})
    assert client.get("/prompts/migrated/playground?x=1").headers["Location"] == "/prompts/moved/playground?x=1"
    exported = app.test_cli_runner().invoke(args=["prompts", "export"])
    assert '"slug": "moved"' in exported.output
    with app.app_context():
        db.engine.dispose()


def test_a_schema_not_migrated_says_to_run_flask_db_upgrade():
    app = create_app("test")  # in-memory SQLite, no tables
    client = app.test_client()
    for path in ("/prompts", "/prompts/anything", "/prompts/anything/playground"):
        response = client.get(path)
        assert response.status_code == 503
        assert "Run `flask db upgrade`" in response.get_data(as_text=True)
    assert client.get("/playground").status_code == 200


def test_a_database_that_is_down_gives_a_503_page_and_the_standalone_playground_keeps_working():
    url = f"postgresql://nobody@127.0.0.1:{free_port()}/none"  # nothing listens there
    app = create_app("test", overrides={"SQLALCHEMY_DATABASE_URI": url})
    client = app.test_client()
    for path in ("/prompts", "/prompts/x", "/prompts/x/playground"):
        response = client.get(path)
        assert response.status_code == 503
        assert "The prompt database is not reachable right now" in response.get_data(as_text=True)
    page = client.get("/playground").get_data(as_text=True)
    token = CSRF_RE.search(page).group(1)
    assert client.post("/playground/messages", data={"content": "still here", "csrf_token": token}).status_code == 303
    assert "You said: still here" in client.get("/playground").get_data(as_text=True)
    assert client.get("/prompts", headers={"Accept": "application/json"}).get_json() == {
        "error": "The prompt database is not reachable right now, so prompts cannot be shown or saved. "
        "Nothing was changed; try again in a moment. The standalone playground keeps working."
    }
    health = client.get("/healthz")  # as the pages: the playground serves, so 200, "degraded", naming it
    assert health.status_code == 200
    assert health.get_json()["database"] == "down: OperationalError"
    assert health.get_json()["status"] == "degraded" and health.get_json()["down"] == ["database"]


def test_healthz_reports_the_database(counted_app):
    app, statements = counted_app
    health = app.test_client().get("/healthz")
    assert health.status_code == 200
    assert health.get_json()["database"] == "ok"
    assert statements == ["SELECT 1"]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def counted_app(request):
    overrides = {}
    if request.param == "postgresql":
        overrides["SQLALCHEMY_DATABASE_URI"] = request.getfixturevalue("postgres_server").create_database()
    app = create_app("test", overrides=overrides)
    with app.app_context():
        db.create_all()
        statements = []
        event.listen(db.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    yield app, statements
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_opening_a_prompt_playground_costs_one_query_and_the_standalone_none(counted_app):
    app, statements = counted_app
    client = app.test_client()
    token = CSRF_RE.search(client.get("/prompts").get_data(as_text=True)).group(1)
    client.post("/prompts", data={"name": "Counted", "system_prompt": "x {{ y }}", "csrf_token": token})
    client.get("/prompts/counted/playground")
    statements.clear()
    assert client.get("/prompts/counted/playground").status_code == 200
    assert len(statements) == 1, statements
    statements.clear()
    assert client.get("/playground").status_code == 200
    assert statements == []


def test_development_defaults_to_a_sqlite_file_under_instance(monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    app = create_app("development", overrides={"DEBUG": False})
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "sqlite:///" + os.path.join(
        app.instance_path, "prompt_tracker.sqlite3"
    )
    monkeypatch.setenv("DATABASE_URL", "postgres://u:p@db.example/pt")
    app = create_app("development", overrides={"DEBUG": False})
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u:p@db.example/pt"


@pytest.mark.integration
def test_search_in_version_text_can_use_the_trigram_index_on_postgresql(postgres_server):
    """The query shape lets PostgreSQL answer ILIKE '%…%' from the pg_trgm index (migration 0003)."""
    from sqlalchemy import text

    from prompt_tracker.prompts.library import list_prompts

    url = postgres_server.create_database()
    migrated = flask_cli("db", "upgrade", database_url=url)
    assert migrated.returncode == 0, migrated.stderr
    app = create_app("test", overrides={"SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        plans = []
        event.listen(
            db.engine,
            "before_cursor_execute",
            lambda conn, cursor, statement, params, context, many: (
                plans.append((statement, params)) if "prompt_versions.system_prompt" in statement else None
            ),
        )
        pagination, _ = list_prompts("needle")
        assert pagination.total == 0 and plans
        statement, params = plans[-1]
        db.session.execute(text("SET enable_seqscan = off"))  # a tiny table would be scanned anyway
        explained = db.session.connection().exec_driver_sql("EXPLAIN " + statement, params).scalars().all()
        db.session.remove()
        db.engine.dispose()
    assert any("ix_prompt_versions_system_prompt_trgm" in line for line in explained), explained
