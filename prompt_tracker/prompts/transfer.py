"""Export prompts with all their versions as JSON, and import such a file (idempotently)."""

from datetime import datetime

import msgspec
from sqlalchemy import select

from ..audit import record_event
from ..extensions import db
from .library import PromptInvalid, check_content, check_prompt_fields, check_slug, check_tools, take_slug
from .models import Prompt, PromptVersion, text_format, utcnow

FORMAT = "prompt-tracker/prompts"
FORMAT_VERSION = 1


class ExportedVersion(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One version in an export file."""

    number: int
    system_prompt: str
    provider: str
    model: str
    params: dict[str, float | int | str | bool | None] = {}
    variables: dict[str, str] = {}
    # Absent in files from before tools: none, "auto", plain text. Checked as the settings form checks them.
    tools: list = []
    tool_choice: str = "auto"
    response_format: dict = msgspec.field(default_factory=text_format)
    note: str = ""
    created_at: datetime | None = None
    created_by: str = ""


class ExportedPrompt(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One prompt in an export file, with every version."""

    slug: str
    name: str
    description: str = ""
    archived: bool = False
    versions: list[ExportedVersion]


class ExportFile(msgspec.Struct, kw_only=True):
    """The whole export file."""

    format: str
    format_version: int
    prompts: list[ExportedPrompt]


def export_prompts(slug: str | None = None) -> bytes:
    """JSON of every prompt (or the one with ``slug``) with all its versions, in a stable order."""
    statement = select(Prompt).order_by(Prompt.slug)
    if slug:
        statement = statement.where(Prompt.slug == slug)
    prompts = [
        ExportedPrompt(
            slug=prompt.slug,
            name=prompt.name,
            description=prompt.description,
            archived=prompt.archived,
            versions=[
                ExportedVersion(
                    number=version.number,
                    system_prompt=version.system_prompt,
                    provider=version.provider,
                    model=version.model,
                    params=version.params or {},
                    variables=version.variables or {},
                    tools=list(version.tools or []),
                    tool_choice=version.tool_choice or "auto",
                    response_format=dict(version.response_format or text_format()),
                    note=version.note,
                    created_at=version.created_at,
                    created_by=version.created_by,
                )
                for version in prompt.versions
            ],
        )
        for prompt in db.session.scalars(statement)
    ]
    data = msgspec.json.encode(ExportFile(format=FORMAT, format_version=FORMAT_VERSION, prompts=prompts))
    return msgspec.json.format(data, indent=2) + b"\n"


def parse_export(data: bytes) -> ExportFile:
    """Read and check an export file completely; raise PromptInvalid saying what is wrong."""
    try:
        parsed = msgspec.json.decode(data, type=ExportFile)
    except msgspec.DecodeError as error:
        if "UTF-8" in str(error):  # msgspec 0.23: "Invalid UTF-8 encoded string" for bytes that are not UTF-8
            raise PromptInvalid("This is not a prompts export file: it is not valid JSON (UTF-8).") from None
        raise PromptInvalid(f"This is not a prompts export file: {error}.") from None
    except UnicodeDecodeError:  # what msgspec before 0.23 raised for them
        raise PromptInvalid("This is not a prompts export file: it is not valid JSON (UTF-8).") from None
    except RecursionError:  # msgspec stops at Python's recursion limit, cleanly: no export nests this deep
        raise PromptInvalid("This is not a prompts export file: it nests its data too deeply.") from None
    if parsed.format != FORMAT or parsed.format_version != FORMAT_VERSION:
        raise PromptInvalid(
            f"This is not a prompts export file of this version (expected format {FORMAT!r}, version {FORMAT_VERSION})."
        )
    seen = set()
    for index, prompt in enumerate(parsed.prompts):
        where = f"prompt {index + 1} ({prompt.slug!r})"
        try:
            check_slug(prompt.slug)
            check_prompt_fields(prompt.name, prompt.description)
            if prompt.slug in seen:
                raise PromptInvalid("the slug appears twice in the file.")
            seen.add(prompt.slug)
            if not prompt.versions:
                raise PromptInvalid("it has no versions.")
            for version in prompt.versions:
                check_content(version.system_prompt, version.variables)
                try:
                    check_tools(version.tools, version.tool_choice, version.response_format)
                except PromptInvalid as problem:
                    raise PromptInvalid(f"version {version.number}: {problem}") from None
        except PromptInvalid as problem:
            raise PromptInvalid(f"The file cannot be imported: {where}: {problem}") from None
    return parsed


def import_prompts(data: bytes, actor=None) -> dict:
    """Import an export file in one transaction; a version whose content is already there is skipped.

    Returns counts: prompts created, prompts updated, versions added, versions unchanged. Each prompt
    the import changes is a ``prompt.imported`` audit event by ``actor`` (what changed in its detail).
    """
    parsed = parse_export(data)
    counts = {"prompts_created": 0, "prompts_updated": 0, "versions_added": 0, "versions_unchanged": 0}
    try:
        for exported in parsed.prompts:
            prompt = db.session.scalar(select(Prompt).where(Prompt.slug == exported.slug))
            created, updated, added = prompt is None, False, []
            if prompt is None:
                take_slug(exported.slug)
                prompt = Prompt(
                    slug=exported.slug,
                    name=exported.name.strip(),
                    description=exported.description,
                    archived=exported.archived,
                )
                db.session.add(prompt)
                counts["prompts_created"] += 1
            elif (prompt.name, prompt.description, prompt.archived) != (
                exported.name.strip(),
                exported.description,
                exported.archived,
            ):
                prompt.name, prompt.description, prompt.archived = (
                    exported.name.strip(),
                    exported.description,
                    exported.archived,
                )
                counts["prompts_updated"] += 1
                updated = True
            existing = [version.content() for version in prompt.versions]
            number = max((version.number for version in prompt.versions), default=0)
            for version in sorted(exported.versions, key=lambda v: v.number):
                system_prompt, variables = check_content(version.system_prompt, version.variables)
                content = {
                    "system_prompt": system_prompt,
                    "provider": version.provider,
                    "model": version.model,
                    "params": dict(version.params),
                    "variables": variables,
                    **check_tools(version.tools, version.tool_choice, version.response_format),
                }
                if content in existing:
                    counts["versions_unchanged"] += 1
                    continue
                number += 1
                prompt.versions.append(
                    PromptVersion(
                        number=number,
                        note=version.note,
                        created_at=version.created_at or utcnow(),
                        created_by=version.created_by,
                        **content,
                    )
                )
                existing.append(content)
                prompt.updated_at = utcnow()
                counts["versions_added"] += 1
                added.append(number)
            if created or updated or added:
                record_event("prompt.imported", actor, prompt, created=created, updated=updated, versions_added=added)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return counts
