"""One user cannot stop the site with a search: ``%`` and ``_`` are literal, ``q`` is cut at 200
characters, and a search runs under a statement timeout with a sentence on the list page past it.

On in-memory SQLite and on the private PostgreSQL the integration tests start.
"""

import html
import re

import pytest
from sqlalchemy import event, insert, text

from prompt_tracker import create_app
from prompt_tracker.extensions import db
from prompt_tracker.prompts.library import MAX_QUERY_CHARS, create_prompt, list_prompts, search_text
from prompt_tracker.prompts.models import Prompt, PromptVersion


def make_app(backend, request, **overrides):
    if backend == "postgresql":
        overrides["SQLALCHEMY_DATABASE_URI"] = request.getfixturevalue("postgres_server").create_database()
    app = create_app("test", overrides=overrides)
    with app.app_context():
        db.create_all()
    return app


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def backend(request):
    return request.param


@pytest.fixture
def search_app(backend, request):
    """A prompt library with names holding the LIKE wildcards, and a way to search it through the page."""
    app = make_app(backend, request)
    with app.app_context():
        for name, system_prompt in [("a_b", "x"), ("axb", "x"), ("Gamma 50%", "x"), ("Gamma 500", "x")]:
            create_prompt(name, system_prompt)
        create_prompt("Text only", "costs 100% of the_budget")
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def found(app, query) -> set[str]:
    body = app.test_client().get("/prompts", query_string={"q": query}).get_data(as_text=True)
    return set(re.findall(r'href="/prompts/([a-z0-9-]+)"', body))


def test_percent_and_underscore_are_literal(search_app):
    assert found(search_app, "_") == {"a-b", "text-only"}
    assert found(search_app, "a_b") == {"a-b"}
    assert found(search_app, "%") == {"gamma-50", "text-only"}
    assert found(search_app, "50%") == {"gamma-50"}
    assert found(search_app, "0%") == {"gamma-50", "text-only"}
    assert found(search_app, "\\") == set()  # the escape character itself is literal too
    assert found(search_app, "e_b") == {"text-only"}


def test_a_4000_character_query_is_cut_to_200_and_said_so(search_app):
    client = search_app.test_client()
    response = client.get("/prompts", query_string={"q": "_" * 4000})
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert f"Only the first {MAX_QUERY_CHARS} characters of a search are used." in body
    assert f'value="{"_" * MAX_QUERY_CHARS}"' in body and "_" * (MAX_QUERY_CHARS + 1) not in body
    assert f'maxlength="{MAX_QUERY_CHARS}"' in body
    assert search_text("  " + "x" * 4000) == "x" * MAX_QUERY_CHARS
    with search_app.test_request_context():
        statements = []

        def record(conn, cursor, statement, parameters, context, executemany):
            statements.append(parameters)

        event.listen(db.engine, "before_cursor_execute", record)
        try:
            list_prompts("_" * 4000)
        finally:
            event.remove(db.engine, "before_cursor_execute", record)
    longest = max(len(value) for params in statements for value in _strings(params))
    assert longest <= 2 * MAX_QUERY_CHARS + 2  # the pattern: %, each character escaped, %


def _strings(parameters):
    values = parameters.values() if isinstance(parameters, dict) else parameters
    return [value for value in values if isinstance(value, str)]


def many_versions(app, rows: int = 20_000, chars: int = 2_000) -> None:
    """One prompt with ``rows`` versions of ``chars`` characters each: a search over them takes a while."""
    with app.app_context():
        prompt = create_prompt("Big", "x")
        filler = ("lorem ipsum dolor sit amet " * (chars // 27 + 1))[:chars]
        db.session.execute(
            insert(PromptVersion),
            [
                {
                    "prompt_id": prompt.id,
                    "number": number,
                    "system_prompt": filler,
                    "provider": "echo",
                    "model": "echo-1",
                    "params": {},
                    "variables": {},
                }
                for number in range(2, rows + 2)
            ],
        )
        db.session.commit()


def test_a_search_past_its_timeout_is_stopped_with_a_sentence_on_the_list_page(backend, request):
    app = make_app(backend, request, SEARCH_TIMEOUT_MS=1)
    many_versions(app)
    client = app.test_client()
    response = client.get("/prompts", query_string={"q": "y" * 199 + "z"})
    assert response.status_code == 503
    body = html.unescape(response.get_data(as_text=True))
    assert "The search took longer than 0.001 s and was stopped." in body
    assert 'value="' + "y" * 199 + 'z"' in body  # the search box keeps what was typed
    assert "New prompt" in body and "Something went wrong" not in body and "not reachable" not in body
    json = client.get("/prompts", query_string={"q": "y" * 200}, headers={"Accept": "application/json"})
    assert json.status_code == 503 and "took longer" in json.get_json()["error"]
    # The connection goes back to the pool whole: the next pages (no search: no timeout) work.
    listed = client.get("/prompts")
    assert listed.status_code == 200 and 'href="/prompts/big"' in listed.get_data(as_text=True)
    if backend == "postgresql":
        with app.app_context():
            assert db.session.scalar(text("SHOW statement_timeout")) == "0"
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_a_search_within_its_timeout_is_not_affected(backend, request):
    app = make_app(backend, request)
    many_versions(app, rows=200)
    assert app.config["SEARCH_TIMEOUT_MS"] == 2_000
    assert found(app, "lorem") == {"big"}
    with app.app_context():
        assert db.session.get(Prompt, 1).slug == "big"
        if backend == "postgresql":
            assert db.session.scalar(text("SHOW statement_timeout")) == "0"
        db.session.remove()
        db.engine.dispose()
