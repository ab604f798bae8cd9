"""``flask prompts export`` / ``flask prompts import`` on SQLite and on the real PostgreSQL."""

import json

import pytest
from sqlalchemy import func, select

from prompt_tracker import create_app
from prompt_tracker.extensions import db
from prompt_tracker.prompts.library import create_prompt, save_version
from prompt_tracker.prompts.models import Prompt, PromptVersion


def make_app(request):
    overrides = {}
    if request.param == "postgresql":
        overrides["SQLALCHEMY_DATABASE_URI"] = request.getfixturevalue("postgres_server").create_database()
    app = create_app("test", overrides=overrides)
    with app.app_context():
        db.create_all()
    return app


def close(app):
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)]


@pytest.fixture(params=BACKENDS)
def source(request):
    app = make_app(request)
    with app.app_context():
        first = create_prompt("Support", "Help {{ customer }}.", description="desk", variables={"customer": "Ada"})
        save_version(
            first.id,
            system_prompt="Help {{ customer }} kindly.",
            provider="echo",
            model="echo-1",
            params={"temperature": 0.2, "max_tokens": 10},
            variables={"customer": "Bob"},
            note="kinder",
            author="ann",
        )
        create_prompt("Other", "Plain text ✓")
    yield app
    close(app)


@pytest.fixture(params=BACKENDS)
def target(request):
    app = make_app(request)
    yield app
    close(app)


def counts(app):
    with app.app_context():
        return db.session.scalar(select(func.count(Prompt.id))), db.session.scalar(select(func.count(PromptVersion.id)))


def test_export_then_import_into_an_empty_database_and_again_is_idempotent(source, target, tmp_path):
    exported = source.test_cli_runner().invoke(args=["prompts", "export"])
    assert exported.exit_code == 0, exported.output
    data = json.loads(exported.output)
    assert [p["slug"] for p in data["prompts"]] == ["other", "support"]
    support = data["prompts"][1]
    assert [(v["number"], v["note"], v["created_by"]) for v in support["versions"]] == [
        (1, "", ""),
        (2, "kinder", "ann"),
    ]
    assert support["versions"][1]["variables"] == {"customer": "Bob"}
    path = tmp_path / "prompts.json"
    path.write_text(exported.output)

    runner = target.test_cli_runner()
    first = runner.invoke(args=["prompts", "import", str(path)])
    assert first.exit_code == 0, first.output
    assert "2 new prompts, 0 updated, 3 new versions, 0 already there" in first.output
    assert counts(target) == (2, 3)
    again = runner.invoke(args=["prompts", "import", str(path)])
    assert "0 new prompts, 0 updated, 0 new versions, 3 already there" in again.output
    assert counts(target) == (2, 3)
    # The round trip is exact: exporting the target gives the same file.
    assert runner.invoke(args=["prompts", "export"]).output == exported.output


def test_export_one_slug_and_an_unknown_one(source):
    runner = source.test_cli_runner()
    one = json.loads(runner.invoke(args=["prompts", "export", "--slug", "other"]).output)
    assert [p["slug"] for p in one["prompts"]] == ["other"]
    missing = runner.invoke(args=["prompts", "export", "--slug", "nope"])
    assert missing.exit_code == 1 and "There is no prompt with the slug 'nope'." in missing.output


def test_import_adds_only_the_new_versions_of_an_existing_prompt(source, tmp_path):
    runner = source.test_cli_runner()
    data = json.loads(runner.invoke(args=["prompts", "export", "--slug", "support"]).output)
    data["prompts"][0]["versions"].append(
        {**data["prompts"][0]["versions"][-1], "number": 3, "system_prompt": "Third."}
    )
    path = tmp_path / "more.json"
    path.write_text(json.dumps(data))
    result = runner.invoke(args=["prompts", "import", str(path)])
    assert "1 new versions, 2 already there" in result.output
    with source.app_context():
        numbers = db.session.scalars(select(PromptVersion.number).join(Prompt).where(Prompt.slug == "support")).all()
    assert sorted(numbers) == [1, 2, 3]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "This is not a prompts export file"),
        (
            b'{"format": "something-else", "format_version": 1, "prompts": []}',
            "expected format 'prompt-tracker/prompts'",
        ),
        (
            b'{"format": "prompt-tracker/prompts", "format_version": 1, "prompts": [{"slug": "a"}]}',
            "Object missing required field",
        ),
        (
            json.dumps(
                {
                    "format": "prompt-tracker/prompts",
                    "format_version": 1,
                    "prompts": [
                        {
                            "slug": "good",
                            "name": "Good",
                            "versions": [{"number": 1, "system_prompt": "ok", "provider": "echo", "model": "m"}],
                        },
                        {
                            "slug": "bad",
                            "name": "Bad",
                            "versions": [{"number": 1, "system_prompt": "{{ broken", "provider": "echo", "model": "m"}],
                        },
                    ],
                }
            ).encode(),
            "prompt 2 ('bad'): The system prompt is not a valid template",
        ),
        (
            json.dumps(
                {
                    "format": "prompt-tracker/prompts",
                    "format_version": 1,
                    "prompts": [
                        {
                            "slug": "Bad Slug",
                            "name": "X",
                            "versions": [{"number": 1, "system_prompt": "", "provider": "echo", "model": "m"}],
                        },
                    ],
                }
            ).encode(),
            "may only hold lowercase letters",
        ),
        (
            b'{"format": "prompt-tracker/prompts", "format_version": 1, "prompts": [{"slug": "a", "name": "caf\xe9", '
            b'"versions": [{"number": 1, "system_prompt": "", "provider": "echo", "model": "m"}]}]}',
            "is not valid JSON (UTF-8)",
        ),
        (
            b'{"format": "prompt-tracker/prompts", "format_version": 1, "prompts": [], "more": '
            + b"[" * 100_000
            + b"]" * 100_000
            + b"}",
            "nests its data too deeply",
        ),
    ],
)
def test_malformed_files_are_refused_with_a_sentence_and_nothing_written(target, tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    result = target.test_cli_runner().invoke(args=["prompts", "import", str(path)])
    assert result.exit_code == 1
    assert message in result.output and "Nothing was imported." in result.output
    assert "Traceback" not in result.output
    assert counts(target) == (0, 0)


def test_import_without_tables_says_to_run_the_migration(tmp_path):
    app = create_app("test")
    path = tmp_path / "empty.json"
    path.write_text('{"format": "prompt-tracker/prompts", "format_version": 1, "prompts": []}')
    result = app.test_cli_runner().invoke(args=["prompts", "export"])
    assert result.exit_code == 1 and "run `flask db upgrade` first" in result.output
