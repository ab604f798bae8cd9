"""Limits that protect the operator: the model allow-list, the max_tokens ceiling, rates and budgets."""

import pytest

from prompt_tracker import create_app

from .conftest import Playground


@pytest.fixture
def strict_app(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-key")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-not-a-key")
    return create_app("test", {"ALLOWED_MODELS": ["echo:*", "openai:gpt-4o-mini"], "MAX_TOKENS_CEILING": 2048})


def test_only_allowed_providers_are_offered(strict_app):
    page = strict_app.test_client().get("/playground").get_data(as_text=True)
    assert 'value="echo"' in page and 'value="openai"' in page
    assert 'value="anthropic"' not in page


@pytest.mark.parametrize(("fields", "sentence"), [
    ({"provider": "openai", "model": "gpt-4o"}, "openai / gpt-4o is not allowed here; allowed: echo:*, openai:gpt-4o-mini."),
    ({"provider": "anthropic", "model": "claude-3-5-haiku-latest"}, "Not a valid choice"),
    ({"max_tokens": 4096}, "Max tokens is limited to 2,048 here."),
])
def test_a_setting_outside_the_limits_is_refused_next_to_its_field(strict_app, fields, sentence):
    playground = Playground(strict_app.test_client())
    response = playground.save_settings(**fields)
    assert response.status_code == 422
    assert sentence in response.get_data(as_text=True)


def test_allowed_settings_are_saved(strict_app):
    playground = Playground(strict_app.test_client())
    assert playground.save_settings(provider="openai", model="gpt-4o-mini", max_tokens=2048).status_code == 303
