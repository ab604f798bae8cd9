"""A prompt's test cases, as plain functions over the models (pages, CLI, import and tests call them).

A case says what a run sends (the template variables' values, the messages before the reply: one user
turn or a whole earlier conversation, tool calls included) and what it expects (an optional text or
JSON value, and checks). Everything a caller hands in is checked here, whatever its source (a form, a
JSONL or CSV line, a playground conversation): a refusal is a ``CaseInvalid`` with one sentence.
"""

import hashlib
import json

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from ..audit import record_event
from ..domain.checks import checks_problem
from ..domain.refusals import Refused
from ..domain.times import utcnow
from ..extensions import db
from .models import MAX_CASE_NAME_CHARS, MAX_TAG_CHARS, TestCase

MESSAGE_ROLES = ("system", "user", "assistant", "tool")
MAX_TAGS = 20
MAX_VARIABLE_NAME_CHARS = 100
# A prompt holds at most this many cases (``MAX_TEST_CASES`` in the config overrides it): an import or
# an add past it is refused, so a run's size and a list page stay bounded.
DEFAULT_MAX_CASES = 5_000
# Characters that separate tags in a CSV cell (and so may not be in a tag).
TAG_SEPARATORS = (",", ";")
FIELDS = ("name", "variables", "messages", "expected", "checks", "tags")


class CaseInvalid(Refused, ValueError):
    """The case cannot be saved as given; the sentence says why."""

    status = 422


class CaseNotFound(Refused, LookupError):
    """No such case in this prompt."""

    status = 404


def max_cases() -> int:
    """How many cases a prompt may hold."""
    return int(current_app.config.get("MAX_TEST_CASES", DEFAULT_MAX_CASES))


def canonical_json(value) -> str:
    """The canonical JSON of ``value``: keys sorted, no spaces, UTF-8 characters as they are."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(case) -> str:
    """SHA-256 (hex) of the canonical JSON of what a case says: variables, messages, expected, checks.

    ``case`` is a TestCase or a mapping with those keys; its name and tags do not count (a rename is the
    same case), so a result's ``case_hash`` tells whether the case changed since it ran.
    """
    get = case.get if isinstance(case, dict) else lambda name: getattr(case, name)
    content = {
        "variables": get("variables") or {},
        "messages": get("messages") or [],
        "expected": get("expected"),
        "checks": get("checks") or [],
    }
    return hashlib.sha256(canonical_json(content).encode()).hexdigest()


# --- checking what a case says -----------------------------------------------------------------


def clean_name(name) -> str:
    """The case's name, stripped; CaseInvalid when it is missing or too long."""
    if name is not None and not isinstance(name, str):
        raise CaseInvalid("The case's name must be text.")
    name = " ".join((name or "").split())
    if not name:
        raise CaseInvalid("Give the case a name.")
    if len(name) > MAX_CASE_NAME_CHARS:
        raise CaseInvalid(f"Case names are limited to {MAX_CASE_NAME_CHARS} characters; this one has {len(name):,}.")
    return name


def clean_variables(variables) -> dict[str, str]:
    """The template variables' values: names to texts."""
    if variables is None:
        return {}
    if not isinstance(variables, dict):
        raise CaseInvalid('The variables must be an object of names to texts, like {"customer": "Ada"}.')
    limit = current_app.config["MAX_MESSAGE_CHARS"]
    cleaned = {}
    for name, value in variables.items():
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_VARIABLE_NAME_CHARS:
            raise CaseInvalid(f"Variable names are 1 to {MAX_VARIABLE_NAME_CHARS} characters of text.")
        if not isinstance(value, str):
            raise CaseInvalid(f"The value of the variable {name!r} must be text, not {json_type(value)}.")
        if len(value) > limit:
            raise CaseInvalid(f"The value of the variable {name!r} is longer than {limit:,} characters.")
        cleaned[name.strip()] = value.replace("\r\n", "\n")
    return cleaned


def json_type(value) -> str:
    """What a JSON value is, in words."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "text"


def clean_tool_calls(index: int, calls) -> list[dict]:
    """An assistant message's tool calls: [{id, name, arguments (the JSON text)}]."""
    where = f"Message {index + 1}"
    if not isinstance(calls, list):
        raise CaseInvalid(f"{where}: tool_calls must be a list of {{id, name, arguments}}.")
    cleaned = []
    for call in calls:
        if not isinstance(call, dict) or set(call) - {"id", "name", "arguments"}:
            raise CaseInvalid(f"{where}: each tool call is an object with id, name and arguments only.")
        call_id, name, arguments = call.get("id"), call.get("name"), call.get("arguments", "{}")
        if not isinstance(call_id, str) or not call_id.strip() or not isinstance(name, str) or not name.strip():
            raise CaseInvalid(f"{where}: each tool call needs an id and a name (text).")
        if isinstance(arguments, dict):
            arguments = json.dumps(arguments, ensure_ascii=False)
        if not isinstance(arguments, str):
            raise CaseInvalid(f"{where}: a tool call's arguments are an object or its JSON text.")
        cleaned.append({"id": call_id.strip(), "name": name.strip(), "arguments": arguments})
    return cleaned


def clean_messages(messages) -> list[dict]:
    """The messages before the reply, as the conversation keeps them; CaseInvalid with the first problem.

    Each is {role, content}, plus ``tool_calls`` on an assistant message and ``tool_call_id`` on a tool
    message (naming a call of an earlier reply); at least one, and the last one is not a reply.
    """
    if not isinstance(messages, list):
        raise CaseInvalid('The messages must be a JSON list of {"role": …, "content": …} objects.')
    if not messages:
        raise CaseInvalid("A case needs at least one message (the input).")
    config = current_app.config
    if len(messages) > config["MAX_CONVERSATION_MESSAGES"]:
        raise CaseInvalid(f"A case holds at most {config['MAX_CONVERSATION_MESSAGES']:,} messages.")
    cleaned, call_ids = [], set()
    for index, message in enumerate(messages):
        where = f"Message {index + 1}"
        if not isinstance(message, dict):
            raise CaseInvalid(f"{where} is not an object with a role and a content.")
        unknown = sorted(set(message) - {"role", "content", "tool_calls", "tool_call_id"})
        if unknown:
            raise CaseInvalid(f"{where} has a field a message does not have: {unknown[0]!r}.")
        role, content = message.get("role"), message.get("content", "")
        if role not in MESSAGE_ROLES:
            raise CaseInvalid(f"{where}: the role must be system, user, assistant or tool, not {role!r}.")
        if content is None:
            content = ""
        if not isinstance(content, str):
            raise CaseInvalid(f"{where}: the content must be text, not {json_type(content)}.")
        if len(content) > config["MAX_MESSAGE_CHARS"]:
            raise CaseInvalid(f"{where} is longer than {config['MAX_MESSAGE_CHARS']:,} characters.")
        record = {"role": role, "content": content.replace("\r\n", "\n")}
        if message.get("tool_calls"):
            if role != "assistant":
                raise CaseInvalid(f"{where}: only an assistant message makes tool calls.")
            record["tool_calls"] = clean_tool_calls(index, message["tool_calls"])
            call_ids.update(call["id"] for call in record["tool_calls"])
        if role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id.strip():
                raise CaseInvalid(f"{where}: a tool message names the call it answers (tool_call_id).")
            if call_id.strip() not in call_ids:
                raise CaseInvalid(f"{where} answers the tool call {call_id.strip()!r}, which no earlier message made.")
            record["tool_call_id"] = call_id.strip()
        elif message.get("tool_call_id"):
            raise CaseInvalid(f"{where}: only a tool message has a tool_call_id.")
        if not record["content"].strip() and not record.get("tool_calls") and role != "tool":
            raise CaseInvalid(f"{where} is empty.")
        cleaned.append(record)
    if cleaned[-1]["role"] == "assistant":
        raise CaseInvalid(
            "The last message is an assistant message: a case ends before the reply it tests "
            "(put what you expect of it in Expected)."
        )
    return cleaned


def input_messages(text) -> list[dict]:
    """A single input text as the case's one user message."""
    text = "" if text is None else text
    if not isinstance(text, str):
        raise CaseInvalid("The input must be text.")
    if not text.strip():
        raise CaseInvalid("Give the case an input (the user's message), or its messages.")
    return clean_messages([{"role": "user", "content": text}])


def clean_expected(expected):
    """What the reply should be: None (nothing expected), a text, or a JSON value."""
    if expected is None or (isinstance(expected, str) and not expected.strip()):
        return None
    if isinstance(expected, str):
        expected = expected.replace("\r\n", "\n")
    limit = current_app.config["MAX_MESSAGE_CHARS"]
    if len(expected if isinstance(expected, str) else canonical_json(expected)) > limit:
        raise CaseInvalid(f"The expected output is longer than {limit:,} characters.")
    return expected


def clean_checks(checks) -> list:
    """The checks, as ``domain.checks`` reads them; CaseInvalid with its sentence."""
    if checks is None:
        return []
    problem = checks_problem(checks)
    if problem:
        raise CaseInvalid(problem)
    if len(canonical_json(checks)) > current_app.config["MAX_MESSAGE_CHARS"]:
        raise CaseInvalid(f"The checks are longer than {current_app.config['MAX_MESSAGE_CHARS']:,} characters.")
    return checks


def clean_tags(tags) -> list[str]:
    """The tags: short texts without commas or semicolons, each once, in order."""
    if tags is None:
        return []
    if isinstance(tags, str):
        tags = split_tags(tags)
    if not isinstance(tags, list):
        raise CaseInvalid("The tags must be a list of short texts.")
    cleaned = []
    for tag in tags:
        if not isinstance(tag, str):
            raise CaseInvalid(f"A tag must be text, not {json_type(tag)}.")
        tag = " ".join(tag.split())
        if not tag:
            continue
        if len(tag) > MAX_TAG_CHARS:
            raise CaseInvalid(f"Tags are limited to {MAX_TAG_CHARS} characters; {tag[:MAX_TAG_CHARS]!r}… is longer.")
        if any(separator in tag for separator in TAG_SEPARATORS):
            raise CaseInvalid(f"A tag may not hold a comma or a semicolon ({tag!r}): they separate tags.")
        if tag not in cleaned:
            cleaned.append(tag)
    if len(cleaned) > MAX_TAGS:
        raise CaseInvalid(f"A case has at most {MAX_TAGS} tags; this one has {len(cleaned)}.")
    return cleaned


def split_tags(text: str) -> list[str]:
    """Tags typed or written in one cell: separated by commas or semicolons."""
    for separator in TAG_SEPARATORS[1:]:
        text = text.replace(separator, TAG_SEPARATORS[0])
    return [tag.strip() for tag in text.split(TAG_SEPARATORS[0]) if tag.strip()]


def case_fields(data: dict) -> dict:
    """The fields of a case (``FIELDS``), checked and in their stored form; CaseInvalid with the first problem.

    ``data`` holds ``name``, ``variables``, ``expected``, ``checks``, ``tags`` and either ``input`` (one
    user message) or ``messages``; other keys are refused.
    """
    unknown = sorted(set(data) - {*FIELDS, "input"})
    if unknown:
        raise CaseInvalid(f"A case has no field {unknown[0]!r} (it has {', '.join((*FIELDS, 'input'))}).")
    if data.get("input") is not None and data.get("messages") is not None:
        raise CaseInvalid("Give either an input or messages, not both.")
    name = in_field("name", clean_name, data.get("name"))
    if data.get("messages") is not None:
        messages = in_field("messages", clean_messages, data["messages"])
    else:
        messages = in_field("input", input_messages, data.get("input"))
    fields = {
        "name": name,
        "variables": in_field("variables", clean_variables, data.get("variables")),
        "messages": messages,
        "expected": in_field("expected", clean_expected, data.get("expected")),
        "checks": in_field("checks", clean_checks, data.get("checks")),
        "tags": in_field("tags", clean_tags, data.get("tags")),
    }
    if holds_nul(fields):  # PostgreSQL stores no NUL character in a text
        raise CaseInvalid("The case holds a NUL character (\\0), which no text may hold.")
    return fields


def holds_nul(value) -> bool:
    """Whether any text in a JSON value (keys too) holds the NUL character."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(holds_nul(key) or holds_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(holds_nul(item) for item in value)
    return False


def in_field(field: str, clean, value):
    """``clean(value)``; a refusal names ``field`` (its ``field`` detail), so a form shows it under that field."""
    try:
        return clean(value)
    except CaseInvalid as problem:
        problem.details.setdefault("field", field)
        raise


def single_input(messages: list[dict]) -> str | None:
    """The text of a case that is one user message (shown and exported as ``input``); None otherwise."""
    if len(messages) == 1 and messages[0]["role"] == "user" and set(messages[0]) == {"role", "content"}:
        return messages[0]["content"]
    return None


# --- reading and writing -----------------------------------------------------------------------


def list_cases(prompt, tag: str | None = None) -> list[TestCase]:
    """The prompt's cases by name; only those tagged ``tag`` when given."""
    cases = list(db.session.scalars(select(TestCase).where(TestCase.prompt_id == prompt.id).order_by(TestCase.name)))
    if tag:
        cases = [case for case in cases if tag in (case.tags or [])]
    return cases


def case_tags(cases) -> list[str]:
    """Every tag of ``cases``, sorted."""
    return sorted({tag for case in cases for tag in case.tags or []})


def count_cases(prompt) -> int:
    """How many cases the prompt has."""
    return db.session.scalar(select(func.count()).select_from(TestCase).where(TestCase.prompt_id == prompt.id))


def get_case(prompt, case_id) -> TestCase:
    """Case ``case_id`` of the prompt; CaseNotFound if it has none."""
    case = db.session.get(TestCase, case_id) if isinstance(case_id, int) else None
    if case is None or case.prompt_id != prompt.id:
        raise CaseNotFound(f"The prompt {prompt.slug!r} has no test case {case_id}.")
    return case


def find_case(prompt, name: str) -> TestCase | None:
    """The prompt's case named ``name``."""
    return db.session.scalar(select(TestCase).where(TestCase.prompt_id == prompt.id, TestCase.name == name))


def name_taken(name: str) -> CaseInvalid:
    """The refusal of a second case with one name."""
    return CaseInvalid(f"A case named {name!r} exists already in this prompt; choose another name.", 409, field="name")


def apply_fields(case: TestCase, fields: dict) -> None:
    """Write checked ``fields`` onto ``case`` with its content hash."""
    for name in FIELDS:
        setattr(case, name, fields[name])
    case.content_hash = content_hash(fields)
    case.updated_at = utcnow()


def create_case(prompt, data: dict, actor=None) -> TestCase:
    """Add a case to the prompt (``data`` as ``case_fields`` reads it); CaseInvalid, nothing written, if it cannot be."""
    fields = case_fields(data)
    if find_case(prompt, fields["name"]) is not None:
        raise name_taken(fields["name"])
    if count_cases(prompt) >= max_cases():
        raise CaseInvalid(f"A prompt holds at most {max_cases():,} test cases; delete some first.", 409)
    case = TestCase(prompt_id=prompt.id)
    apply_fields(case, fields)
    db.session.add(case)
    try:
        db.session.flush()
        record_event("case.created", actor, prompt, case=case.name, case_id=case.id)
        db.session.commit()
    except IntegrityError:  # the same name saved at the same moment
        db.session.rollback()
        raise name_taken(fields["name"]) from None
    return case


def update_case(prompt, case: TestCase, data: dict, actor=None) -> TestCase:
    """Replace what a case says (``data`` as ``case_fields`` reads it); CaseInvalid if it cannot be."""
    fields = case_fields(data)
    other = find_case(prompt, fields["name"])
    if other is not None and other.id != case.id:
        raise name_taken(fields["name"])
    before = (case.name, case.content_hash, list(case.tags or []))
    apply_fields(case, fields)
    try:
        if before != (case.name, case.content_hash, case.tags):
            detail = {"case": case.name, "case_id": case.id}
            if before[0] != case.name:
                detail["from_name"] = before[0]
            record_event("case.edited", actor, prompt, **detail)
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise name_taken(fields["name"]) from None
    return case


def delete_case(prompt, case: TestCase, actor=None) -> None:
    """Delete a case (results that ran it keep its name and hash)."""
    record_event("case.deleted", actor, prompt, case=case.name, case_id=case.id)
    db.session.delete(case)
    db.session.commit()


def unused_name(prompt, wanted: str) -> str:
    """``wanted`` (cut to fit) if no case of the prompt has it, else ``wanted (2)``, ``wanted (3)``…"""
    wanted = " ".join(wanted.split())[: MAX_CASE_NAME_CHARS - 8].strip() or "Case"
    taken = set(db.session.scalars(select(TestCase.name).where(TestCase.prompt_id == prompt.id)))
    if wanted not in taken:
        return wanted
    number = 2
    while f"{wanted} ({number})" in taken:
        number += 1
    return f"{wanted} ({number})"
