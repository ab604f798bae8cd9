"""A prompt's test cases: validation, CRUD, JSONL and CSV import/export, the pages, Save as test case, the CLI."""

import hashlib
import io
import json
import re

import flask_migrate
import pytest
from sqlalchemy import select

from prompt_tracker import create_app
from prompt_tracker.audit import AuditEvent
from prompt_tracker.domain.keys import store_id
from prompt_tracker.evals.case_transfer import (
    CasesFileRefused,
    export_csv,
    export_jsonl,
    import_cases,
    import_summary,
)
from prompt_tracker.evals.cases import (
    CaseInvalid,
    CaseNotFound,
    content_hash,
    create_case,
    delete_case,
    get_case,
    list_cases,
    update_case,
)
from prompt_tracker.evals.models import TestCase
from prompt_tracker.extensions import db, services
from prompt_tracker.prompts.library import create_prompt, edit_prompt, find_prompt

from .conftest import CSRF_RE, press_send, screenshot, service_env

SYSTEM = "You help {{ customer }} with their orders."


def make_app(**overrides):
    app = create_app("test", overrides=overrides)
    with app.app_context():
        db.create_all()
        create_prompt("Support", SYSTEM, variables={"customer": "Ada"})
        create_prompt("Other", "Plain.")
    return app


@pytest.fixture
def app():
    return make_app()


@pytest.fixture
def prompt(app):
    """The prompt, in an app context that the test holds (a page test's requests each push their own)."""
    with app.app_context():
        yield find_prompt("support")
        db.session.remove()


def in_app(app, function, *args):
    """``function(prompt, *args)`` in an app context of its own, the database objects read out as plain data."""
    with app.app_context():
        result = function(find_prompt("support"), *args)
        db.session.remove()
        return result


def names(prompt):
    return [case.name for case in list_cases(prompt)]


def case(name="Refund", **fields):
    return {"name": name, "input": "Where is my refund?", **fields}


MULTI_TURN = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Find order 7"},
    {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "name": "lookup", "arguments": '{"id": 7}'}]},
    {"role": "tool", "content": '{"status": "shipped"}', "tool_call_id": "c1"},
    {"role": "user", "content": "And when does it arrive?"},
]


# --- the functions -----------------------------------------------------------------------------


def test_content_hash_is_sha256_of_the_canonical_json_of_what_the_case_says(prompt):
    saved = create_case(prompt, case(variables={"customer": "Bo"}, expected={"b": 1, "a": "é"}, tags=["x"]))
    canonical = (
        '{"checks":[],"expected":{"a":"é","b":1},"messages":[{"content":"Where is my refund?","role":"user"}],'
        '"variables":{"customer":"Bo"}}'
    )
    assert saved.content_hash == hashlib.sha256(canonical.encode()).hexdigest() == content_hash(saved)
    renamed = update_case(prompt, saved, case("Renamed", variables={"customer": "Bo"}, expected={"a": "é", "b": 1}))
    assert renamed.content_hash == hashlib.sha256(canonical.encode()).hexdigest()  # name and tags do not count
    changed = update_case(prompt, saved, case("Renamed", expected="other"))
    assert changed.content_hash != hashlib.sha256(canonical.encode()).hexdigest()


def test_create_get_update_list_by_tag_and_delete_with_audit_events(prompt):
    first = create_case(prompt, case("B case", tags=["smoke", "refunds"]), actor="ada@example.com")
    second = create_case(
        prompt, {"name": "A case", "messages": MULTI_TURN, "checks": [{"type": "contains", "value": "x"}]}
    )
    assert [c.name for c in list_cases(prompt)] == ["A case", "B case"]
    assert [c.name for c in list_cases(prompt, "smoke")] == ["B case"]
    assert get_case(prompt, second.id).messages == MULTI_TURN
    assert first.messages == [{"role": "user", "content": "Where is my refund?"}] and first.expected is None
    update_case(prompt, first, case("B case", input="Changed", tags="smoke; other"), actor="ada@example.com")
    assert get_case(prompt, first.id).tags == ["smoke", "other"]
    with pytest.raises(CaseNotFound) as missing:
        get_case(find_prompt("other"), first.id)  # a case of another prompt is not found through this one
    assert missing.value.status == 404
    delete_case(prompt, first, actor="ada@example.com")
    assert [c.name for c in list_cases(prompt)] == ["A case"]
    kinds = [
        e.kind for e in db.session.scalars(select(AuditEvent).order_by(AuditEvent.id)) if e.kind.startswith("case")
    ]
    assert kinds == ["case.created", "case.created", "case.edited", "case.deleted"]


@pytest.mark.parametrize(
    "fields, sentence",
    [
        ({"name": "  "}, "Give the case a name."),
        ({"name": "x" * 201}, "Case names are limited to 200 characters; this one has 201."),
        ({"input": ""}, "Give the case an input (the user's message), or its messages."),
        ({"input": None, "messages": []}, "A case needs at least one message (the input)."),
        (
            {"input": "hi", "messages": [{"role": "user", "content": "hi"}]},
            "Give either an input or messages, not both.",
        ),
        (
            {"input": None, "messages": [{"role": "robot", "content": "x"}]},
            "Message 1: the role must be system, user, assistant or tool, not 'robot'.",
        ),
        (
            {"input": None, "messages": [{"role": "user", "content": 3}]},
            "Message 1: the content must be text, not a number.",
        ),
        (
            {"input": None, "messages": [{"role": "user", "content": "a", "extra": 1}]},
            "Message 1 has a field a message does not have: 'extra'.",
        ),
        (
            {"input": None, "messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]},
            "The last message is an assistant message: a case ends before the reply it tests (put what you expect of it in Expected).",
        ),
        (
            {
                "input": None,
                "messages": [
                    {"role": "user", "content": "a"},
                    {"role": "tool", "content": "r", "tool_call_id": "nope"},
                ],
            },
            "Message 2 answers the tool call 'nope', which no earlier message made.",
        ),
        (
            {"input": None, "messages": [{"role": "user", "content": "a", "tool_calls": [{"id": "1", "name": "f"}]}]},
            "Message 1: only an assistant message makes tool calls.",
        ),
        ({"variables": {"customer": 5}}, "The value of the variable 'customer' must be text, not a number."),
        ({"variables": ["customer"]}, 'The variables must be an object of names to texts, like {"customer": "Ada"}.'),
        ({"tags": ["a,b"]}, "A tag may not hold a comma or a semicolon ('a,b'): they separate tags."),
        ({"tags": ["t" * 41]}, "Tags are limited to 40 characters;"),
        ({"checks": {"type": "contains"}}, "Checks must be a JSON array of check objects"),
        (
            {"checks": [{"type": "contains", "value": "a"}, {"type": "nope"}]},
            'Check 2: the check type "nope" is unknown',
        ),
        ({"colour": "red"}, "A case has no field 'colour'"),
    ],
)
def test_validation_sentences(prompt, fields, sentence):
    with pytest.raises(CaseInvalid) as refused:
        create_case(prompt, {**case(), **fields})
    assert refused.value.sentence.startswith(sentence)
    assert db.session.scalar(select(TestCase)) is None


def test_a_name_is_unique_per_prompt(prompt):
    create_case(prompt, case("Same"))
    with pytest.raises(CaseInvalid, match="A case named 'Same' exists already in this prompt"):
        create_case(prompt, case("Same"))
    create_case(find_prompt("other"), case("Same"))  # another prompt's case may have it
    other = create_case(prompt, case("Different"))
    with pytest.raises(CaseInvalid, match="A case named 'Same' exists"):
        update_case(prompt, other, case("Same"))


def test_a_prompt_holds_at_most_max_test_cases():
    app = make_app(MAX_TEST_CASES=2)
    with app.app_context():
        prompt = find_prompt("support")
        create_case(prompt, case("one"))
        create_case(prompt, case("two"))
        with pytest.raises(CaseInvalid, match="A prompt holds at most 2 test cases"):
            create_case(prompt, case("three"))
        with pytest.raises(
            CasesFileRefused, match="The import would add 2 cases to the 2 there are; a prompt holds at most 2"
        ):
            import_cases(prompt, b'{"name": "a", "input": "x"}\n{"name": "b", "input": "y"}\n', "jsonl")
        with pytest.raises(CasesFileRefused, match="The file has 3 cases; a prompt holds at most 2"):
            import_cases(prompt, b"name,input\na,x\nb,y\nc,z\n", "csv")


# --- import and export -------------------------------------------------------------------------


def several_cases(prompt):
    create_case(
        prompt, case("Plain", variables={"customer": "Bo"}, expected="Your refund is on its way.", tags=["smoke"])
    )
    create_case(prompt, {"name": 'Multi, turn "quoted"', "messages": MULTI_TURN, "expected": {"eta": "2 days"}})
    create_case(
        prompt,
        case(
            "With checks",
            input="Line one\nline two, with comma; and semicolon\u2028",
            checks=[{"type": "contains", "value": "refund"}, {"type": "regex", "pattern": "^Y"}],
            tags=["smoke", "regex"],
            variables={"customer": "Zoë", "tone": "dry"},
        ),
    )


def stored(prompt):
    return [(c.name, c.variables, c.messages, c.expected, c.checks, c.tags, c.content_hash) for c in list_cases(prompt)]


@pytest.mark.parametrize("file_format, export", [("jsonl", export_jsonl), ("csv", export_csv)])
def test_export_and_import_round_trip(prompt, file_format, export):
    several_cases(prompt)
    text = export(prompt)
    other = find_prompt("other")
    counts = import_cases(other, text.encode(), file_format, actor="ada@example.com")
    assert counts == {"added": 3, "updated": 0, "unchanged": 0}
    assert stored(other) == stored(prompt)
    assert export(other) == text
    again = import_cases(other, text.encode(), file_format)
    assert import_summary(again) == "0 added, 0 updated, 3 unchanged"


def test_jsonl_lines_say_input_or_messages(prompt):
    several_cases(prompt)
    lines = [json.loads(line) for line in export_jsonl(prompt).split("\n")[:-1]]
    assert list(lines[0]) == ["name", "variables", "messages", "expected", "checks", "tags"]
    assert lines[1] == {
        "name": "Plain",
        "variables": {"customer": "Bo"},
        "input": "Where is my refund?",
        "expected": "Your refund is on its way.",
        "checks": [],
        "tags": ["smoke"],
    }
    assert [line["name"] for line in map(json.loads, export_jsonl(prompt, "regex").split("\n")[:-1])] == ["With checks"]
    header = export_csv(prompt).splitlines()[0]
    assert header == "name,input,messages,expected,expected_format,tags,var.customer,var.tone,checks"


def test_an_import_updates_cases_by_name_and_says_so(prompt):
    create_case(prompt, case("Kept"))
    create_case(prompt, case("Changed"))
    data = (
        "name,input,expected,tags,var.customer\nKept,Where is my refund?,,,\nChanged,New text,ok,a;b,Cy\nNew,Hello,,,\n"
    )
    counts = import_cases(prompt, data.encode(), "csv")
    assert import_summary(counts) == "1 added, 1 updated, 1 unchanged"
    changed = next(c for c in list_cases(prompt) if c.name == "Changed")
    assert (changed.messages[0]["content"], changed.expected, changed.tags, changed.variables) == (
        "New text",
        "ok",
        ["a", "b"],
        {"customer": "Cy"},
    )


@pytest.mark.parametrize(
    "file_format, data, sentence",
    [
        (
            "jsonl",
            b'{"name": "ok", "input": "x"}\n\n{"name": "bad"}\n',
            "Line 3: give the case an input (the user's message), or its messages. Nothing was imported.",
        ),
        ("jsonl", b'{"name": "ok", "input": "x"}\n{"name": \n', "Line 2: not a JSON object ("),
        ("jsonl", b'["a list"]\n', "Line 1: each line is one case, a JSON object. Nothing was imported."),
        (
            "jsonl",
            b'{"name": "a", "input": "x"}\n{"name": "a", "input": "y"}\n',
            "Line 2: the case name 'a' is on line 1 too.",
        ),
        (
            "jsonl",
            b'{"name": "a", "input": "x", "checks": ' + b"[" * 5000 + b"]" * 5000 + b"}\n",
            "Line 1: not a JSON object (it nests its data too deeply).",
        ),
        ("jsonl", b'{"name": "caf\xe9", "input": "x"}\n', "This file is not UTF-8 text. Nothing was imported."),
        ("csv", b'name,input\nok,x\n"multi\nline",\n', "Line 3: give the case an input"),
        ("csv", b"name,input,checks\nok,x,[oops\n", "Line 2: the checks cell is not JSON"),
        ("csv", b"name,input\nok,x,extra\n", "Line 2: it has 3 cells and the header names 2 columns."),
        (
            "csv",
            b"name,colour\nok,red\n",
            "The column 'colour' is not one of name, input, messages, expected, expected_format, tags, checks or var.<name>.",
        ),
        ("csv", b"input\nx\n", "The first line must name the columns, with name among them."),
        ("csv", b"name,input\nok,x\0y\n", "Line 2: the case holds a NUL character (\\0), which no text may hold."),
    ],
)
def test_a_bad_line_is_refused_with_its_number_and_nothing_is_imported(prompt, file_format, data, sentence):
    create_case(prompt, case("ok", input="unchanged"))
    with pytest.raises(CasesFileRefused) as refused:
        import_cases(prompt, data, file_format)
    assert refused.value.sentence.startswith(sentence), refused.value.sentence
    assert [(c.name, c.messages[0]["content"]) for c in list_cases(prompt)] == [("ok", "unchanged")]


def test_a_csv_file_with_semicolons_between_cells_is_read_as_such(prompt):
    data = "name;input;tags;var.customer\nOne;Hello, there;a,b;Zoë\n".encode()
    assert import_summary(import_cases(prompt, data, "csv")) == "1 added, 0 updated"
    saved = list_cases(prompt)[0]
    assert (saved.messages[0]["content"], saved.tags, saved.variables) == (
        "Hello, there",
        ["a", "b"],
        {"customer": "Zoë"},
    )


def test_a_file_over_the_import_limit_is_refused():
    app = make_app(MAX_IMPORT_BYTES=1024 * 1024)
    with app.app_context():
        with pytest.raises(CasesFileRefused, match="The file is larger than 1 MB, so nothing was imported."):
            import_cases(find_prompt("support"), b"x" * (1024 * 1024 + 1), "csv")


# --- the pages ---------------------------------------------------------------------------------


@pytest.fixture
def client(app):
    return app.test_client()


def token(client, path="/prompts/support/tests"):
    return CSRF_RE.search(client.get(path).get_data(as_text=True)).group(1)


def post(client, path, **fields):
    return client.post(path, data={**fields, "csrf_token": token(client)})


def test_the_prompt_page_links_to_its_tests(client):
    assert 'href="/prompts/support/tests"' in client.get("/prompts/support").get_data(as_text=True)


def test_add_list_filter_edit_and_delete_through_the_pages(app, client):
    form = client.get("/prompts/support/tests/new").get_data(as_text=True)
    assert 'name="var.customer"' in form and "Expected is JSON" in form
    response = post(
        client,
        "/prompts/support/tests",
        name="Refund",
        **{"var.customer": "Ada"},
        input="Where is my refund?",
        expected='{"intent": "refund"}',
        expected_json="y",
        checks='[{"type": "contains", "value": "refund"}]',
        tags="smoke, refunds",
    )
    assert response.status_code == 303
    saved = in_app(app, lambda prompt: [(c.id, c.variables, c.expected, c.tags) for c in list_cases(prompt)])
    case_id = saved[0][0]
    assert saved == [(case_id, {"customer": "Ada"}, {"intent": "refund"}, ["smoke", "refunds"])]
    assert response.headers["Location"] == f"/prompts/support/tests#case-{case_id}"
    post(client, "/prompts/support/tests", name="Other", input="Hello there")

    listing = client.get("/prompts/support/tests").get_data(as_text=True)
    assert "Where is my refund?" in listing and "{&#34;intent&#34;: &#34;refund&#34;}" in listing
    assert f'href="/prompts/support/tests/{case_id}"' in listing
    assert 'href="/prompts/support/tests.jsonl"' in listing and 'href="/prompts/support/tests.csv"' in listing
    filtered = client.get("/prompts/support/tests?tag=refunds").get_data(as_text=True)
    assert "Refund</a>" in filtered and "Other</a>" not in filtered

    edit = client.get(f"/prompts/support/tests/{case_id}").get_data(as_text=True)
    assert "Where is my refund?" in edit and 'name="expected_json" value="y" checked' in edit
    response = post(client, f"/prompts/support/tests/{case_id}", name="Refund 2", input="Changed", tags="")
    assert response.status_code == 303
    assert in_app(app, names) == ["Other", "Refund 2"]

    unconfirmed = post(client, f"/prompts/support/tests/{case_id}/delete")
    assert unconfirmed.status_code == 303 and in_app(app, names) == ["Other", "Refund 2"]
    assert "Tick “confirm” beside Delete" in client.get(unconfirmed.headers["Location"]).get_data(as_text=True)
    assert post(client, f"/prompts/support/tests/{case_id}/delete", confirm="yes").status_code == 303
    assert in_app(app, names) == ["Other"]
    missing = client.get(f"/prompts/support/tests/{case_id}")
    assert missing.status_code == 404 and f"has no test case {case_id}" in missing.get_data(as_text=True)
    assert client.get("/prompts/nope/tests").status_code == 404
    in_app(app, lambda prompt: edit_prompt(prompt, name="Support", slug="help", description=""))
    moved = client.get("/prompts/support/tests?tag=smoke")
    assert (moved.status_code, moved.headers["Location"]) == (301, "/prompts/help/tests?tag=smoke")


def test_a_refused_form_is_shown_again_with_what_was_typed(app, client):
    typed = {
        "name": "Typed name",
        "var.customer": "Keep me",
        "input": "Typed input",
        "checks": '[{"type": "contains"',
        "tags": "one, two",
    }
    response = post(client, "/prompts/support/tests", **typed)
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert re.search(r'id="checks-error"[^>]*>The checks are not valid JSON', body)
    for value in ("Typed name", "Keep me", "Typed input", "one, two", "[{&#34;type&#34;: &#34;contains&#34;"):
        assert value in body
    in_app(app, create_case, case("Taken"))
    taken = post(client, "/prompts/support/tests", name="Taken", input="Again")
    assert taken.status_code == 409
    assert "A case named &#39;Taken&#39; exists already in this prompt" in taken.get_data(as_text=True)
    assert 'id="name-error"' in taken.get_data(as_text=True)
    # An edit refused keeps what was typed too, in the case's own form.
    case_id = in_app(app, lambda prompt: list_cases(prompt)[0].id)
    edit = post(client, f"/prompts/support/tests/{case_id}", name="Taken", input="", messages="[]")
    assert edit.status_code == 422 and "A case needs at least one message (the input)." in edit.get_data(as_text=True)
    assert f'action="/prompts/support/tests/{case_id}"' in edit.get_data(as_text=True)
    nan = post(client, "/prompts/support/tests", name="N", input="x", expected="NaN", expected_json="y")
    assert nan.status_code == 422 and 'id="expected-error"' in nan.get_data(as_text=True)
    # An edit of a case deleted meanwhile: the typed text comes back in the form of a new case.
    in_app(app, lambda prompt: delete_case(prompt, get_case(prompt, case_id)))
    gone = post(client, f"/prompts/support/tests/{case_id}", name="Still here", input="Typed after the delete")
    body = gone.get_data(as_text=True)
    assert gone.status_code == 404 and "This case was deleted meanwhile" in body
    assert "Typed after the delete" in body and 'action="/prompts/support/tests"' in body


def upload(client, data: bytes, filename: str):
    return client.post(
        "/prompts/support/tests/import",
        data={"file": (io.BytesIO(data), filename), "csrf_token": token(client)},
        content_type="multipart/form-data",
    )


def test_import_and_export_through_the_page(app, client):
    response = upload(client, b'{"name": "From file", "input": "Hi", "tags": ["imported"]}\n', "cases.jsonl")
    assert response.status_code == 303
    assert "Imported cases.jsonl: 1 added, 0 updated." in client.get("/prompts/support/tests").get_data(as_text=True)
    bad = upload(client, b"name,input\n,x\n", "cases.csv")
    assert "Line 2: give the case a name. Nothing was imported." in client.get(bad.headers["Location"]).get_data(
        as_text=True
    )
    assert in_app(app, names) == ["From file"]
    exported = client.get("/prompts/support/tests.jsonl")
    assert exported.headers["Content-Disposition"] == 'attachment; filename="support-tests.jsonl"'
    assert json.loads(exported.get_data(as_text=True))["name"] == "From file"
    assert (
        client.get("/prompts/support/tests.csv?tag=none").get_data(as_text=True).startswith("name,input,expected,tags")
    )


# --- Save as test case -------------------------------------------------------------------------


def test_save_as_test_case_from_a_prompt_playground(app, client):
    base = "/prompts/support/playground"
    add = base + "/messages/add"
    post(client, add, role="user", content="Find order 7")
    calls = '[{"id": "c1", "name": "lookup", "arguments": {"id": 7}}]'
    post(client, add, role="assistant", content="", tool_calls=calls)
    post(client, add, role="tool", tool_call_id="c1", content='{"status": "shipped"}')
    post(client, base + "/messages", content="When does it arrive?")
    prompt_id = in_app(app, lambda prompt: prompt.id)
    with app.app_context():
        sid = store_id(client.get_cookie("_prompt_tracker_session").value)
        conversation = services.conversations.all(sid, f"prompt-{prompt_id}")
    reply = conversation[-1]
    assert reply.status == "done" and "Save as test case" in client.get(base).get_data(as_text=True)

    response = post(client, f"{base}/messages/{reply.id}/save-case")
    assert response.status_code == 303
    saved = in_app(
        app, lambda prompt: [(c.id, c.name, c.messages, c.expected, c.variables) for c in list_cases(prompt)]
    )
    case_id, name, messages, expected, variables = saved[0]
    assert response.headers["Location"] == f"/prompts/support/tests/{case_id}"
    assert name == "When does it arrive?"
    assert messages == [
        {"role": "user", "content": "Find order 7"},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "name": "lookup", "arguments": '{"id": 7}'}]},
        {"role": "tool", "content": '{"status": "shipped"}', "tool_call_id": "c1"},
        {"role": "user", "content": "When does it arrive?"},
    ]
    assert expected == reply.content and variables == {"customer": "Ada"}
    edit_page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Saved as test case “When does it arrive?”." in edit_page
    again = post(client, f"{base}/messages/{reply.id}/save-case")
    assert again.status_code == 303 and in_app(app, names)[-1] == "When does it arrive? (2)"

    refused = post(client, f"{base}/messages/{conversation[-2].id}/save-case")  # a user message
    assert refused.status_code == 303
    assert "Only a finished reply can be saved as a test case." in client.get(base).get_data(as_text=True)
    assert post(client, f"/playground/messages/{reply.id}/save-case").status_code == 404


# --- the CLI -----------------------------------------------------------------------------------


def test_cli_import_and_export(app, prompt, tmp_path):
    runner = app.test_cli_runner()
    (tmp_path / "cases.csv").write_text("name,input,tags\nOne,Hello,a;b\nTwo,Bye,a\n")
    result = runner.invoke(args=["evals", "import", "support", str(tmp_path / "cases.csv")])
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("into support (csv): 2 added, 0 updated.")
    exported = runner.invoke(args=["evals", "export-cases", "support"])
    assert [json.loads(line)["name"] for line in exported.output.splitlines()] == ["One", "Two"]
    as_csv = runner.invoke(args=["evals", "export-cases", "support", "--format", "csv", "--tag", "b"])
    assert as_csv.output.splitlines() == ["name,input,expected,tags,checks", 'One,Hello,,"a, b",']

    (tmp_path / "cases.txt").write_text('{"name": "Three", "input": "x"}\n')
    assert (
        runner.invoke(args=["evals", "import", "support", str(tmp_path / "cases.txt"), "--format", "jsonl"]).exit_code
        == 0
    )
    (tmp_path / "bad.jsonl").write_text('{"name": "Four", "input": "x"}\n{"name": ""}\n')
    bad = runner.invoke(args=["evals", "import", "support", str(tmp_path / "bad.jsonl")])
    assert bad.exit_code == 1 and "bad.jsonl: Line 2: give the case a name. Nothing was imported." in bad.output
    nobody = runner.invoke(args=["evals", "export-cases", "nope"])
    assert nobody.exit_code == 1 and "There is no prompt with the slug 'nope'." in nobody.output
    usage = runner.invoke(args=["evals", "export-cases", "support", "--format", "xml"])
    assert usage.exit_code == 2
    assert len(list_cases(prompt)) == 3


# --- PostgreSQL --------------------------------------------------------------------------------


@pytest.mark.integration
def test_import_and_save_as_test_case_on_postgresql_migrated_by_alembic(postgres_server):
    """On a database `flask db upgrade` made (migration 0008): import both formats, Save as test case, export back."""
    app = create_app("test", overrides={"SQLALCHEMY_DATABASE_URI": postgres_server.create_database()})
    with app.app_context():
        flask_migrate.upgrade()
        create_prompt("Support", SYSTEM, variables={"customer": "Ada"})
    client = app.test_client()
    lines = [
        {"name": "Zoë ☃", "variables": {"customer": "Zoë"}, "messages": MULTI_TURN, "expected": {"eta": [2, "days"]}},
        {"name": "Plain", "input": "Hi\u2028there", "checks": [{"type": "contains", "value": "Hi"}], "tags": ["a"]},
    ]
    jsonl = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()
    assert upload(client, jsonl, "cases.jsonl").status_code == 303
    csv_data = b"name,input,tags\nPlain,Changed,a;b\nNUL,x\0y,\n"
    refused = upload(client, csv_data, "cases.csv")
    assert "Line 3: the case holds a NUL character" in client.get(refused.headers["Location"]).get_data(as_text=True)
    upload(client, b"name,input,tags\nPlain,Changed,a;b\n", "cases.csv")
    post(client, "/prompts/support/playground/messages", content="Where is my parcel?")
    with app.app_context():
        prompt = find_prompt("support")
        sid = store_id(client.get_cookie("_prompt_tracker_session").value)
        reply = services.conversations.all(sid, f"prompt-{prompt.id}")[-1]
    assert post(client, f"/prompts/support/playground/messages/{reply.id}/save-case").status_code == 303
    with app.app_context():
        prompt = find_prompt("support")
        saved = {c.name: c for c in list_cases(prompt)}
        assert list(saved) == ["Plain", "Where is my parcel?", "Zoë ☃"]
        assert saved["Zoë ☃"].messages == MULTI_TURN and saved["Zoë ☃"].expected == {"eta": [2, "days"]}
        assert (saved["Plain"].messages[0]["content"], saved["Plain"].tags) == ("Changed", ["a", "b"])
        assert saved["Where is my parcel?"].expected == reply.content
        assert all(c.content_hash == content_hash(c) for c in saved.values())
        exported = export_jsonl(prompt)
    assert client.get("/prompts/support/tests.jsonl").get_data(as_text=True) == exported
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


# --- Chromium ----------------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.integration
def test_save_as_test_case_button_in_a_prompt_playground(
    page, real_redis, web_pool, start_worker, tmp_path, monkeypatch
):
    """A reply written by a real worker shows Save as test case in its prompt's playground (not in /playground);
    the click lands on the new case's form."""
    env = {**service_env(real_redis), "DATABASE_URL": f"sqlite:///{tmp_path / 'cases.sqlite3'}"}
    with monkeypatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        app = create_app("development", overrides={"DEBUG": False})
    with app.app_context():
        db.create_all()
        create_prompt("Support", SYSTEM, variables={"customer": "Ada"})
        db.engine.dispose()
    base = web_pool.url(env)
    start_worker()
    page.goto(base + "/prompts/support/playground")
    page.fill("#content", "Where is my parcel?")
    press_send(page)
    done = '.message-assistant[data-status="done"]'
    page.wait_for_selector(f"{done} .save-case-form button", state="visible", timeout=30_000)
    page.click(f"{done} .save-case-form button")
    page.wait_for_url(re.compile(r"/prompts/support/tests/\d+$"))
    assert "Saved as test case “Where is my parcel?”." in page.inner_text(".flashes")
    assert page.input_value("#name") == "Where is my parcel?"
    assert page.input_value("#input") == "Where is my parcel?"
    assert page.input_value("#var-customer") == "Ada"
    assert page.input_value("#expected").startswith("You said: Where is my parcel?")
    screenshot(page, "eval-case-saved")
    page.click("text=Back to the cases")
    assert "Where is my parcel?" in page.inner_text(".case-table")
    screenshot(page, "eval-cases-list")

    page.goto(base + "/playground")  # the standalone playground has no prompt to save a case to
    page.fill("#content", "hello")
    press_send(page)
    page.wait_for_selector(done, timeout=30_000)
    assert page.locator(f"{done} .save-case-form").count() == 1 and not page.is_visible(f"{done} .save-case-form")
