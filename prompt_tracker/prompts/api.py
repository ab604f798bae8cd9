"""What the read API answers, as plain functions: a version by label or number, the list, a rendered request.

A fetch is one SQL statement (``find``). Labels are read from the ``prompt_labels`` table (prompt_id, label,
version_id) when the labels' model defines it; until then ``latest`` (the newest version) is the only label.
"""

import functools
import hashlib
import json
import re

from sqlalchemy import bindparam, func, null, select
from sqlalchemy.orm import aliased

from ..domain.refusals import Refused
from ..domain.tools import sent_tools
from ..extensions import db
from ..providers import PARAM_NAMES, ChatRequest, UnknownProviderError, get_provider
from .models import TEXT_FORMAT, Prompt, PromptVersion
from .settings import settings_tool_fields
from .variables import TemplateProblem, render

LATEST = "latest"
LABEL_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
ROLES = ("user", "assistant", "system")
# Keys of an SDK request that are about transport, not the prompt: the caller decides whether to stream.
TRANSPORT_KEYS = ("stream", "stream_options")


class NotFound(Refused):
    """No prompt with that slug, no such version, or no such label (404)."""

    status = 404


class BadRequest(Refused):
    """The request cannot be answered as asked: a bad label, version, variable or message (400)."""

    status = 400


def parse_selector(label: str | None, version: str | int | None) -> tuple[str | None, int | None]:
    """The label or version number asked for (neither: the latest); BadRequest for both or a malformed one."""
    if label not in (None, "") and version not in (None, ""):
        raise BadRequest("Ask for a label or a version, not both.")
    if version not in (None, ""):
        if isinstance(version, bool) or not str(version).isdigit() or int(version) < 1:
            raise BadRequest(f"version must be a whole number from 1, not {version!r}.")
        return None, int(version)
    if label not in (None, ""):
        if not isinstance(label, str) or not LABEL_RE.match(label):
            raise BadRequest(
                f"{label!r} is not a label: lowercase letters, digits, '-' and '_', at most 40 characters."
            )
        return label, None
    return None, None


def labels_table():
    """The ``prompt_labels`` table (prompt_id, label, version_id) once the labels' model defines it, else None."""
    return db.metadata.tables.get("prompt_labels")


def labels_of(version: PromptVersion, newest: int | None, stored: str | None) -> list[str]:
    """The labels of ``version``: ``latest`` when it is the newest, then its stored labels (comma-joined), sorted."""
    names = sorted(stored.split(",")) if stored else []
    return ([LATEST] if version.number == newest else []) + names


@functools.cache
def _version_statements(labels):
    """``find``'s statements for the latest, version N and a label, built once for the labels table (or None).

    Each is one statement: the prompt by slug, the version, the prompt's newest number and the version's
    stored labels (comma-joined) in correlated subqueries. Building one costs more than running it.
    """
    other = aliased(PromptVersion)
    newest = select(func.max(other.number)).where(other.prompt_id == Prompt.id).correlate(Prompt).scalar_subquery()
    if labels is None:
        stored = null()
    else:
        tags = labels.alias("tags")
        stored = (
            select(func.aggregate_strings(tags.c.label, ","))
            .where(tags.c.version_id == PromptVersion.id)
            .correlate(PromptVersion)
            .scalar_subquery()
        )
    joined = (
        select(Prompt, PromptVersion, newest, stored)
        .join(PromptVersion, PromptVersion.prompt_id == Prompt.id)
        .where(Prompt.slug == bindparam("slug"))
    )
    latest = joined.order_by(PromptVersion.number.desc()).limit(1)
    numbered = joined.where(PromptVersion.number == bindparam("number"))
    labelled = None
    if labels is not None:
        labelled = joined.join(
            labels, (labels.c.version_id == PromptVersion.id) & (labels.c.prompt_id == Prompt.id)
        ).where(labels.c.label == bindparam("label"))
    return latest, numbered, labelled


def find(slug: str, label: str | None = None, version: int | None = None) -> tuple[Prompt, PromptVersion, list[str]]:
    """The prompt, its version named by ``label`` / ``version`` (neither: the latest) and the version's labels;
    NotFound otherwise.

    One statement on the unique indexes of the slug, of (prompt_id, number) and of (prompt_id, label).
    """
    latest, numbered, labelled = _version_statements(labels_table())
    if version is not None:
        row = db.session.execute(numbered, {"slug": slug, "number": version}).first()
    elif label in (None, LATEST):
        row = db.session.execute(latest, {"slug": slug}).first()
    elif labelled is not None:
        row = db.session.execute(labelled, {"slug": slug, "label": label}).first()
    else:
        row = None
    if row is not None:
        prompt, found, newest, stored = row
        return prompt, found, labels_of(found, newest, stored)
    # Nothing found: say what is missing (a rare path, so a second query is fine).
    if db.session.scalar(select(Prompt.id).where(Prompt.slug == slug)) is None:
        raise NotFound(f"There is no prompt with the slug {slug!r}.")
    if version is not None:
        raise NotFound(f"Prompt {slug!r} has no version {version}.")
    raise NotFound(f"Prompt {slug!r} has no label {label!r}.")


def version_json(prompt: Prompt, version: PromptVersion, labels: list[str]) -> dict:
    """The API's answer for one version: what an application needs to call the model with it.

    ``tools`` (without their mocks: those answer calls in the playground, not in the application),
    ``tool_choice`` and ``response_format`` are added when the version sets them (not their defaults).
    """
    answer = {
        "slug": prompt.slug,
        "name": prompt.name,
        "version": version.number,
        "labels": labels,
        "system_prompt": version.system_prompt,
        "variables": dict(version.variables or {}),
        "provider": version.provider,
        "model": version.model,
        "params": dict(version.params or {}),
    }
    if version.tools:
        answer["tools"] = sent_tools(version.tools)
    if (version.tool_choice or "auto") != "auto":
        answer["tool_choice"] = version.tool_choice
    if version.response_format and version.response_format != TEXT_FORMAT:
        answer["response_format"] = dict(version.response_format)
    return answer


def etag_of(answer: dict) -> str:
    """A strong ETag for an answer: the SHA-256 of its canonical JSON (labels included, so a move changes it)."""
    canonical = json.dumps(answer, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:40]


def list_json() -> list[dict]:
    """Every prompt not archived, by slug, with the versions its labels point at (two or three queries)."""
    prompts = list(db.session.scalars(select(Prompt).where(Prompt.archived.is_(False)).order_by(Prompt.slug)))
    pointers: dict[int, dict[str, int]] = {
        prompt_id: {LATEST: number}
        for prompt_id, number in db.session.execute(
            select(PromptVersion.prompt_id, func.max(PromptVersion.number)).group_by(PromptVersion.prompt_id)
        )
    }
    labels = labels_table()
    if labels is not None:
        rows = db.session.execute(
            select(labels.c.prompt_id, labels.c.label, PromptVersion.number)
            .join(PromptVersion, PromptVersion.id == labels.c.version_id)
            .order_by(labels.c.label)
        )
        for prompt_id, label, number in rows:
            pointers.setdefault(prompt_id, {})[label] = number
    return [
        {
            "slug": prompt.slug,
            "name": prompt.name,
            "labels": pointers.get(prompt.id, {}),
            "updated_at": prompt.updated_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        for prompt in prompts
    ]


def check_values(version: PromptVersion, given) -> dict[str, str]:
    """The variables' values for a render: the given ones over the defaults; BadRequest naming an unknown,
    missing or malformed one."""
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise BadRequest("variables must be an object of names and values.")
    known = dict(version.variables or {})
    unknown = [name for name in given if name not in known]
    if unknown:
        listed = ", ".join(repr(name) for name in unknown)
        has = ", ".join(known) or "none"
        raise BadRequest(
            f"Unknown variable{'s' if len(unknown) > 1 else ''} {listed}: version {version.number} has "
            f"variables {has}.",
            variables=unknown,
        )
    values = dict(known)
    for name, value in given.items():
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise BadRequest(f"Variable {name!r} must be a string or a number.", variables=[name])
        values[name] = str(value)
    missing = [name for name, value in values.items() if not value.strip()]
    if missing:
        listed = ", ".join(repr(name) for name in missing)
        raise BadRequest(
            f"Missing variable{'s' if len(missing) > 1 else ''} {listed}: give a value (the version has no default).",
            variables=missing,
        )
    return values


def check_messages(messages, max_messages: int, max_chars: int) -> list[tuple[str, str]]:
    """The conversation to send after the system prompt, as (role, content); BadRequest naming a bad message."""
    if messages is None:
        return []
    if not isinstance(messages, list):
        raise BadRequest("messages must be a list of {role, content} objects.")
    if len(messages) > max_messages:
        raise BadRequest(f"At most {max_messages:,} messages; this request has {len(messages):,}.")
    checked = []
    for number, message in enumerate(messages, 1):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise BadRequest(f"Message {number} needs a role: one of {', '.join(ROLES)}.")
        content = message.get("content")
        if not isinstance(content, str):
            raise BadRequest(f"Message {number} needs its content as a string.")
        if len(content) > max_chars:
            raise BadRequest(
                f"Message {number} has {len(content):,} characters; a message holds at most {max_chars:,}."
            )
        checked.append((message["role"], content))
    return checked


def render_json(
    prompt: Prompt, version: PromptVersion, labels: list[str], given, messages, max_messages: int, max_chars: int
) -> dict:
    """The request for the version's provider, ready for its SDK: the system prompt rendered in the playground's
    sandbox with the values, the messages, model and parameters (``request``: the SDK call's keyword arguments)."""
    values = check_values(version, given)
    turns = check_messages(messages, max_messages, max_chars)
    try:
        system_prompt = render(version.system_prompt, values)
    except TemplateProblem as problem:
        raise BadRequest(problem.sentence) from None
    params = {name: value for name, value in (version.params or {}).items() if name in PARAM_NAMES}
    try:
        provider = get_provider(version.provider)
    except UnknownProviderError:
        raise BadRequest(f"Version {version.number} names the provider {version.provider!r}, unknown here.") from None
    # The provider's own request building maps the tools and the response format to its SDK's form.
    tool_fields = settings_tool_fields(version)
    tool_fields["tools"] = sent_tools(tool_fields["tools"])
    request = provider.describe(
        ChatRequest(model=version.model, system_prompt=system_prompt, messages=turns, **params, **tool_fields)
    )
    body = {key: value for key, value in request["body"].items() if key not in TRANSPORT_KEYS}
    return {
        "slug": prompt.slug,
        "version": version.number,
        "labels": labels,
        "provider": version.provider,
        "model": version.model,
        "params": params,
        "system_prompt": system_prompt,
        "messages": [{"role": role, "content": content} for role, content in turns],
        "request": body,
    }
