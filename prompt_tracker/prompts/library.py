"""The prompt library's operations, as plain functions over the models (views, CLI and tests call them)."""

import contextlib
import re
import time
import unicodedata

from flask import current_app
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from ..audit import record_event
from ..domain.refusals import Refused
from ..domain.tools import SCHEMA_NAME, check_json_schema, check_tool_choice, format_json, parse_tools
from ..extensions import db
from .db_errors import is_statement_timeout
from .models import (
    MAX_DESCRIPTION_CHARS,
    MAX_NAME_CHARS,
    MAX_NOTE_CHARS,
    MAX_SLUG_CHARS,
    TEXT_FORMAT,
    Prompt,
    PromptSlugHistory,
    PromptVersion,
    utcnow,
)
from .variables import variable_names

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
PER_PAGE = 50
SAVE_ATTEMPTS = 5
MAX_QUERY_CHARS = 200  # a search looks for the first 200 characters of what was typed


class SearchTooSlow(Refused):
    """A search ran past its statement timeout and was stopped (the list page says so)."""

    status = 503


class PromptInvalid(ValueError):
    """The prompt or version cannot be saved as given; the text says why."""


def slugify(name: str) -> str:
    """A URL slug from a name: ASCII lowercase letters, digits and hyphens."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return slug[:MAX_SLUG_CHARS].rstrip("-")


def check_slug(slug: str) -> str:
    """Return ``slug`` if it is a valid slug, else raise PromptInvalid saying why."""
    if not slug:
        raise PromptInvalid("Give the prompt a slug (letters, digits and hyphens), or a name to make one from.")
    if len(slug) > MAX_SLUG_CHARS or not SLUG_RE.match(slug):
        raise PromptInvalid(
            f"The slug {slug[:MAX_SLUG_CHARS]!r} may only hold lowercase letters, digits and hyphens "
            f"(at most {MAX_SLUG_CHARS})."
        )
    return slug


def check_prompt_fields(name: str, description: str) -> tuple[str, str]:
    """Return the cleaned name and description, or raise PromptInvalid."""
    name = (name or "").strip()
    description = (description or "").replace("\r\n", "\n").strip()
    if not name:
        raise PromptInvalid("Give the prompt a name.")
    if len(name) > MAX_NAME_CHARS:
        raise PromptInvalid(f"Names are limited to {MAX_NAME_CHARS} characters; this one has {len(name):,}.")
    if len(description) > MAX_DESCRIPTION_CHARS:
        raise PromptInvalid(
            f"Descriptions are limited to {MAX_DESCRIPTION_CHARS:,} characters; this one has {len(description):,}."
        )
    return name, description


def check_content(system_prompt: str, variables: dict | None) -> tuple[str, dict]:
    """Return the system prompt and the defaults of its variables, or raise PromptInvalid.

    A template that does not parse is refused here, so no version holds one.
    """
    system_prompt = (system_prompt or "").replace("\r\n", "\n")
    limit = current_app.config["MAX_SYSTEM_PROMPT_CHARS"]
    if len(system_prompt) > limit:
        raise PromptInvalid(
            f"The system prompt is limited to {limit:,} characters; this one has {len(system_prompt):,}."
        )
    try:
        names = variable_names(system_prompt)
    except ValueError as problem:
        raise PromptInvalid(str(problem)) from None
    values = variables or {}
    return system_prompt, {name: str(values.get(name) or "") for name in names}


RESPONSE_TYPES = ("text", "json_object", "json_schema")


def check_tools(tools, tool_choice, response_format) -> dict:
    """A version's tools, tool choice and response format, checked as the settings form checks them
    (``domain.tools``); PromptInvalid with the first problem."""
    if not isinstance(tools, list):
        raise PromptInvalid("Tools must be a JSON array of tools.")
    tools, problem = parse_tools(format_json(tools)) if tools else ([], None)
    if problem:
        raise PromptInvalid(problem)
    tool_choice = tool_choice or "auto"
    problem = (
        check_tool_choice(tool_choice, tools) if isinstance(tool_choice, str) else "The tool choice is not a string."
    )
    if problem:
        raise PromptInvalid(problem)
    response_format = dict(response_format or TEXT_FORMAT)
    kind = response_format.get("type")
    if kind not in RESPONSE_TYPES:
        raise PromptInvalid(f"The response format's type must be one of {', '.join(RESPONSE_TYPES)}, not {kind!r}.")
    if kind != "json_schema":
        return {"tools": tools, "tool_choice": tool_choice, "response_format": {"type": kind}}
    name = response_format.get("schema_name") or ""
    if not isinstance(name, str) or (name and not SCHEMA_NAME.match(name)):
        raise PromptInvalid("The schema's name must be 1 to 64 letters, digits, underscores or hyphens.")
    problem = check_json_schema(response_format.get("json_schema"))
    if problem:
        raise PromptInvalid(problem)
    strict = response_format.get("strict", True)
    if not isinstance(strict, bool):
        raise PromptInvalid("The response format's strict must be true or false.")
    fields = {"type": kind, "schema_name": name, "json_schema": response_format["json_schema"], "strict": strict}
    return {"tools": tools, "tool_choice": tool_choice, "response_format": fields}


def create_prompt(
    name: str,
    system_prompt: str,
    *,
    slug: str = "",
    description: str = "",
    provider: str = "echo",
    model: str = "echo-1",
    params: dict | None = None,
    variables: dict | None = None,
    author: str = "",
    actor=None,
) -> Prompt:
    """Create a prompt with its version 1; raise PromptInvalid (nothing written) if it cannot be.

    ``actor`` (a user or a name; default ``author``) is recorded in the audit log with the prompt.
    """
    name, description = check_prompt_fields(name, description)
    slug = check_slug((slug or "").strip().lower() or slugify(name))
    system_prompt, variables = check_content(system_prompt, variables)
    take_slug(slug)
    prompt = Prompt(slug=slug, name=name, description=description)
    prompt.versions.append(
        PromptVersion(
            number=1,
            system_prompt=system_prompt,
            provider=provider,
            model=model,
            params=dict(params or {}),
            variables=variables,
            note="",
            created_by=author,
        )
    )
    db.session.add(prompt)
    try:
        record_event("prompt.created", actor or author, prompt, name=name)
        record_event("version.created", actor or author, prompt, version=1)
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise PromptInvalid(f"A prompt with the slug {slug!r} already exists; choose another.") from None
    return prompt


def save_version(
    prompt_id: int,
    *,
    system_prompt: str,
    provider: str,
    model: str,
    params: dict,
    variables: dict | None,
    tools: list | None = None,
    tool_choice: str = "auto",
    response_format: dict | None = None,
    note: str = "",
    author: str = "",
    actor=None,
) -> PromptVersion:
    """Write the next version of a prompt and return it.

    The number is max + 1; two saves at once are kept apart by the unique (prompt_id, number)
    constraint: the loser rolls back and tries again with the next number.
    """
    system_prompt, variables = check_content(system_prompt, variables)
    tool_fields = check_tools(tools or [], tool_choice, response_format)
    note = (note or "").strip()
    if len(note) > MAX_NOTE_CHARS:
        raise PromptInvalid(f"Notes are limited to {MAX_NOTE_CHARS} characters; this one has {len(note):,}.")
    for attempt in range(SAVE_ATTEMPTS):
        try:
            # Touching the prompt row first makes concurrent saves of one prompt queue up on PostgreSQL.
            db.session.execute(update(Prompt).where(Prompt.id == prompt_id).values(updated_at=utcnow()))
            number = db.session.scalar(
                select(func.max(PromptVersion.number)).where(PromptVersion.prompt_id == prompt_id)
            )
            version = PromptVersion(
                prompt_id=prompt_id,
                number=(number or 0) + 1,
                system_prompt=system_prompt,
                provider=provider,
                model=model,
                params=dict(params),
                variables=variables,
                **tool_fields,
                note=note,
                created_by=author,
            )
            prompt = db.session.get(Prompt, prompt_id)  # before the add: its lookup must not flush the version
            db.session.add(version)
            record_event("version.created", actor or author, prompt, version=version.number, note=note)
            db.session.commit()
            return version
        except IntegrityError:
            db.session.rollback()
            if attempt == SAVE_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def find_prompt(slug: str) -> Prompt | None:
    """The prompt with ``slug``, archived or not."""
    return db.session.scalar(select(Prompt).where(Prompt.slug == slug))


def prompt_with_latest(slug: str) -> tuple[Prompt, PromptVersion] | None:
    """The prompt with ``slug`` and its latest version, in one query (a playground's only one)."""
    row = db.session.execute(
        select(Prompt, PromptVersion)
        .join(PromptVersion, PromptVersion.prompt_id == Prompt.id)
        .where(Prompt.slug == slug)
        .order_by(PromptVersion.number.desc())
        .limit(1)
    ).first()
    return (row[0], row[1]) if row else None


def version_of(prompt: Prompt, number: int) -> PromptVersion | None:
    """Version ``number`` of ``prompt``."""
    return db.session.scalar(
        select(PromptVersion).where(PromptVersion.prompt_id == prompt.id, PromptVersion.number == number)
    )


def escape_like(text: str) -> str:
    """Escape LIKE wildcards so a search for "50%" means those characters."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def contains(column, pattern: str):
    """Case-insensitive LIKE: ILIKE on PostgreSQL; plain LIKE on SQLite, which ignores ASCII case already
    (lower() on every row of every version made a search several times slower)."""
    if db.session.get_bind().dialect.name == "postgresql":
        return column.ilike(pattern, escape="\\")
    return column.like(pattern, escape="\\")


def search_text(query: str) -> str:
    """What a search looks for: ``query`` without surrounding spaces, cut to MAX_QUERY_CHARS."""
    return (query or "").strip()[:MAX_QUERY_CHARS].strip()


@contextlib.contextmanager
def search_timeout(milliseconds: int):
    """Run the block's queries under a statement timeout; past it, roll back and raise SearchTooSlow.

    PostgreSQL: ``statement_timeout`` set for the transaction only (``set_config(..., true)`` is ``SET
    LOCAL``) and put back after, so a slow search frees its connection and the pool instead of holding
    them. SQLite: a progress handler that interrupts the statement past the deadline.
    """
    if milliseconds <= 0:
        yield
        return
    connection = db.session.connection()
    postgresql = connection.dialect.name == "postgresql"
    sqlite = connection.dialect.name == "sqlite"
    if postgresql:
        previous = db.session.scalar(select(func.current_setting("statement_timeout")))
        db.session.execute(select(func.set_config("statement_timeout", f"{int(milliseconds)}ms", True)))
    elif sqlite:
        deadline = time.monotonic() + milliseconds / 1000
        raw = connection.connection.dbapi_connection
        raw.set_progress_handler(lambda: time.monotonic() > deadline, 10_000)
    try:
        yield
    except OperationalError as error:
        if not is_statement_timeout(error):
            raise
        db.session.rollback()
        raise SearchTooSlow(
            f"The search took longer than {milliseconds / 1000:g} s and was stopped. "
            "Search for a longer or more particular text."
        ) from None
    finally:
        if sqlite:
            raw.set_progress_handler(None, 0)
    if postgresql:
        db.session.execute(select(func.set_config("statement_timeout", previous, True)))


def list_prompts(query: str = "", page: int = 1, archived: bool = False, per_page: int = PER_PAGE):
    """One page of prompts, most recently edited first, and the number of versions of each.

    Returns (Flask-SQLAlchemy pagination of Prompt, {prompt id: versions}). ``query`` (see
    ``search_text``) matches the name, the slug or the text of any version, its characters taken
    literally; a search runs under ``SEARCH_TIMEOUT_MS`` (SearchTooSlow past it).
    """
    statement = select(Prompt).where(Prompt.archived == archived)
    query = search_text(query)
    if query:
        pattern = f"%{escape_like(query)}%"
        # Uncorrelated, so PostgreSQL runs it once (through the trigram index) rather than per prompt.
        in_text = Prompt.id.in_(select(PromptVersion.prompt_id).where(contains(PromptVersion.system_prompt, pattern)))
        statement = statement.where(contains(Prompt.name, pattern) | contains(Prompt.slug, pattern) | in_text)
    statement = statement.order_by(Prompt.updated_at.desc(), Prompt.id.desc())
    with search_timeout(current_app.config["SEARCH_TIMEOUT_MS"] if query else 0):
        pagination = db.paginate(statement, page=page, per_page=per_page, error_out=False, max_per_page=200)
    ids = [prompt.id for prompt in pagination.items]
    # Versions are numbered 1..n, so the highest number is the count (read from the unique index).
    counts = (
        dict(
            db.session.execute(
                select(PromptVersion.prompt_id, func.max(PromptVersion.number))
                .where(PromptVersion.prompt_id.in_(ids))
                .group_by(PromptVersion.prompt_id)
            ).all()
        )
        if ids
        else {}
    )
    return pagination, counts


def edit_prompt(prompt: Prompt, *, name: str, slug: str, description: str, actor=None) -> Prompt:
    """Change name, slug and description; versions and playground conversations follow (keyed by id).

    A new slug keeps the old one as a redirect (``PromptSlugHistory``). A change of name or slug is a
    ``prompt.renamed`` event, of the description alone ``prompt.edited``.
    """
    name, description = check_prompt_fields(name, description)
    slug = check_slug((slug or "").strip().lower())
    before = {"name": prompt.name, "slug": prompt.slug}
    described = description != prompt.description
    if slug != prompt.slug:
        old_slug = prompt.slug
        # Statements, not ORM deletes: they run now, before the insert (a flush inserts before it deletes).
        db.session.execute(delete(PromptSlugHistory).where(PromptSlugHistory.old_slug.in_([slug, old_slug])))
        db.session.add(PromptSlugHistory(old_slug=old_slug, prompt_id=prompt.id))
    prompt.name, prompt.slug, prompt.description = name, slug, description
    prompt.updated_at = utcnow()
    try:
        if before != {"name": name, "slug": slug}:
            record_event(
                "prompt.renamed",
                actor,
                prompt,
                from_name=before["name"],
                to_name=name,
                from_slug=before["slug"],
                to_slug=slug,
                description_changed=described,
            )
        elif described:
            record_event("prompt.edited", actor, prompt, description_changed=True)
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise PromptInvalid(f"A prompt with the slug {slug!r} already exists; choose another.") from None
    return prompt


def take_slug(slug: str) -> None:
    """A prompt takes ``slug`` (created or renamed to it): the slug stops redirecting to the prompt it was of.

    Part of the caller's transaction. A history row left behind by a race is harmless: a slug that a
    prompt holds is never looked up in the history (``renamed_prompt``).
    """
    db.session.execute(delete(PromptSlugHistory).where(PromptSlugHistory.old_slug == slug))


def renamed_prompt(old_slug: str) -> Prompt | None:
    """The prompt that had ``old_slug`` before a rename (ask only when no prompt has it now)."""
    return db.session.scalar(
        select(Prompt)
        .join(PromptSlugHistory, PromptSlugHistory.prompt_id == Prompt.id)
        .where(PromptSlugHistory.old_slug == old_slug)
    )


def set_archived(prompt: Prompt, archived: bool, actor=None) -> None:
    """Archive (hide from the list) or restore a prompt (an audit event when it changes)."""
    if prompt.archived == archived:
        return
    prompt.archived = archived
    record_event("prompt.archived" if archived else "prompt.restored", actor, prompt)
    db.session.commit()
