"""Pages of a prompt's test cases: the list (filter by tag, import, export), the add and edit form, delete."""

import json

from flask import Response, flash, g, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import BooleanField, StringField, TextAreaField

from ...evals.case_transfer import FORMATS, export_csv, export_jsonl, format_of, import_cases, import_summary
from ...evals.cases import (
    MAX_TAGS,
    CaseInvalid,
    CaseNotFound,
    case_tags,
    create_case,
    delete_case,
    get_case,
    list_cases,
    single_input,
    update_case,
)
from ...evals.models import MAX_CASE_NAME_CHARS, MAX_TAG_CHARS
from ...prompts.library import prompt_with_latest
from ...prompts.variables import TemplateProblem, variable_names
from ..errors import refusals_shown_by
from ..identity import current_actor
from ..playground.prompt import moved_or_404
from . import bp

EXCERPT_CHARS = 120


class CaseForm(FlaskForm):
    """A test case; the variables' fields (``var.<name>``) are the prompt's, read beside it."""

    name = StringField("Name")
    input = TextAreaField("Input (the user's message)")
    messages = TextAreaField("Messages (JSON), for a multi-turn case")
    expected = TextAreaField("Expected output (optional)")
    expected_json = BooleanField("Expected is JSON")
    checks = TextAreaField("Checks (JSON)")
    tags = StringField("Tags")


def load_prompt(slug: str):
    """The prompt with ``slug`` and its latest version, kept in ``g`` (a refusal's page uses them).

    An old slug of a renamed prompt redirects; no prompt has it: 404.
    """
    found = prompt_with_latest(slug)
    if found is None:
        moved_or_404(slug)
    g.prompt, g.latest_version = found
    return g.prompt


def template_variables() -> list[str]:
    """The variables of the prompt's latest version (none when its template cannot be read)."""
    try:
        return variable_names(g.latest_version.system_prompt)
    except TemplateProblem:
        return []


def excerpt(text, limit: int = EXCERPT_CHARS) -> str:
    """The start of a text (or of a JSON value) on one line."""
    if text is None:
        return ""
    text = " ".join((text if isinstance(text, str) else json.dumps(text, ensure_ascii=False)).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def first_message(case) -> str:
    """What the list shows of a case's messages: the first one's text (or its tool calls)."""
    message = case.messages[0]
    text = message["content"] or ", ".join(call["name"] for call in message.get("tool_calls", []))
    return excerpt(text)


@bp.get("/<slug>/tests")
def cases(slug):
    """The prompt's cases (only those with ``?tag=``), with Add, Import and Export."""
    load_prompt(slug)
    tag = request.args.get("tag") or None
    every = list_cases(g.prompt)
    shown = [case for case in every if tag in case.tags] if tag else every
    return render_template(
        "evals/cases.html",
        prompt=g.prompt,
        cases=shown,
        total=len(every),
        tags=case_tags(every),
        tag=tag,
        first_message=first_message,
        excerpt=excerpt,
        formats=FORMATS,
    )


def form_page(form: CaseForm, case=None, variables: dict | None = None, problem: CaseInvalid | None = None):
    """The add or edit form: what was typed kept, a refusal's sentence under its field (or above the form)."""
    names = list(dict.fromkeys([*template_variables(), *(variables or {})]))
    field = problem.details.get("field") if problem is not None else None
    return render_template(
        "evals/cases_form.html",
        prompt=g.prompt,
        case=case,
        form=form,
        variables=[(name, (variables or {}).get(name, "")) for name in names],
        field_error={field: problem.sentence} if field else {},
        form_error=problem.sentence if problem is not None and not field else None,
        limits={"name": MAX_CASE_NAME_CHARS, "tag": MAX_TAG_CHARS, "tags": MAX_TAGS},
    ), (problem.status if problem is not None else 200)


def posted_variables() -> dict[str, str]:
    """The variables' values the form posted (``var.<name>``); an empty field is no value."""
    return {
        key[len("var.") :]: value.replace("\r\n", "\n")
        for key, value in request.form.items()
        if key.startswith("var.") and len(key) > len("var.") and value != ""
    }


def refuse_constant(name: str):
    """NaN and Infinity are not JSON (Python's parser takes them; the database would not)."""
    raise ValueError(f"{name} is not a JSON value")


def parse_json(text: str):
    """JSON typed in a form, strictly."""
    return json.loads(text, parse_constant=refuse_constant)


def json_field(form_field, field: str, what: str):
    """A JSON textarea's value; CaseInvalid under ``field`` when it is not JSON."""
    try:
        return parse_json(form_field.data)
    except (ValueError, RecursionError) as error:
        reason = error.msg if isinstance(error, json.JSONDecodeError) else str(error) or "it nests too deeply"
        raise CaseInvalid(f"The {what} are not valid JSON ({reason}).", field=field) from None


def posted_case(form: CaseForm) -> dict:
    """The case the form says, as ``cases.case_fields`` reads it (the JSON fields parsed)."""
    data = {"name": form.name.data, "variables": posted_variables(), "tags": form.tags.data or ""}
    if (form.messages.data or "").strip():
        if (form.input.data or "").strip():
            raise CaseInvalid("Give either an input or messages, not both.", field="messages")
        data["messages"] = json_field(form.messages, "messages", "messages")
    else:
        data["input"] = form.input.data or ""
    expected = form.expected.data or ""
    if form.expected_json.data and expected.strip():
        try:
            data["expected"] = parse_json(expected)
        except (ValueError, RecursionError):
            raise CaseInvalid(
                "The expected output is not valid JSON; untick “Expected is JSON” to keep it as text.",
                field="expected",
            ) from None
    else:
        data["expected"] = expected
    data["checks"] = json_field(form.checks, "checks", "checks") if (form.checks.data or "").strip() else []
    return data


def form_of(case) -> CaseForm:
    """The edit form of a stored case."""
    text = single_input(case.messages)
    is_json = case.expected is not None and not isinstance(case.expected, str)
    return CaseForm(
        formdata=None,
        data={
            "name": case.name,
            "input": text or "",
            "messages": "" if text is not None else json.dumps(case.messages, indent=2, ensure_ascii=False),
            "expected": json.dumps(case.expected, indent=2, ensure_ascii=False) if is_json else case.expected or "",
            "expected_json": is_json,
            "checks": json.dumps(case.checks, indent=2, ensure_ascii=False) if case.checks else "",
            "tags": ", ".join(case.tags or []),
        },
    )


def typed_form_page(refusal):
    """A refused add or edit: the form again with what was typed and the sentence.

    An edit of a case deleted meanwhile comes back as the form of a new case, what was typed kept.
    """
    case_id = (request.view_args or {}).get("case_id")
    try:
        case = get_case(g.prompt, case_id) if case_id is not None else None
    except CaseNotFound:
        case = None
        refusal = CaseNotFound("This case was deleted meanwhile: Add case saves what you typed as a new one.")
    return form_page(CaseForm(), case, posted_variables(), refusal)


@bp.get("/<slug>/tests/new")
def new_case(slug):
    load_prompt(slug)
    return form_page(CaseForm(formdata=None))


@bp.post("/<slug>/tests")
@refusals_shown_by(typed_form_page)
def add_case(slug):
    """Add a case; the form again with the sentence when it cannot be saved."""
    load_prompt(slug)
    case = create_case(g.prompt, posted_case(CaseForm()), actor=current_actor())
    flash(f"Test case “{case.name}” added.", "info")
    return redirect(url_for(".cases", slug=g.prompt.slug, _anchor=f"case-{case.id}"), 303)


@bp.get("/<slug>/tests/<int:case_id>")
def case_form(slug, case_id):
    case = get_case(load_prompt(slug), case_id)
    return form_page(form_of(case), case, dict(case.variables or {}))


@bp.post("/<slug>/tests/<int:case_id>")
@refusals_shown_by(typed_form_page)
def edit_case(slug, case_id):
    case = update_case(load_prompt(slug), get_case(g.prompt, case_id), posted_case(CaseForm()), actor=current_actor())
    flash(f"Test case “{case.name}” saved.", "info")
    return redirect(url_for(".cases", slug=g.prompt.slug, _anchor=f"case-{case.id}"), 303)


@bp.post("/<slug>/tests/<int:case_id>/delete")
def remove_case(slug, case_id):
    """Delete a case once confirmed (the box ticked): without it, back to its form with the sentence."""
    case = get_case(load_prompt(slug), case_id)
    if request.form.get("confirm") != "yes":
        flash("Tick “confirm” beside Delete to delete this case.", "error")
        return redirect(url_for(".case_form", slug=g.prompt.slug, case_id=case.id), 303)
    name = case.name
    delete_case(g.prompt, case, actor=current_actor())
    flash(f"Test case “{name}” deleted.", "info")
    return redirect(url_for(".cases", slug=g.prompt.slug), 303)


def back_to_list(refusal):
    """A refused import: its sentence above the list."""
    flash(refusal.sentence, "error")
    return redirect(url_for(".cases", slug=g.prompt.slug), 303)


@bp.post("/<slug>/tests/import")
@refusals_shown_by(back_to_list)
def import_cases_file(slug):
    """Import a JSONL or CSV file of cases (by ``format``, else by the file's extension or first character)."""
    load_prompt(slug)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        flash("Choose a .jsonl or .csv file of test cases to import.", "error")
        return redirect(url_for(".cases", slug=g.prompt.slug), 303)
    try:
        data = upload.read()
    finally:
        upload.close()
    chosen = request.form.get("format")
    file_format = chosen if chosen in FORMATS else format_of(upload.filename, data)
    counts = import_cases(g.prompt, data, file_format, actor=current_actor())
    flash(f"Imported {upload.filename}: {import_summary(counts)}.", "info")
    return redirect(url_for(".cases", slug=g.prompt.slug), 303)


def download(body: str, extension: str, mimetype: str) -> Response:
    """The cases as a file named after the prompt."""
    name = f"{g.prompt.slug}-tests.{extension}"
    return Response(body, mimetype=mimetype, headers={"Content-Disposition": f'attachment; filename="{name}"'})


@bp.get("/<slug>/tests.jsonl")
def export_cases_jsonl(slug):
    return download(export_jsonl(load_prompt(slug), request.args.get("tag") or None), "jsonl", "application/jsonl")


@bp.get("/<slug>/tests.csv")
def export_cases_csv(slug):
    return download(export_csv(load_prompt(slug), request.args.get("tag") or None), "csv", "text/csv")
