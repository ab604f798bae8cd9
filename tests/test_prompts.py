"""The prompt library through HTTP: the same behaviour on in-memory SQLite and on a real PostgreSQL."""

import json
import re
import threading
from html.parser import HTMLParser

import pytest
from sqlalchemy import event, select, text

from prompt_tracker import create_app
from prompt_tracker.domain.keys import store_id
from prompt_tracker.domain.settings import STANDALONE
from prompt_tracker.extensions import db, services
from prompt_tracker.prompts.library import create_prompt, save_version
from prompt_tracker.prompts.models import Prompt, PromptVersion

from .conftest import CSRF_RE


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def prompt_app(request):
    """The test app with the prompt tables: in-memory SQLite, or a fresh database on the private PostgreSQL."""
    overrides = {}
    if request.param == "postgresql":
        overrides["SQLALCHEMY_DATABASE_URI"] = request.getfixturevalue("postgres_server").create_database()
    app = create_app("test", overrides=overrides)
    with app.app_context():
        db.create_all()
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


class Library:
    """What a person does on the prompt pages and in a prompt's playground, through the test client."""

    def __init__(self, app, client):
        self.app = app
        self.client = client

    def token(self, path="/prompts") -> str:
        return CSRF_RE.search(self.client.get(path).get_data(as_text=True)).group(1)

    def create(self, name, system_prompt="", **fields):
        data = {"name": name, "system_prompt": system_prompt, "csrf_token": self.token(), **fields}
        return self.client.post("/prompts", data=data)

    def post(self, path, **fields):
        return self.client.post(path, data={**fields, "csrf_token": self.token()})

    def send(self, slug, content):
        return self.post(f"/prompts/{slug}/playground/messages", content=content)

    def save_settings(self, slug, **fields):
        data = {"system_prompt": "", "provider": "echo", "model": "echo-1", "temperature": "0.7", "max_tokens": "1024"}
        data.update({key: str(value) for key, value in fields.items()})
        return self.post(f"/prompts/{slug}/playground/settings", **data)

    def prompt(self, slug) -> Prompt:
        with self.app.app_context():
            prompt = db.session.scalar(select(Prompt).where(Prompt.slug == slug))
            db.session.expunge_all()
            return prompt

    def versions(self, slug) -> list[PromptVersion]:
        with self.app.app_context():
            prompt = db.session.scalar(select(Prompt).where(Prompt.slug == slug))
            versions = list(prompt.versions)
            db.session.expunge_all()
            return versions

    def sid(self):
        return self.client.get_cookie("_prompt_tracker_session").value

    def messages(self, playground):
        with self.app.app_context():
            return services.store.all(store_id(self.sid()), playground)


@pytest.fixture
def library(prompt_app):
    return Library(prompt_app, prompt_app.test_client())


def page(response) -> str:
    return response.get_data(as_text=True)


# --- list, create, show ---------------------------------------------------------------------


def test_create_shows_the_prompt_with_version_1_and_lists_it(library):
    response = library.create("Support bot", "You answer support questions.", description="For the help desk")
    assert response.status_code == 303
    assert response.headers["Location"] == "/prompts/support-bot"
    shown = page(library.client.get("/prompts/support-bot"))
    assert "Support bot" in shown and "For the help desk" in shown
    assert "Version 1" in shown and "You answer support questions." in shown
    assert "Open in playground" in shown
    listed = page(library.client.get("/prompts"))
    assert 'href="/prompts/support-bot"' in listed
    assert re.search(r"support-bot</span></td>\s*<td>1</td>", listed)


def test_search_by_name_slug_and_text(library):
    library.create("Alpha", "Talk like a pirate.")
    library.create("Beta", "Be terse.", slug="second-one")
    library.create("Gamma 50%", "Plain.")

    def found(query):
        return set(
            re.findall(r'href="/prompts/([a-z0-9-]+)"', page(library.client.get("/prompts", query_string={"q": query})))
        )

    assert found("alp") == {"alpha"}
    assert found("SECOND") == {"second-one"}
    assert found("pirate") == {"alpha"}
    assert found("50%") == {"gamma-50"}
    assert found("%") == {"gamma-50"}  # a wildcard character is searched for, not a wildcard
    assert found("nothing like this") == set()
    assert "No prompt matches." in page(library.client.get("/prompts?q=zzz"))


def test_list_is_newest_edited_first_and_paginated(library):
    with library.app.app_context():
        for number in range(60):
            db.session.add(
                Prompt(
                    slug=f"p-{number:02d}",
                    name=f"P {number:02d}",
                    versions=[PromptVersion(number=1, provider="echo", model="echo-1")],
                )
            )
        db.session.commit()
        newest = db.session.scalar(select(Prompt).where(Prompt.slug == "p-07"))
        save_version(newest.id, system_prompt="edited", provider="echo", model="echo-1", params={}, variables={})
    first = page(library.client.get("/prompts"))
    slugs = re.findall(r'href="/prompts/(p-\d+)"', first)
    assert slugs[0] == "p-07" and len(slugs) == 50
    assert "page 1 of 2" in first
    second = re.findall(r'href="/prompts/(p-\d+)"', page(library.client.get("/prompts?page=2")))
    assert len(second) == 10 and not set(second) & set(slugs)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": ""}, "Give the prompt a name."),
        ({"name": "   "}, "Give the prompt a name."),
        ({"name": "X", "slug": "Not A Slug!"}, "may only hold lowercase letters, digits and hyphens"),
        ({"name": "X", "system_prompt": "Hello {{ name"}, "not a valid template"),
        ({"name": "X", "system_prompt": "x" * 20_001}, "limited to 20,000 characters; this one has 20,001"),
        ({"name": "n" * 201}, "Name: Field cannot be longer than 200 characters."),
    ],
)
def test_bad_input_is_refused_with_a_sentence_and_the_text_kept(library, fields, message):
    data = {"system_prompt": "keep me", **fields}
    response = library.create(**data)
    assert response.status_code == 422
    body = page(response)
    assert message in body
    assert (data["system_prompt"][:50] if data["system_prompt"] else "") in body
    with library.app.app_context():
        assert db.session.scalar(select(Prompt)) is None


def test_duplicate_slug_is_refused_and_nothing_changes(library):
    library.create("Same", "first")
    response = library.create("Same", "second")
    assert response.status_code == 422
    assert "A prompt with the slug &#39;same&#39; already exists" in page(response)
    assert [v.system_prompt for v in library.versions("same")] == ["first"]


def test_a_1_mb_system_prompt_is_refused_as_too_large(library):
    response = library.client.post(
        "/prompts", data={"name": "Big", "system_prompt": "x" * 1_000_000, "csrf_token": library.token()}
    )
    assert response.status_code == 413
    assert "too large" in page(response)


def test_unknown_slug_is_a_404_that_says_what(library):
    for path in ("/prompts/nope", "/prompts/nope/playground", "/prompts/nope/diff?from=1&to=2"):
        response = library.client.get(path)
        assert response.status_code == 404
        assert "There is no prompt with the slug &#39;nope&#39;." in page(response)


def test_archive_hides_from_the_list_and_restore_brings_it_back(library):
    library.create("Old one", "x")
    assert library.post("/prompts/old-one/archive").status_code == 303
    assert "old-one" not in page(library.client.get("/prompts"))
    assert "/prompts/old-one" in page(library.client.get("/prompts?archived=1"))
    assert "Restore" in page(library.client.get("/prompts/old-one"))
    library.post("/prompts/old-one/restore")
    assert "/prompts/old-one" in page(library.client.get("/prompts"))


def test_header_has_prompts_and_playground_links(library):
    for path in ("/playground", "/prompts"):
        body = page(library.client.get(path))
        assert '<a href="/prompts"' in body and '<a href="/playground"' in body


# --- diff ---------------------------------------------------------------------------------------


def test_diff_between_two_versions_side_by_side_and_unified_escaped(library):
    library.create("Diffed", "line one\nline two\n<script>alert(1)</script>")
    library.save_settings("diffed", system_prompt="line one\nline 2\n<script>alert(1)</script>\nadded", model="echo-2")
    library.post("/prompts/diffed/playground/versions", note="second take")
    split = page(library.client.get("/prompts/diffed/diff?from=1&to=2"))
    assert "<script>alert" not in split
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in split
    assert re.search(r'<tr class="changed">.*?line <del>two</del>.*?line <ins>2</ins>', split, re.S)  # the words
    assert re.search(r'<tr class="added">.*?added', split, re.S)
    assert "echo / echo-<del>1</del>" in split and "echo / echo-<ins>2</ins>" in split
    assert "Parameters <small>unchanged</small>" in split
    unified = page(library.client.get("/prompts/diffed/diff?from=1&to=2&view=unified"))
    assert '<span class="removed">-line two</span>' in unified
    assert '<span class="added">+line 2</span>' in unified
    assert "second take" in page(library.client.get("/prompts/diffed"))
    missing = library.client.get("/prompts/diffed/diff?from=1&to=9")
    assert missing.status_code == 404 and "has no version 9" in page(missing)


# --- the prompt's playground -----------------------------------------------------------------


def test_playground_starts_from_the_latest_version_and_replies_record_it(library):
    library.create("Helper", "You are helpful.")
    body = page(library.client.get("/prompts/helper/playground"))
    assert "You are helpful." in body
    assert "Save as version 2" in body
    assert 'action="/prompts/helper/playground/messages"' in body
    library.send("helper", "hi there")
    prompt = library.prompt("helper")
    user, reply = library.messages(f"prompt-{prompt.id}")
    assert user.content == "hi there" and reply.status == "done"
    assert reply.version == 1 and reply.draft is False
    assert "version 1" in page(library.client.get("/prompts/helper/playground"))
    assert library.messages(STANDALONE) == []


def test_unsaved_changes_are_a_draft_until_saved_as_the_next_version(library):
    library.create("Drafty", "v1 text")
    library.save_settings("drafty", system_prompt="v2 text")
    library.send("drafty", "one")
    assert "Save as version 2" in page(library.client.get("/prompts/drafty/playground"))
    response = library.post("/prompts/drafty/playground/versions", note="tightened")
    assert response.status_code == 303 and response.headers["Location"] == "/prompts/drafty/playground"
    library.send("drafty", "two")
    playground = f"prompt-{library.prompt('drafty').id}"
    replies = [m for m in library.messages(playground) if m.role == "assistant"]
    assert [(r.version, r.draft) for r in replies] == [(None, True), (2, False)]
    body = page(library.client.get("/prompts/drafty/playground"))
    assert ">draft</span>" in body and ">version 2</span>" in body
    (v1, v2) = library.versions("drafty")
    assert (v2.number, v2.system_prompt, v2.note, v2.created_by) == (2, "v2 text", "tightened", "local")


def test_save_version_takes_the_settings_form_when_it_comes_along(library):
    """The button and Ctrl/Cmd+S submit the settings form to …/versions: what is in the editor is saved."""
    library.create("Editor", "old")
    response = library.post(
        "/prompts/editor/playground/versions",
        system_prompt="from the editor",
        provider="echo",
        model="echo-1",
        temperature="0.2",
        max_tokens="99",
        note="",
    )
    assert response.status_code == 303
    latest = library.versions("editor")[-1]
    assert (latest.number, latest.system_prompt, latest.params) == (
        2,
        "from the editor",
        {"temperature": 0.2, "max_tokens": 99},
    )
    assert "from the editor" in page(library.client.get("/prompts/editor/playground"))


def test_two_prompts_keep_separate_conversations_and_reset_clears_only_one(library):
    library.create("First", "one")
    library.create("Second", "two")
    library.send("first", "to first")
    library.send("second", "to second")
    first, second = library.prompt("first"), library.prompt("second")
    assert [m.content for m in library.messages(f"prompt-{first.id}") if m.role == "user"] == ["to first"]
    assert [m.content for m in library.messages(f"prompt-{second.id}") if m.role == "user"] == ["to second"]
    assert "to second" not in page(library.client.get("/prompts/first/playground"))
    library.post("/prompts/first/playground/reset")
    assert library.messages(f"prompt-{first.id}") == []
    assert len(library.messages(f"prompt-{second.id}")) == 2


def test_rename_keeps_versions_and_the_open_conversation(library):
    library.create("Before", "text")
    library.send("before", "remember me")
    response = library.post("/prompts/before/edit", name="After", slug="after", description="renamed")
    assert response.status_code == 303 and response.headers["Location"] == "/prompts/after"
    assert "remember me" in page(library.client.get("/prompts/after/playground"))
    assert len(library.versions("after")) == 1
    assert library.client.get("/prompts/before").headers["Location"] == "/prompts/after"  # 301: see test_prompt_pages


def test_rename_to_a_taken_slug_is_refused(library):
    library.create("One", "x")
    library.create("Two", "y")
    response = library.post("/prompts/two/edit", name="Two", slug="one", description="")
    assert response.status_code == 422
    assert "already exists" in page(response)
    assert library.prompt("two").name == "Two"


def test_playground_settings_are_per_prompt(library):
    library.create("Left", "left prompt")
    library.create("Right", "right prompt")
    library.save_settings("left", system_prompt="left edited", model="echo-9")
    assert "left edited" in page(library.client.get("/prompts/left/playground"))
    right = page(library.client.get("/prompts/right/playground"))
    assert "right prompt" in right and "left edited" not in right
    assert "left edited" not in page(library.client.get("/playground"))


# --- template variables ------------------------------------------------------------------------


def test_variables_get_a_form_and_the_model_receives_the_rendered_prompt(library, fake_openai):
    library.create("Greeter", "Greet {{ customer }} from {{ company }}.")
    library.save_settings(
        "greeter", system_prompt="Greet {{ customer }} from {{ company }}.", provider="openai", model="gpt-4o-mini"
    )
    body = page(library.client.get("/prompts/greeter/playground"))
    assert 'name="variables.customer"' in body and 'name="variables.company"' in body
    library.post("/prompts/greeter/playground/variables", customer="Ada", company="<Acme>")
    library.send("greeter", "hello")
    assert fake_openai.requests[0].body["messages"][0] == {"role": "system", "content": "Greet Ada from <Acme>."}
    reply = library.messages(f"prompt-{library.prompt('greeter').id}")[-1]
    assert reply.variables == {"customer": "Ada", "company": "<Acme>"}
    assert reply.draft is True  # provider changed: not version 1
    library.post("/prompts/greeter/playground/versions")
    assert library.versions("greeter")[-1].variables == {"customer": "Ada", "company": "<Acme>"}


ATTRIBUTE_PAYLOAD = '" onmouseover="alert(1)" data-x=\'<b>&amp;'


class SpanAttributes(HTMLParser):
    """The attributes of every ``<span class="provenance">``, as a browser's parser reads them."""

    def __init__(self):
        super().__init__()
        self.found = []

    def handle_starttag(self, tag, attrs):
        if tag == "span" and ("class", "provenance") in attrs:
            self.found.append(dict(attrs))


def provenance_attributes(html: str) -> list[dict]:
    parser = SpanAttributes()
    parser.feed(html)
    return parser.found


def test_a_variable_value_in_the_version_label_stays_inside_its_title(library):
    """A default (or value) with a quote once put attributes on the version label (tojson leaves " as is)."""
    with library.app.app_context():
        create_prompt("Labels", "Hi {{ customer }}", variables={"customer": ATTRIBUTE_PAYLOAD})
    library.client.get("/prompts/labels/playground")
    library.post("/prompts/labels/playground/versions")  # the playground's settings, the default kept
    library.send("labels", "hello")  # version 2
    library.save_settings("labels", system_prompt="Hi {{ customer }}!")
    library.send("labels", "again")  # a draft
    html = page(library.client.get("/prompts/labels/playground"))
    version, draft = provenance_attributes(html)
    variables = json.dumps({"customer": ATTRIBUTE_PAYLOAD})
    assert set(version) == {"class", "title"} and json.loads(version["title"]) == {"customer": ATTRIBUTE_PAYLOAD}
    assert set(draft) == {"class", "title"} and json.loads(draft["title"].removeprefix("unsaved changes: ")) == (
        json.loads(variables)
    )


@pytest.mark.parametrize(
    ("system_prompt", "value", "message"),
    [
        ("Hello {{ customer }}", "", "Fill in the variable customer before sending."),
        ("Hello {{ customer }}", "   ", "Fill in the variable customer before sending."),
        ("{{ ''.__class__ }}", "", "tries to reach Python internals"),
        ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "", "tries to reach Python internals"),
        ("{{ customer.__init__.__globals__ }}", "x", "tries to reach Python internals"),
    ],
)
def test_bad_templates_are_refused_before_anything_is_sent_and_the_text_is_kept(library, system_prompt, value, message):
    library.create("Tpl", "plain")
    library.save_settings("tpl", system_prompt=system_prompt)
    library.post("/prompts/tpl/playground/variables", customer=value)
    response = library.send("tpl", "my precious text")
    assert response.status_code == 422
    body = page(response)
    assert message in body.replace("&#39;", "'")
    assert "my precious text" in body
    assert library.messages(f"prompt-{library.prompt('tpl').id}") == []


def test_a_syntax_error_shows_on_the_page_and_is_not_saved_as_a_version(library):
    library.create("Broken", "fine")
    library.save_settings("broken", system_prompt="Hi {{ name")
    body = page(library.client.get("/prompts/broken/playground"))
    assert "not a valid template" in body
    library.post("/prompts/broken/playground/versions")
    assert len(library.versions("broken")) == 1
    assert "Version not saved" in page(library.client.get("/prompts/broken/playground"))


def test_standalone_playground_can_be_saved_as_a_new_prompt(library):
    client = library.client
    token = CSRF_RE.search(page(client.get("/playground"))).group(1)
    client.post(
        "/playground/settings",
        data={
            "system_prompt": "Hi {{ who }}",
            "provider": "echo",
            "model": "echo-1",
            "temperature": "0.3",
            "max_tokens": "50",
            "csrf_token": token,
        },
    )
    client.post("/playground/variables", data={"who": "world", "csrf_token": token})
    response = client.post(
        "/prompts",
        data={
            "from_playground": "standalone",
            "name": "From standalone",
            "system_prompt": "Hi {{ who }}",
            "provider": "echo",
            "model": "echo-1",
            "temperature": "0.3",
            "max_tokens": "50",
            "csrf_token": token,
        },
    )
    assert response.status_code == 303 and response.headers["Location"] == "/prompts/from-standalone"
    (version,) = library.versions("from-standalone")
    assert (version.system_prompt, version.params, version.variables) == (
        "Hi {{ who }}",
        {"temperature": 0.3, "max_tokens": 50},
        {"who": "world"},
    )


# --- concurrency -------------------------------------------------------------------------------


def test_a_save_that_loses_the_race_for_a_number_is_retried(library):
    """The first insert hits the unique (prompt_id, number) constraint: the save rolls back and tries again."""
    library.create("Raced", "v1")
    prompt_id = library.prompt("raced").id
    flushes = []
    with library.app.app_context():

        @event.listens_for(db.session, "before_flush")
        def take_the_number_first(session, flush_context, instances):
            flushes.append(True)
            if len(flushes) == 1:  # another writer's row with the number we are about to use
                session.connection().execute(
                    text(
                        "INSERT INTO prompt_versions (prompt_id, number, system_prompt, provider, model, params, variables,"
                        " note, created_at, created_by) VALUES (:id, 2, 'other', 'echo', 'echo-1', '{}', '{}', '',"
                        " CURRENT_TIMESTAMP, 'other')"
                    ),
                    {"id": prompt_id},
                )

        try:
            version = save_version(
                prompt_id, system_prompt="mine", provider="echo", model="echo-1", params={}, variables={}
            )
        finally:
            event.remove(db.session, "before_flush", take_the_number_first)
        assert version.number == 2
    assert len(flushes) == 2
    assert [(v.number, v.system_prompt) for v in library.versions("raced")] == [(1, "v1"), (2, "mine")]


@pytest.mark.integration
def test_concurrent_saves_from_many_tabs_get_distinct_numbers(postgres_server):
    app = create_app("test", overrides={"SQLALCHEMY_DATABASE_URI": postgres_server.create_database()})
    with app.app_context():
        db.create_all()
        prompt = Prompt(slug="busy", name="Busy", versions=[PromptVersion(number=1, provider="echo", model="echo-1")])
        db.session.add(prompt)
        db.session.commit()
        prompt_id = prompt.id
    start = threading.Barrier(8)
    errors = []

    def tab(index):
        with app.app_context():
            start.wait()
            try:
                for round in range(3):
                    save_version(
                        prompt_id,
                        system_prompt=f"tab {index} round {round}",
                        provider="echo",
                        model="echo-1",
                        params={},
                        variables={},
                    )
            except Exception as error:  # noqa: BLE001  (reported below)
                errors.append(error)

    threads = [threading.Thread(target=tab, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with app.app_context():
        numbers = db.session.scalars(select(PromptVersion.number).where(PromptVersion.prompt_id == prompt_id)).all()
        texts = db.session.scalars(select(PromptVersion.system_prompt).where(PromptVersion.number > 1)).all()
        db.session.remove()
        db.engine.dispose()
    assert sorted(numbers) == list(range(1, 26))
    assert len(set(texts)) == 24


def test_a_version_keeps_every_parameter_and_a_new_session_starts_from_it(library, fake_openai):
    library.create("Tuned", "x")
    library.save_settings(
        "tuned",
        system_prompt="x",
        provider="openai",
        model="gpt-4o-mini",
        temperature="0.3",
        max_tokens="77",
        top_p="0.9",
        seed="42",
    )
    library.post("/prompts/tuned/playground/versions")
    params = library.versions("tuned")[-1].params
    assert params["top_p"] == 0.9 and params["seed"] == 42 and params["max_tokens"] == 77
    fresh = library.app.test_client()
    body = fresh.get("/prompts/tuned/playground").get_data(as_text=True)
    assert 'value="gpt-4o-mini"' in body and 'value="0.90"' in body and 'value="42"' in body


def test_the_stylesheet_closes_every_block():
    """A merge once left an @media block open, which swallowed every rule after it."""
    from .conftest import ROOT

    css = (ROOT / "prompt_tracker" / "static" / "style.css").read_text()
    depth = 0
    for character in css:
        depth += {"{": 1, "}": -1}.get(character, 0)
        assert depth >= 0
    assert depth == 0
