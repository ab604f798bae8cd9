"""The operations kit: structured JSON logs and the production headers."""

import json

import pytest

from prompt_tracker import create_app
from prompt_tracker.domain.messages import Message, Usage
from prompt_tracker.replies.reply import log_reply

from .conftest import COOKIE, Playground


@pytest.fixture
def json_app():
    return create_app("test", {"LOG_FORMAT": "json", "HSTS_SECONDS": 3600})


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_one_json_line_per_request_without_the_session_id_or_the_prompt(capsys, json_app):
    playground = Playground(json_app.test_client())
    playground.save_settings(system_prompt="Secret system prompt text")
    playground.send("hello there")
    sid = playground.sid()
    lines = json_lines(capsys.readouterr().err)
    requests = [line for line in lines if line.get("event") == "request"]
    routes = [(line["method"], line["route"], line["status"]) for line in requests]
    assert ("POST", "/playground/settings", 303) in routes
    assert ("POST", "/playground/messages", 303) in routes
    assert all(isinstance(line["duration_ms"], float) and line["timestamp"].endswith("Z") for line in requests)
    everything = json.dumps(lines)
    assert sid and sid not in everything
    assert "Secret system prompt text" not in everything and "hello there" not in everything


def test_a_reply_is_logged_with_model_tokens_cost_and_latency(capsys, json_app):
    message = Message(
        id="m1",
        role="assistant",
        content="private reply",
        status="done",
        provider="openai",
        model="gpt-4o-mini",
        usage=Usage(input_tokens=11, output_tokens=42, cached_tokens=3),
        cost_usd=0.0001,
        first_token_ms=120,
        latency_ms=900,
        created_at=0.0,
    )
    with json_app.app_context():
        log_reply(message, "standalone")
    (line,) = json_lines(capsys.readouterr().err)
    assert line["event"] == "reply" and line["model"] == "gpt-4o-mini" and line["status"] == "done"
    assert (line["input_tokens"], line["output_tokens"], line["cached_tokens"]) == (11, 42, 3)
    assert line["cost_usd"] == 0.0001 and line["latency_ms"] == 900 and line["first_token_ms"] == 120
    assert "private reply" not in json.dumps(line)


def test_pages_are_not_cached_static_files_are_and_hsts_is_sent_when_configured(json_app):
    client = json_app.test_client()
    page = client.get("/playground")
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["Strict-Transport-Security"] == "max-age=3600; includeSubDomains"
    with client.get("/static/style.css") as static:
        assert static.status_code == 200 and "no-store" not in static.headers.get("Cache-Control", "")
    assert client.get_cookie(COOKIE) is not None


def test_no_hsts_by_default_in_development():
    page = create_app("test").test_client().get("/playground")
    assert "Strict-Transport-Security" not in page.headers


def test_the_wsgi_entry_point_reads_a_local_env_file(tmp_path):
    import subprocess
    import sys

    from .processes import ROOT

    (tmp_path / ".env").write_text("SECRET_KEY=from-the-dotenv-file-0123456789abcdef\n")
    shown = subprocess.run(
        [sys.executable, "-c", "import wsgi; print(wsgi.app.config['SECRET_KEY'])"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.stdout.strip() == "from-the-dotenv-file-0123456789abcdef", shown.stderr


def test_a_refused_configuration_is_its_sentence_on_the_command_line_not_a_traceback(tmp_path):
    import subprocess
    import sys

    from .processes import ROOT

    refused = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "PROMPT_TRACKER_ENV": "production"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 3  # gunicorn's code for a worker that cannot boot: its master stops
    assert "Prompt Tracker refuses to start in production: set REDIS_URL" in refused.stderr
    assert "Traceback" not in refused.stderr


@pytest.mark.parametrize("preload", [1, 0])
def test_a_worker_preloads_the_provider_sdks_unless_told_not_to(monkeypatch, preload):
    """Before its first job a worker builds every provider's client (a first reply starts at once);
    PRELOAD_PROVIDER_SDKS=0 leaves that to the first job needing one (the tests' many workers)."""
    from prompt_tracker.providers import available_providers
    from prompt_tracker.replies import worker

    warmed = []
    monkeypatch.setattr(worker, "_preloaded", False)
    app = create_app("test", overrides={"PRELOAD_PROVIDER_SDKS": preload})
    with app.app_context():
        providers = available_providers()
        for provider in providers:
            monkeypatch.setattr(provider, "warm", lambda name=provider.name: warmed.append(name))
        worker.preload()
        worker.preload()  # once per process
    assert sorted(warmed) == (sorted(provider.name for provider in providers) if preload else [])
