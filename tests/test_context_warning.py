"""A send that would likely not fit the model's context window is held back once, with an estimate."""

import time

import pytest

from prompt_tracker.domain.messages import Message, Usage, new_message_id
from prompt_tracker.domain.settings import STANDALONE
from prompt_tracker.extensions import services
from prompt_tracker.replies.context import estimated_tokens

from .test_conversation_edits import add


@pytest.fixture
def openai_known(app, monkeypatch):
    """OpenAI at its own endpoint (so the price data knows its windows); no reply is ever written."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-used")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with app.app_context():
        monkeypatch.setattr(services.queue, "enqueue", lambda *args, **kwargs: None)


def reply_with_usage(app, playground, input_tokens):
    with app.app_context():
        services.store.append(
            playground.store(),
            STANDALONE,
            Message(
                id=new_message_id(),
                role="assistant",
                content="ok",
                usage=Usage(input_tokens=input_tokens, output_tokens=9),
                created_at=time.time(),
            ),
        )


def test_the_estimate_starts_from_the_last_reported_usage():
    def message(role, content, usage=None):
        return Message(id=content[:8], role=role, content=content, usage=usage, created_at=0)

    history = [
        message("user", "a" * 400),
        message("assistant", "b" * 400, Usage(input_tokens=1000, output_tokens=200)),
        message("user", "c" * 800),
    ]
    assert estimated_tokens(history, "", "d" * 40, history_cap=0) == 1000 + 200 + (800 + 40) // 4
    # no usage reported anywhere: characters of everything, the system prompt included
    assert estimated_tokens(history[:1], "s" * 400, "d" * 40, history_cap=0) == (400 + 400 + 40) // 4
    # a request never carries more history than the cap
    assert estimated_tokens(history, "", "d" * 40, history_cap=400) == 100


def test_a_send_past_the_window_is_refused_once_with_the_text_kept(app, playground, openai_known):
    playground.save_settings(provider="openai", model="gpt-4", max_tokens=4000)  # an 8,192-token window
    assert playground.send("short").status_code == 303
    reply_with_usage(app, playground, 21)
    add(playground, "user", "x" * 20_000)
    add(playground, "user", "y" * 20_000)
    response = playground.send("one more question")
    assert response.status_code == 409
    html = response.get_data(as_text=True)
    assert "This may not fit gpt-4&#39;s context window of 8,192 tokens" in html
    assert "(an estimate:" in html and 'name="confirm_overflow" value="1"' in html
    assert ">\none more question</textarea>" in html
    assert len(playground.messages(app)) == 5
    # the same Send again, confirmed: it goes
    response = playground.client.post(
        "/playground/messages",
        data={"content": "one more question", "confirm_overflow": "1", "csrf_token": playground.token()},
    )
    assert response.status_code == 303
    assert playground.messages(app)[-2].content == "one more question"
    json = playground.send("and another", headers={"Accept": "application/json"})
    assert json.status_code == 409 and json.get_json()["overflow"] is True


def test_reported_usage_near_the_window_warns(app, playground, openai_known):
    playground.save_settings(provider="openai", model="gpt-4", max_tokens=100)
    assert playground.send("first").status_code == 303
    reply_with_usage(app, playground, 8_100)
    assert playground.send("second").status_code == 409  # 8,109 reported + 100 for the reply > 8,192
    playground.save_settings(provider="echo", model="echo-1")  # a window the data does not know: no warning
    assert playground.send("second").status_code == 303
