"""The read API: tokens (page, CLI, revoked, disabled user), the JSON, ETag/304, render, the per-token limit,
no session and no CSRF; and the migration on PostgreSQL."""

import hashlib
import re

import flask_migrate
import pytest
from sqlalchemy import event, select

from prompt_tracker import create_app
from prompt_tracker.auth.accounts import create_user, find_user, set_disabled
from prompt_tracker.auth.tokens import ApiToken, create_token
from prompt_tracker.extensions import db
from prompt_tracker.prompts.labels import move_label
from prompt_tracker.prompts.library import create_prompt, find_prompt, save_version

from .conftest import COOKIE
from .test_auth import PASSWORD, Browser

TOKEN_RE = re.compile(r'<code class="token-value" id="new-token">(pt_[\w-]+)</code>')


def make_app(**overrides):
    app = create_app("test", overrides={"AUTH_MODE": "accounts", **overrides})
    with app.app_context():
        db.create_all()
        create_user("alice@example.com", PASSWORD, admin=True)
        create_user("bob@example.com", PASSWORD)
        prompt = create_prompt("Greeting", "Hello {{ name }}.", variables={"name": ""}, author="alice@example.com")
        save_version(
            prompt.id,
            system_prompt="Hi {{ name }}, in a {{ tone }} tone.",
            provider="openai",
            model="gpt-4o-mini",
            params={"temperature": 0.3, "max_tokens": 200},
            variables={"tone": "dry"},
            note="v2",
        )
    return app


@pytest.fixture
def app():
    return make_app()


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def new_token(app, email="alice@example.com", name="service") -> str:
    with app.app_context():
        return create_token(find_user(email), name).token


def test_tokens_are_made_on_the_page_shown_once_used_revoked_and_refused_once_the_user_is_disabled(app):
    browser = Browser(app.test_client())
    browser.login()
    assert browser.client.get("/account/tokens").status_code == 200
    page = browser.client.post(
        "/account/tokens", data={"name": "billing service", "csrf_token": browser.token("/account/tokens")}
    ).get_data(as_text=True)
    token = TOKEN_RE.search(page).group(1)
    assert "it will not be shown again" in page
    # Stored as its SHA-256 only; the list never shows it again.
    with app.app_context():
        record = db.session.scalar(select(ApiToken))
        assert record.token_sha256 == hashlib.sha256(token.encode()).hexdigest() and record.last_used_at is None
    listed = browser.client.get("/account/tokens").get_data(as_text=True)
    assert "billing service" in listed and token not in listed and "never" in listed

    api = app.test_client()
    assert api.get("/api/v1/prompts/greeting", headers=bearer(token)).status_code == 200
    listed = browser.client.get("/account/tokens").get_data(as_text=True)
    assert "never" not in listed and " UTC</time>" in listed  # last used: now
    with app.app_context():
        assert db.session.scalar(select(ApiToken)).last_used_at is not None

    # Another user cannot revoke it; its owner can, and it stops working at once.
    bob = Browser(app.test_client())
    bob.login("bob@example.com")
    assert (
        bob.client.post(f"/account/tokens/{record.id}/revoke", data={"csrf_token": bob.token("/account/tokens")})
    ).status_code == 404
    revoked = browser.client.post(
        f"/account/tokens/{record.id}/revoke", data={"csrf_token": browser.token("/account/tokens")}
    )
    assert revoked.status_code == 303
    refused = api.get("/api/v1/prompts/greeting", headers=bearer(token))
    assert refused.status_code == 401
    assert refused.get_json() == {"error": "This API token is not valid: it is unknown or was revoked."}
    assert "revoked" in browser.client.get("/account/tokens").get_data(as_text=True)
    # Both are audit events, by the user, naming the token (never the token itself).
    audit = browser.client.get("/audit", query_string={"user": "alice@example.com"}).get_data(as_text=True)
    assert f"API token {record.id} (billing service) created" in audit
    assert f"API token {record.id} (billing service) revoked" in audit and token not in audit

    # A disabled user's tokens are refused; enabled again, they work again.
    other = new_token(app, "bob@example.com")
    assert api.get("/api/v1/prompts", headers=bearer(other)).status_code == 200
    with app.app_context():
        set_disabled("bob@example.com")
    disabled = api.get("/api/v1/prompts", headers=bearer(other))
    assert disabled.status_code == 403
    assert disabled.get_json() == {"error": "The account this API token belongs to is disabled."}
    with app.app_context():
        set_disabled("bob@example.com", disabled=False)
    assert api.get("/api/v1/prompts", headers=bearer(other)).status_code == 200
    # A name is required.
    empty = browser.client.post("/account/tokens", data={"name": " ", "csrf_token": browser.token("/account/tokens")})
    assert empty.status_code == 422 and "Give the token a name" in empty.get_data(as_text=True)


def test_a_version_as_json_with_an_etag_and_304_by_label_or_number(app):
    api = app.test_client()
    headers = bearer(new_token(app))
    latest = api.get("/api/v1/prompts/greeting", headers=headers)
    assert latest.status_code == 200
    assert latest.get_json() == {
        "slug": "greeting",
        "name": "Greeting",
        "version": 2,
        "labels": ["latest"],
        "system_prompt": "Hi {{ name }}, in a {{ tone }} tone.",
        "variables": {"name": "", "tone": "dry"},
        "provider": "openai",
        "model": "gpt-4o-mini",
        "params": {"temperature": 0.3, "max_tokens": 200},
    }
    etag = latest.headers["ETag"]
    assert latest.headers["Cache-Control"] == "private, no-cache"
    assert api.get("/api/v1/prompts/greeting?label=latest", headers=headers).headers["ETag"] == etag
    cached = api.get("/api/v1/prompts/greeting", headers={**headers, "If-None-Match": etag})
    assert cached.status_code == 304 and cached.data == b""

    first = api.get("/api/v1/prompts/greeting?version=1", headers=headers).get_json()
    assert first["version"] == 1 and first["labels"] == [] and first["provider"] == "echo"
    # A new version: the latest's ETag changes, so the cached copy is sent again.
    with app.app_context():
        save_version(1, system_prompt="Hey {{ name }}.", provider="echo", model="echo-1", params={}, variables={})
    fresh = api.get("/api/v1/prompts/greeting", headers={**headers, "If-None-Match": etag})
    assert fresh.status_code == 200 and fresh.get_json()["version"] == 3 and fresh.headers["ETag"] != etag
    assert api.get("/api/v1/prompts/greeting?version=2", headers=headers).get_json()["labels"] == []

    assert api.get("/api/v1/prompts", headers=headers).get_json() == {
        "prompts": [
            {"slug": "greeting", "name": "Greeting", "labels": {"latest": 3}, "updated_at": re_time()},
        ]
    }
    for path, status, error in [
        ("/api/v1/prompts/nothing", 404, "There is no prompt with the slug 'nothing'."),
        ("/api/v1/prompts/greeting?version=9", 404, "Prompt 'greeting' has no version 9."),
        ("/api/v1/prompts/greeting?label=production", 404, "Prompt 'greeting' has no label 'production'."),
        ("/api/v1/prompts/greeting?version=x", 400, "version must be a whole number from 1, not 'x'."),
        ("/api/v1/prompts/greeting?version=1&label=latest", 400, "Ask for a label or a version, not both."),
        ("/api/v1/prompt/greeting", 404, "There is no API endpoint /api/v1/prompt/greeting."),
    ]:
        answer = api.get(path, headers={**headers, "Accept": "text/html"})
        assert (answer.status_code, answer.get_json()) == (status, {"error": error}), path


class re_time:
    """Equal to any ISO 8601 UTC time."""

    def __eq__(self, other):
        return bool(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", other))


def test_render_answers_the_providers_request_and_names_a_missing_or_unknown_variable(app):
    api = app.test_client()
    headers = bearer(new_token(app))
    rendered = api.post(
        "/api/v1/prompts/greeting/render",
        json={"label": "latest", "variables": {"name": "Ann"}, "messages": [{"role": "user", "content": "Hello?"}]},
        headers=headers,
    )
    assert rendered.status_code == 200
    assert rendered.get_json() == {
        "slug": "greeting",
        "version": 2,
        "labels": ["latest"],
        "provider": "openai",
        "model": "gpt-4o-mini",
        "params": {"temperature": 0.3, "max_tokens": 200},
        "system_prompt": "Hi Ann, in a dry tone.",
        "messages": [{"role": "user", "content": "Hello?"}],
        # What client.chat.completions.create(**request) takes.
        "request": {
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "Hi Ann, in a dry tone."},
                {"role": "user", "content": "Hello?"},
            ],
            "temperature": 0.3,
            "max_tokens": 200,
        },
    }
    # Values go through the playground's sandbox: they are text, never template code.
    tricky = api.post(
        "/api/v1/prompts/greeting/render",
        json={"variables": {"name": "{{ 7 * 7 }}", "tone": 3}},
        headers=headers,
    ).get_json()
    assert tricky["system_prompt"] == "Hi {{ 7 * 7 }}, in a 3 tone."

    for body, error in [
        ({"version": 1, "variables": {}}, "Missing variable 'name': give a value (the version has no default)."),
        ({"variables": {"name": "Ann", "mood": "x"}}, "Unknown variable 'mood': version 2 has variables name, tone."),
        ({"variables": {"name": ["x"]}}, "Variable 'name' must be a string or a number."),
        ({"variables": {"name": "A"}, "messages": [{"role": "robot", "content": "x"}]}, "Message 1 needs a role"),
        ({"variables": {"name": "A"}, "messages": "hi"}, "messages must be a list of {role, content} objects."),
        ({"label": "latest", "version": 2}, "Ask for a label or a version, not both."),
    ]:
        answer = api.post("/api/v1/prompts/greeting/render", json=body, headers=headers)
        assert answer.status_code == 400, body
        assert answer.get_json()["error"].startswith(error), answer.get_json()
    missing = api.post("/api/v1/prompts/greeting/render", json={"version": 1}, headers=headers).get_json()
    assert missing["variables"] == ["name"]
    not_json = api.post("/api/v1/prompts/greeting/render", data="name=Ann", headers=headers)
    assert not_json.status_code == 400 and "Send a JSON object" in not_json.get_json()["error"]


def test_the_api_sets_no_cookie_needs_no_csrf_token_and_a_browser_session_alone_is_refused(app):
    browser = Browser(app.test_client())
    browser.login()
    assert browser.client.get_cookie(COOKIE) is not None
    token = new_token(app)
    # The signed-in browser's cookie alone: 401, and the cookie is neither read nor refreshed.
    for answer in (
        browser.client.get("/api/v1/prompts/greeting"),
        browser.client.get("/api/v1/prompts/greeting", headers={"Authorization": "Basic YTpi"}),
        browser.client.post("/api/v1/prompts/greeting/render", json={"variables": {"name": "A"}}),
    ):
        assert answer.status_code == 401 and "Send an API token" in answer.get_json()["error"]
        assert "Set-Cookie" not in answer.headers and "Cookie" not in answer.headers.get("Vary", "")
    # With a token (and the cookie along): a POST without any CSRF token works, and no cookie is set.
    answer = browser.client.post(
        "/api/v1/prompts/greeting/render", json={"variables": {"name": "A"}}, headers=bearer(token)
    )
    assert answer.status_code == 200 and "Set-Cookie" not in answer.headers
    fresh = app.test_client()
    answer = fresh.get("/api/v1/prompts/greeting", headers=bearer(token))
    assert answer.status_code == 200 and "Set-Cookie" not in answer.headers and fresh.get_cookie(COOKIE) is None
    bad = fresh.get("/api/v1/prompts", headers=bearer("pt_not-a-token"))
    assert bad.status_code == 401 and "Set-Cookie" not in bad.headers
    # The pages still want their CSRF token.
    assert browser.client.post("/account/tokens", data={"name": "x"}).status_code == 400


def test_requests_are_limited_per_token():
    app = make_app(RATE_LIMIT_API="2/minute")
    api = app.test_client()
    first, second = new_token(app), new_token(app, name="other")
    assert [api.get("/api/v1/prompts", headers=bearer(first)).status_code for _ in range(2)] == [200, 200]
    refused = api.get("/api/v1/prompts/greeting", headers=bearer(first))
    assert refused.status_code == 429
    assert refused.get_json()["error"].startswith("Too many API requests: the limit is 2 per minute.")
    assert api.get("/api/v1/prompts", headers=bearer(second)).status_code == 200


def test_flask_tokens_create_list_revoke(app):
    runner = app.test_cli_runner()
    created = runner.invoke(args=["tokens", "create", "alice@example.com", "--name", "ci"])
    assert created.exit_code == 0, created.output
    token = created.output.strip().splitlines()[-1]
    assert token.startswith("pt_")
    assert app.test_client().get("/api/v1/prompts", headers=bearer(token)).status_code == 200
    listed = runner.invoke(args=["tokens", "list"])
    assert re.search(r"^1\talice@example.com\tci\tcreated .*\tlast used \d{4}-.*\tactive$", listed.output, re.M)
    assert token not in listed.output and listed.output.endswith("1 token.\n")
    revoked = runner.invoke(args=["tokens", "revoke", "1"])
    assert revoked.exit_code == 0 and "Revoked token 1 'ci' of alice@example.com." in revoked.output
    assert app.test_client().get("/api/v1/prompts", headers=bearer(token)).status_code == 401
    assert "revoked" in runner.invoke(args=["tokens", "list"]).output
    nobody = runner.invoke(args=["tokens", "create", "nobody@example.com", "--name", "x"])
    assert nobody.exit_code != 0 and "There is no user nobody@example.com." in nobody.output
    assert runner.invoke(args=["tokens", "revoke", "99"]).exit_code != 0


def test_the_pages_in_each_auth_mode(app):
    # AUTH_MODE=none: the local user makes tokens and is the admin.
    local = create_app("test")
    with local.app_context():
        db.create_all()
    client = local.test_client()
    token = TOKEN_RE.search(
        client.post(
            "/account/tokens", data={"name": "local", "csrf_token": Browser(client).token("/account/tokens")}
        ).get_data(as_text=True)
    ).group(1)
    assert client.get("/api/v1/prompts", headers=bearer(token)).get_json() == {"prompts": []}
    assert client.get("/admin/webhooks").status_code == 200
    # Accounts: only an admin sees the deliveries; anonymous visitors are sent to sign in.
    assert app.test_client().get("/account/tokens").status_code == 303
    bob = Browser(app.test_client())
    bob.login("bob@example.com")
    assert bob.client.get("/admin/webhooks").status_code == 403
    alice = Browser(app.test_client())
    alice.login()
    page = alice.client.get("/admin/webhooks").get_data(as_text=True)
    assert "Webhook deliveries" in page and "WEBHOOK_URLS" in page


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def counted(request, tmp_path):
    """The app on SQLite or a fresh PostgreSQL database migrated by the migrations (in this process; their
    way down and up is tests/test_prompts_database.py's), and the statements it runs."""
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_server").create_database()
        app = create_app("test", overrides={"AUTH_MODE": "accounts", "SQLALCHEMY_DATABASE_URI": url})
        with app.app_context():
            flask_migrate.upgrade()
            create_user("alice@example.com", PASSWORD, admin=True)
            prompt = create_prompt("Greeting", "Hello {{ name }}.")
            save_version(
                prompt.id, system_prompt="Hi {{ name }}.", provider="echo", model="echo-1", params={}, variables={}
            )
    else:
        app = make_app()
    statements = []
    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    yield app, statements
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_a_fetch_is_the_token_query_and_one_query(counted):
    app, statements = counted
    api = app.test_client()
    headers = bearer(new_token(app))
    assert api.get("/api/v1/prompts/greeting", headers=headers).status_code == 200  # writes last_used_at
    for path in ("/api/v1/prompts/greeting?label=latest", "/api/v1/prompts/greeting?version=1"):
        statements.clear()
        answer = api.get(path, headers=headers)
        assert answer.status_code == 200
        assert len(statements) == 2, statements  # the token (unique index), the prompt and its version
    assert api.get("/api/v1/prompts/greeting?version=1", headers=headers).get_json()["labels"] == []
    rendered = api.post("/api/v1/prompts/greeting/render", json={"variables": {"name": "Ann"}}, headers=headers)
    assert rendered.get_json()["system_prompt"].startswith("Hi Ann")


def test_a_fetch_by_any_label_is_one_statement_and_a_label_move_changes_the_etag(counted):
    app, statements = counted
    with app.app_context():
        prompt = find_prompt("greeting")
        for label, number in (("production", 1), ("canary", 1), ("staging", 2)):
            move_label(prompt, label, number, "alice@example.com", admin=True)
    api = app.test_client()
    headers = bearer(new_token(app))
    api.get("/api/v1/prompts", headers=headers)  # writes last_used_at
    statements.clear()
    production = api.get("/api/v1/prompts/greeting?label=production", headers=headers)
    assert len(statements) == 2, statements  # the token, then prompt, version, newest number and labels at once
    assert (production.get_json()["version"], production.get_json()["labels"]) == (1, ["canary", "production"])
    latest = api.get("/api/v1/prompts/greeting", headers=headers).get_json()
    assert (latest["version"], latest["labels"]) == (2, ["latest", "staging"])
    assert api.get("/api/v1/prompts/greeting?version=1", headers=headers).get_json()["labels"] == [
        "canary",
        "production",
    ]
    missing = api.get("/api/v1/prompts/greeting?label=nope", headers=headers)
    assert (missing.status_code, missing.get_json()) == (404, {"error": "Prompt 'greeting' has no label 'nope'."})
    assert api.get("/api/v1/prompts", headers=headers).get_json()["prompts"][0]["labels"] == {
        "latest": 2,
        "canary": 1,
        "production": 1,
        "staging": 2,
    }
    rendered = api.post(
        "/api/v1/prompts/greeting/render", json={"label": "production", "variables": {"name": "Ann"}}, headers=headers
    )
    assert rendered.get_json()["version"] == 1 and rendered.get_json()["system_prompt"] == "Hello Ann."

    # Production moves to version 2: the copy cached with its ETag is sent again, changed.
    etag = production.headers["ETag"]
    with app.app_context():
        move_label(find_prompt("greeting"), "production", 2, "alice@example.com", admin=True)
    moved = api.get("/api/v1/prompts/greeting?label=production", headers={**headers, "If-None-Match": etag})
    assert moved.status_code == 200 and moved.get_json()["version"] == 2
    assert moved.get_json()["labels"] == ["latest", "production", "staging"]
