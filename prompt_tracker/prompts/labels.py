"""Labels: named pointers at a prompt's versions (``production``, ``staging``, …), moved and resolved.

``latest`` is not stored: it always means the newest version, so it cannot be moved. The labels in
PROTECTED_LABELS are moved only by admins. Every move is an audit event (``label.moved``, from → to).
"""

import re

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from ..audit import record_event
from ..domain.refusals import Refused
from ..extensions import db
from .models import MAX_LABEL_CHARS, Prompt, PromptLabel, PromptVersion, utcnow

LABEL_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
LATEST = "latest"
MOVE_ATTEMPTS = 3


class LabelInvalid(Refused):
    """The label cannot be set as asked: a bad name, or ``latest``."""

    status = 422


class LabelProtected(Refused):
    """A protected label (PROTECTED_LABELS) moved by someone who is not an admin."""

    status = 403


class VersionNotFound(Refused):
    """The version, or the label, asked for does not exist on this prompt."""

    status = 404


class AmbiguousVersion(Refused):
    """Both a label and a version number were given."""

    status = 400


def check_label(label: str) -> str:
    """Return the label, lower-cased and stripped, or raise LabelInvalid saying why it cannot be one."""
    label = (label or "").strip().lower()
    if label == LATEST:
        raise LabelInvalid("The label latest always means the newest version: it cannot be moved or set.")
    if not LABEL_RE.match(label):
        raise LabelInvalid(
            f"A label is 1 to {MAX_LABEL_CHARS} lowercase letters, digits, hyphens or underscores, "
            f"starting with a letter or digit; {label[:MAX_LABEL_CHARS]!r} is not one."
        )
    return label


def protected_labels() -> list[str]:
    """The labels only admins may move (PROTECTED_LABELS)."""
    return list(current_app.config["PROTECTED_LABELS"])


def move_label(prompt: Prompt, label: str, number: int, actor, *, admin: bool) -> tuple[int | None, int]:
    """Point ``label`` of ``prompt`` at version ``number`` (create it, move it, or move it back: a rollback).

    ``actor`` is who moves it (a user or a name), ``admin`` whether they may move protected labels.
    Returns (the version it pointed at before or None, the version it points at now); a label already
    there records nothing. Raises LabelInvalid, LabelProtected or VersionNotFound.
    """
    label = check_label(label)
    if label in protected_labels() and not admin:
        raise LabelProtected(
            f"Only an admin can move the label {label}: it is protected (PROTECTED_LABELS). "
            "Ask an admin to move it, or use another label."
        )
    version = version_number(prompt, number)
    for attempt in range(MOVE_ATTEMPTS):
        try:
            # FOR UPDATE: two moves of one label at once queue up, so each records the "from" it replaced.
            current = db.session.scalar(
                select(PromptLabel)
                .where(PromptLabel.prompt_id == prompt.id, PromptLabel.label == label)
                .with_for_update()
            )
            before = current.version.number if current is not None else None
            if before == version.number:
                db.session.rollback()
                return before, before
            if current is None:
                current = PromptLabel(prompt_id=prompt.id, label=label)
                db.session.add(current)
            current.version_id, current.moved_at, current.moved_by = version.id, utcnow(), _name(actor)
            record_event("label.moved", actor, prompt, label=label, from_version=before, to_version=version.number)
            db.session.commit()
            return before, version.number
        except IntegrityError:
            db.session.rollback()  # the same label created at the same moment by another move: read it again
            if attempt == MOVE_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _name(actor) -> str:
    return actor if isinstance(actor, str) else getattr(actor, "email", "")


def version_number(prompt: Prompt, number) -> PromptVersion:
    """Version ``number`` of the prompt, or VersionNotFound with a sentence."""
    found = None
    if isinstance(number, int) or (isinstance(number, str) and number.strip().isdigit()):
        found = db.session.scalar(
            select(PromptVersion).where(PromptVersion.prompt_id == prompt.id, PromptVersion.number == int(number))
        )
    if found is None:
        raise VersionNotFound(f"Prompt {prompt.slug!r} has no version {str(number)[:20]!r}.")
    return found


def resolve_version(prompt: Prompt, label: str | None = None, version=None) -> PromptVersion:
    """The version of ``prompt`` a label or a version number names; none of either: the latest.

    One indexed query. Raises VersionNotFound (an unknown label or number) or AmbiguousVersion (both given).
    """
    if label and version not in (None, ""):
        raise AmbiguousVersion("Give a label or a version number, not both.")
    if version not in (None, ""):
        return version_number(prompt, version)
    label = (label or LATEST).strip().lower()
    if label == LATEST:
        found = db.session.scalar(
            select(PromptVersion)
            .where(PromptVersion.prompt_id == prompt.id)
            .order_by(PromptVersion.number.desc())
            .limit(1)
        )
    else:
        found = db.session.scalar(
            select(PromptVersion)
            .join(PromptLabel, PromptLabel.version_id == PromptVersion.id)
            .where(PromptLabel.prompt_id == prompt.id, PromptLabel.label == label)
        )
    if found is None:
        raise VersionNotFound(f"Prompt {prompt.slug!r} has no label {label[:MAX_LABEL_CHARS]!r}.")
    return found


def labels_by_version(prompt: Prompt) -> dict[int, list[str]]:
    """Version number -> its labels (sorted), ``latest`` included on the newest version."""
    rows = db.session.execute(
        select(PromptVersion.number, PromptLabel.label)
        .join(PromptLabel, PromptLabel.version_id == PromptVersion.id)
        .where(PromptLabel.prompt_id == prompt.id)
        .order_by(PromptLabel.label)
    ).all()
    labels: dict[int, list[str]] = {}
    newest = db.session.scalar(select(func.max(PromptVersion.number)).where(PromptVersion.prompt_id == prompt.id))
    if newest is not None:
        labels[newest] = [LATEST]
    for number, label in rows:
        labels.setdefault(number, []).append(label)
    return labels


def prompt_labels(prompt: Prompt) -> dict[str, int]:
    """Label -> version number of the prompt's stored labels (``latest`` not included), by name."""
    return dict(
        db.session.execute(
            select(PromptLabel.label, PromptVersion.number)
            .join(PromptVersion, PromptLabel.version_id == PromptVersion.id)
            .where(PromptLabel.prompt_id == prompt.id)
            .order_by(PromptLabel.label)
        ).all()
    )
