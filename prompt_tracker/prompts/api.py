"""What the read API answers, as plain functions: a version by label or number, the list, a rendered request.

``resolve_version`` is the one place that turns ``?label=`` / ``?version=`` into a version. Until labels
exist only ``latest`` (the newest version) is a label; the labels' code provides its own
``resolve_version(prompt, label=None, version=None)`` with the same contract and replaces this one.
"""

import functools
import hashlib
import json
import re

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import aliased

from ..domain.refusals import Refused
from ..extensions import db
from ..providers import PARAM_NAMES, ChatRequest, UnknownProviderError, get_provider
from .models import Prompt, PromptVersion
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


def resolve_version(prompt: Prompt, label: str | None = None, version: int | None = None) -> PromptVersion | None:
    """The version of ``prompt`` that ``label`` or ``version`` names (neither: the latest); None if there is none.

    One query on the (prompt_id, number) unique index. Until labels exist, ``latest`` is the only label.
    """
    statement = select(PromptVersion).where(PromptVersion.prompt_id == prompt.id)
    if version is not None:
        return db.session.scalar(statement.where(PromptVersion.number == version))
    if label not in (None, LATEST):
        return None
    return db.session.scalar(statement.order_by(PromptVersion.number.desc()).limit(1))


def labels_of(prompt: Prompt, version: PromptVersion, latest_number: int) -> list[str]:
    """The labels that point at ``version`` (``latest`` when it is the newest)."""
    return [LATEST] if version.number == latest_number else []


def latest_number(prompt: Prompt) -> int:
    """The number of the prompt's newest version (versions are numbered 1..n)."""
    return db.session.scalar(select(func.max(PromptVersion.number)).where(PromptVersion.prompt_id == prompt.id)) or 0


@functools.cache
def _version_statements():
    """The statements of ``find`` (latest; version N), built once: building one costs more than running it."""
    other = aliased(PromptVersion)
    newest = select(func.max(other.number)).where(other.prompt_id == Prompt.id).correlate(Prompt).scalar_subquery()
    joined = (
        select(Prompt, PromptVersion, newest)
        .join(PromptVersion, PromptVersion.prompt_id == Prompt.id)
        .where(Prompt.slug == bindparam("slug"))
    )
    latest = joined.order_by(PromptVersion.number.desc()).limit(1)
    return latest, joined.where(PromptVersion.number == bindparam("number"))


def find(slug: str, label: str | None = None, version: int | None = None) -> tuple[Prompt, PromptVersion, list[str]]:
    """The prompt, its version named by ``label`` / ``version`` (neither: the latest) and the version's labels;
    NotFound otherwise.

    The latest version, or version N, is one query on the slug's and (prompt_id, number)'s unique indexes;
    another label goes through ``resolve_version``.
    """
    if label in (None, LATEST):
        latest, numbered = _version_statements()
        if version is None:
            row = db.session.execute(latest, {"slug": slug}).first()
        else:
            row = db.session.execute(numbered, {"slug": slug, "number": version}).first()
        if row is not None:
            prompt, found, newest = row
            return prompt, found, labels_of(prompt, found, newest)
    prompt = db.session.scalar(select(Prompt).where(Prompt.slug == slug))
    if prompt is None:
        raise NotFound(f"There is no prompt with the slug {slug!r}.")
    found = resolve_version(prompt, label, version)
    if found is None:
        if version is not None:
            raise NotFound(f"Prompt {slug!r} has no version {version}.")
        raise NotFound(f"Prompt {slug!r} has no label {label!r}.")
    return prompt, found, labels_of(prompt, found, latest_number(prompt))


def version_json(prompt: Prompt, version: PromptVersion, labels: list[str]) -> dict:
    """The API's answer for one version: what an application needs to call the model with it.

    ``tools``, ``tool_choice`` and ``response_format`` are added when versions have them.
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
    for optional in ("tools", "tool_choice", "response_format"):
        value = getattr(version, optional, None)
        if value is not None:
            answer[optional] = value
    return answer


def etag_of(answer: dict) -> str:
    """A strong ETag for an answer: the SHA-256 of its canonical JSON (labels included, so a move changes it)."""
    canonical = json.dumps(answer, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:40]


def list_json() -> list[dict]:
    """Every prompt not archived, by slug, with the versions its labels point at (two queries)."""
    prompts = list(db.session.scalars(select(Prompt).where(Prompt.archived.is_(False)).order_by(Prompt.slug)))
    newest = dict(
        db.session.execute(
            select(PromptVersion.prompt_id, func.max(PromptVersion.number)).group_by(PromptVersion.prompt_id)
        ).all()
    )
    return [
        {
            "slug": prompt.slug,
            "name": prompt.name,
            "labels": {LATEST: newest.get(prompt.id)},
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
    request = provider.describe(ChatRequest(model=version.model, system_prompt=system_prompt, messages=turns, **params))
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
