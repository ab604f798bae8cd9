"""The prompt pages after the walk-through (issue 17): old slugs redirect, versions open and restore in the
playground, the diff marks changed words, and the providers' settings say how to add one and how big a
local model's context window is."""

import re
import time

import pytest

from prompt_tracker import create_app
from prompt_tracker.domain.pricing import context_window
from prompt_tracker.domain.text_diff import Piece
from prompt_tracker.extensions import db
from prompt_tracker.prompts.diff import changed_words
from prompt_tracker.providers import context_windows
from prompt_tracker.providers.context_windows import fetch_model_list, forget_model_lists, parse_context_windows

from .conftest import wait_for
from .test_prompts import Library


@pytest.fixture
def library():
    app = create_app("test")
    with app.app_context():
        db.create_all()
    yield Library(app, app.test_client())
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def page(response) -> str:
    return response.get_data(as_text=True)


# --- old slugs redirect -----------------------------------------------------------------------------


def test_an_old_slug_redirects_every_address_under_it_to_the_new_one(library):
    library.create("Before", "v1")
    library.save_settings("before", system_prompt="v2")
    library.post("/prompts/before/playground/versions")
    library.send("before", "hello")
    assert library.post("/prompts/before/edit", name="Middle", slug="middle").status_code == 303
    assert library.post("/prompts/middle/edit", name="After", slug="after").status_code == 303
    client = library.client
    for old in ("before", "middle"):  # a chain of renames goes straight to the latest slug
        for path, target in (
            (f"/prompts/{old}", "/prompts/after"),
            (f"/prompts/{old}/playground", "/prompts/after/playground"),
            (f"/prompts/{old}/diff?from=1&to=2&view=unified", "/prompts/after/diff?from=1&to=2&view=unified"),
            (f"/prompts/{old}/playground/export.json", "/prompts/after/playground/export.json"),
        ):
            response = client.get(path)
            assert (response.status_code, response.headers["Location"]) == (301, target), path
    # A form posted from a page loaded before the rename keeps its method and body (308), and lands.
    response = library.post("/prompts/before/playground/messages", content="from an old tab")
    assert (response.status_code, response.headers["Location"]) == (308, "/prompts/after/playground/messages")
    # (The test client resends no body on a 308: post again where a browser would.)
    assert library.post(response.headers["Location"], content="from an old tab").status_code == 303
    # The playground followed the rename (keyed by id): its conversation is there under the new slug.
    shown = page(client.get("/prompts/before/playground", follow_redirects=True))
    assert "hello" in shown and "from an old tab" in shown
    assert client.get("/prompts/never-was").status_code == 404
    assert client.get("/prompts/never-was/playground").status_code == 404


def test_a_new_prompt_or_a_rename_may_take_an_old_slug_and_it_stops_redirecting(library):
    library.create("First", "one")
    library.post("/prompts/first/edit", name="First", slug="first-renamed")
    assert library.client.get("/prompts/first").status_code == 301
    # A new prompt takes the old slug: the address is the new prompt's now.
    assert library.create("First again", "two", slug="first").status_code == 303
    assert "First again" in page(library.client.get("/prompts/first"))
    # Renaming back to an own old slug works too, and the slug left behind redirects instead.
    library.post("/prompts/first/edit", name="First again", slug="second")
    library.post("/prompts/first-renamed/edit", name="First", slug="first")
    assert "one" in page(library.client.get("/prompts/first"))
    assert library.client.get("/prompts/first-renamed").headers["Location"] == "/prompts/first"
    assert library.client.get("/prompts/second").status_code == 200


# --- a version opened in the playground, or restored ---------------------------------------------


def test_open_in_playground_and_restore_make_a_version_the_playground_settings(library):
    library.create("Versions", "first {{ who }}")
    library.post("/prompts/versions/playground/variables", who="Ada")
    library.save_settings("versions", system_prompt="second {{ who }}", model="echo-2", temperature="0.3")
    library.post("/prompts/versions/playground/versions")
    library.save_settings("versions", system_prompt="a draft {{ who }}")
    shown = page(library.client.get("/prompts/versions"))
    assert "Your playground: unsaved changes (a draft)" in shown
    assert shown.count(">Open in playground</button>") == 2 and shown.count(">Restore</button>") == 2

    # Open version 1 in the playground: its settings are the playground's, the page says which version.
    response = library.post("/prompts/versions/versions/1/restore", then="playground")
    assert (response.status_code, response.headers["Location"]) == (303, "/prompts/versions/playground")
    playground = page(library.client.get(response.headers["Location"]))
    assert "Settings of version 1 loaded; the latest is version 2." in playground
    assert "first {{ who }}</textarea>" in playground and 'value="echo-1"' in playground
    assert "The settings above are version 1's" in playground
    assert 'value="Ada"' in playground  # the variable values typed are kept
    library.send("versions", "hi")
    reply = library.messages(f"prompt-{library.prompt('versions').id}")[-1]
    assert (reply.version, reply.draft, reply.params["temperature"]) == (1, False, 0.7)
    assert "Your playground: the settings of version 1" in page(library.client.get("/prompts/versions"))

    # Restore version 2 from the prompt page: no new version, back on the prompt page.
    response = library.post("/prompts/versions/versions/2/restore")
    assert (response.status_code, response.headers["Location"]) == (303, "/prompts/versions#v2")
    shown = page(library.client.get("/prompts/versions"))
    assert "are version 2&#39;s now (no new version was saved)" in shown
    assert "Your playground: the settings of version 2" in shown
    assert len(library.versions("versions")) == 2
    playground = page(library.client.get("/prompts/versions/playground"))
    assert "second {{ who }}</textarea>" in playground and 'id="restored-version"' not in playground

    # A change saved from the settings form is a draft again.
    library.save_settings("versions", system_prompt="first {{ who }}", model="echo-1")
    library.send("versions", "again")
    reply = library.messages(f"prompt-{library.prompt('versions').id}")[-1]
    assert (reply.version, reply.draft) == (None, True)
    assert library.post("/prompts/versions/versions/9/restore").status_code == 404


# --- the diff marks changed words ----------------------------------------------------------------


def test_a_changed_line_marks_only_its_changed_words_escaped(library):
    library.create("Worded", "Answer politely in <b>English</b>.\nKeep it short.")
    library.save_settings("worded", system_prompt="Answer briefly in <b>French</b>.\nKeep it short.\nSign off.")
    library.post("/prompts/worded/playground/versions")
    split = page(library.client.get("/prompts/worded/diff?from=1&to=2"))
    changed = re.search(r'<tr class="changed">(.*?)</tr>', split, re.S).group(1)
    left, right = re.findall(r'<td class="(?:left|right)">(.*?)</td>', changed)
    assert left == "Answer <del>politely</del> in &lt;b&gt;<del>English</del>&lt;/b&gt;."
    assert right == "Answer <ins>briefly</ins> in &lt;b&gt;<ins>French</ins>&lt;/b&gt;."
    # What a removal and the addition after it share is not marked: only the words added are.
    assert changed_words("You answer questions.", "You answer questions for {{ who }}.") == [
        Piece("same", "You answer questions"),
        Piece("added", " for {{ who }}"),
        Piece("same", "."),
    ]
    assert changed_words("a cat", "a catalog")[-2:] == [Piece("removed", "cat"), Piece("added", "catalog")]
    assert re.search(r'<tr class="same">.*?Keep it short\.', split, re.S)
    assert re.search(r'<tr class="added">.*?<td class="right">Sign off\.</td>', split, re.S)


# --- providers: how to add one, and a local model's context window -----------------------------------


def test_with_only_echo_the_settings_say_which_variables_add_a_provider(monkeypatch, fake_openai):
    with_openai = page(create_app("test").test_client().get("/playground"))
    assert 'id="provider-setup"' not in with_openai
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    echo_only = page(create_app("test").test_client().get("/playground"))
    hint = re.search(r'<p class="hint" id="provider-setup">(.*?)</p>', echo_only, re.S).group(1)
    assert hint.startswith("Only the offline echo provider is set up.")
    for variable in (
        "OPENAI_API_KEY for OpenAI",
        "OPENAI_BASE_URL",
        "Ollama",
        "vLLM",
        "llama.cpp",
        "ANTHROPIC_API_KEY",
    ):
        assert variable in hint
    assert "MODEL_CONTEXT_WINDOWS" in hint


@pytest.mark.parametrize(
    "text, windows",
    [
        ("llama3.1:8b=131072, qwen2.5/coder = 32_768,", {"llama3.1:8b": 131072, "qwen2.5/coder": 32768}),
        ("", {}),
    ],
)
def test_model_context_windows_reads_model_equals_tokens_pairs(text, windows):
    assert parse_context_windows(text) == windows


@pytest.mark.parametrize("text", ["llama3", "llama3=", "=4096", "llama3=4k", "llama3=0"])
def test_a_bad_model_context_windows_stops_the_app_at_start_with_a_sentence(text, monkeypatch):
    from config import ConfigError

    monkeypatch.setenv("MODEL_CONTEXT_WINDOWS", text)
    with pytest.raises(ConfigError, match=r"MODEL_CONTEXT_WINDOWS takes model=tokens pairs .* is not one\."):
        create_app("development")


def test_a_local_models_window_comes_from_the_setting_or_the_servers_model_list(
    app, playground, fake_openai, monkeypatch
):
    forget_model_lists()
    fake_openai.script.models = [
        {"id": "served-by-vllm", "object": "model", "max_model_len": 2048},
        {"id": "model.gguf", "object": "model", "meta": {"n_ctx_train": 4096, "n_vocab": 32000}},
        {"id": "llama3.1:8b", "object": "model", "owned_by": "library"},  # Ollama: no window
    ]
    fake_openai.script.models_delay = 1.0  # a slow server is never waited for
    context_window("anthropic", "claude-haiku-4-5")  # the price data loaded (about a second, once per process)
    started = time.monotonic()
    assert context_window("openai", "served-by-vllm") is None
    assert time.monotonic() - started < 0.9  # the server answers after 1 s: not waited for
    assert wait_for(lambda: context_window("openai", "served-by-vllm")) == 2048
    assert context_window("openai", "model.gguf") == 4096
    assert context_window("openai", "llama3.1:8b") is None
    assert fake_openai.model_list_requests == 1  # asked once, then kept
    monkeypatch.setenv("MODEL_CONTEXT_WINDOWS", "llama3.1:8b=8192,served-by-vllm=1024")
    assert (context_window("openai", "llama3.1:8b"), context_window("openai", "served-by-vllm")) == (8192, 1024)
    monkeypatch.delenv("MODEL_CONTEXT_WINDOWS")

    # The meter under a reply and the warning before a send use it.
    playground.save_settings(provider="openai", model="served-by-vllm", max_tokens=1000)
    assert playground.send("hello").status_code == 303
    assert '<meter min="0" max="2048" value="30">' in page(playground.page())
    response = playground.send("x" * 6000)
    assert response.status_code == 409
    assert "This may not fit served-by-vllm&#39;s context window of 2,048 tokens" in page(response)


def test_a_server_without_a_model_list_gives_no_window_and_is_asked_again_later(fake_openai, monkeypatch):
    forget_model_lists()
    assert fetch_model_list(fake_openai.base_url) == {}  # 404
    assert context_window("openai", "anything") is None
    monkeypatch.setattr(context_windows, "RETRY_SECONDS", 0.0)
    fake_openai.script.models = [{"id": "anything", "context_length": 999}]
    assert wait_for(lambda: context_window("openai", "anything")) == 999
