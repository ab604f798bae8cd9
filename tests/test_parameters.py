"""Parameters beyond temperature and max tokens: only those the provider takes are shown, sent and recorded."""

import re

import pytest

from prompt_tracker.domain.settings import PlaygroundSettings

ALL = {
    "top_p": "0.9",
    "stop": "###\nEND\\n",
    "seed": "42",
    "presence_penalty": "0.5",
    "frequency_penalty": "-0.25",
    "thinking_budget": "2048",
}


def shown_params(page: str) -> set[str]:
    """Names of the optional parameter fields the page shows (not hidden)."""
    return set(re.findall(r'<div class="param" data-providers="[^"]*">\s*<label for="(\w+)"', page))


def test_settings_keep_every_parameter_and_the_page_shows_them(app, playground, fake_openai):
    response = playground.save_settings(provider="openai", model="gpt-4o-mini", **ALL)
    assert response.status_code == 303
    with playground.client.session_transaction() as session:
        stored = session["settings"]["standalone"]
    assert stored["top_p"] == 0.9 and stored["seed"] == 42 and stored["stop"] == ["###", "END\n"]
    assert stored["presence_penalty"] == 0.5 and stored["frequency_penalty"] == -0.25
    page = playground.page().get_data(as_text=True)
    assert shown_params(page) == {"top_p", "stop", "seed", "presence_penalty", "frequency_penalty"}
    assert 'value="0.90"' in page and 'value="42"' in page and "###\nEND\\n</textarea>" in page


def test_echo_shows_no_optional_parameters_and_anthropic_its_own(playground, fake_anthropic):
    assert shown_params(playground.page().get_data(as_text=True)) == set()
    playground.save_settings(provider="anthropic", model="claude-sonnet-4-6")
    assert shown_params(playground.page().get_data(as_text=True)) == {"top_p", "stop", "thinking_budget"}


@pytest.mark.parametrize(
    "fields, field, expected",
    [
        ({"top_p": "1.5"}, "top_p", "Number must be between 0.0 and 1.0."),
        ({"seed": "-1"}, "seed", "Number must be between 0 and"),
        ({"presence_penalty": "3"}, "presence_penalty", "Number must be between -2.0 and 2.0."),
        ({"stop": "a\nb\nc\nd\ne"}, "stop", "Up to 4 stop sequences; this has 5."),
        ({"stop": "x" * 101}, "stop", "A stop sequence is limited to 100 characters."),
        ({"thinking_budget": "100"}, "thinking_budget", "Number must be between 1024 and 32000."),
        (
            {"provider": "anthropic", "model": "claude-sonnet-4-6", "thinking_budget": "2048", "max_tokens": "2048"},
            "thinking_budget",
            "The thinking budget must be below max tokens",
        ),
    ],
)
def test_bad_parameters_are_refused_next_to_their_field(playground, fake_anthropic, fields, field, expected):
    response = playground.save_settings(**fields)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert f'<p class="field-error" id="{field}-error">{expected}' in html  # under its field
    assert html.count(expected) == 1  # once: the flash only says that nothing was saved
    assert f'aria-describedby="{field}-error"' in html
    assert "Settings not saved: correct the fields marked below." in html


def test_openai_is_sent_its_parameters_and_the_reply_records_them(app, playground, fake_openai):
    playground.save_settings(provider="openai", model="gpt-4o-mini", temperature="0.3", max_tokens="300", **ALL)
    playground.send("hello?")
    body = fake_openai.requests[-1].body
    assert body["temperature"] == 0.3 and body["max_tokens"] == 300 and body["top_p"] == 0.9
    assert body["stop"] == ["###", "END\n"] and body["seed"] == 42
    assert body["presence_penalty"] == 0.5 and body["frequency_penalty"] == -0.25
    assert "thinking" not in body and "budget_tokens" not in str(body)
    reply = playground.messages(app)[-1]
    assert reply.status == "done"
    assert reply.params == {
        "temperature": 0.3,
        "max_tokens": 300,
        "top_p": 0.9,
        "stop": ["###", "END\n"],
        "seed": 42,
        "presence_penalty": 0.5,
        "frequency_penalty": -0.25,
    }
    page = playground.page().get_data(as_text=True)
    assert (
        'temperature=0.3 max_tokens=300 top_p=0.9 stop=["###", "END\\n"] seed=42 '
        "presence_penalty=0.5 frequency_penalty=-0.25"
    ) in page


def test_unset_parameters_are_not_sent(playground, fake_openai):
    playground.save_settings(provider="openai", model="gpt-4o-mini")
    playground.send("hello?")
    body = fake_openai.requests[-1].body
    assert not {"top_p", "stop", "seed", "presence_penalty", "frequency_penalty"} & set(body)


def test_anthropic_thinking_budget_is_sent_without_sampling(app, playground, fake_anthropic):
    playground.save_settings(provider="anthropic", model="claude-sonnet-4-6", max_tokens="4096", **ALL)
    playground.send("think first")
    body = fake_anthropic.requests[-1].body
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert body["stop_sequences"] == ["###", "END\n"] and body["max_tokens"] == 4096
    # Anthropic refuses temperature / top_p with thinking on; seed and penalties are OpenAI's
    assert not {"temperature", "top_p", "seed", "presence_penalty", "frequency_penalty"} & set(body)
    assert playground.messages(app)[-1].params == {
        "max_tokens": 4096,
        "stop": ["###", "END\n"],
        "thinking_budget": 2048,
    }


def test_anthropic_sampling_without_thinking_and_models_without_either(playground, fake_anthropic):
    fields = {"top_p": "0.8", "stop": "STOP"}
    playground.save_settings(provider="anthropic", model="claude-haiku-4-5", temperature="0.4", **fields)
    playground.send("one")
    body = fake_anthropic.requests[-1].body
    assert body["temperature"] == 0.4 and body["top_p"] == 0.8 and body["stop_sequences"] == ["STOP"]
    assert "thinking" not in body
    # a model that takes neither sampling nor a thinking budget gets neither
    playground.save_settings(
        provider="anthropic", model="claude-opus-4-7", max_tokens="4096", thinking_budget="2048", **fields
    )
    playground.send("two")
    body = fake_anthropic.requests[-1].body
    assert not {"thinking", "temperature", "top_p"} & set(body) and body["stop_sequences"] == ["STOP"]


@pytest.mark.parametrize(
    "model, takes",
    [
        ("claude-sonnet-4-6", True),
        ("claude-haiku-4-5", True),
        ("claude-opus-4-1-20250805", True),
        ("claude-3-7-sonnet-latest", True),
        ("claude-opus-4-6", False),
        ("claude-opus-4-7", False),
        ("claude-3-5-haiku-latest", False),
        ("some-proxy-model", False),
    ],
)
def test_which_anthropic_models_take_a_thinking_budget(model, takes):
    from prompt_tracker.providers.anthropic_messages import takes_thinking

    assert takes_thinking(model) is takes


def test_params_are_chosen_by_provider_and_model():
    settings = PlaygroundSettings(provider="echo", model="echo-1", top_p=0.5, seed=1, stop=["x"])
    assert settings.params() == {"temperature": 0.7, "max_tokens": 1024}
    settings = PlaygroundSettings(provider="anthropic", model="claude-sonnet-4-6", top_p=0.5, thinking_budget=2000)
    assert settings.params() == {"max_tokens": 1024, "thinking_budget": 2000}
    settings = PlaygroundSettings(provider="anthropic", model="claude-opus-4-7", top_p=0.5, thinking_budget=2000)
    assert settings.params() == {"max_tokens": 1024}
