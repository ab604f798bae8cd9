"""Differences between two versions of a prompt, side by side or unified (the template escapes them).

A changed line marks the words that changed in it (``domain.text_diff``, as Replay does), not the
whole line: one word in a long instruction is what a reader looks for.
"""

import dataclasses
import difflib
import json
import os
from dataclasses import dataclass

from ..domain.text_diff import Piece, word_diff
from ..domain.tools import format_json
from .models import TEXT_FORMAT, PromptVersion


@dataclass
class Row:
    """One line of a side-by-side diff: left and right line numbers and text, and what changed."""

    kind: str  # "same", "changed", "removed", "added"
    left_number: int | None
    left: str | None
    right_number: int | None
    right: str | None
    # A changed row's words: the left line as "same" and "removed" pieces, the right as "same" and "added".
    left_pieces: list[Piece] = dataclasses.field(default_factory=list)
    right_pieces: list[Piece] = dataclasses.field(default_factory=list)


@dataclass
class FieldDiff:
    """The difference of one field (system prompt, model, params, variables) between two versions."""

    label: str
    changed: bool
    rows: list[Row]
    unified: list[str]


def _lines(version: PromptVersion, field: str) -> list[str]:
    if field == "system_prompt":
        return version.system_prompt.split("\n")
    if field == "model":
        return [f"{version.provider} / {version.model}"]
    if field == "tools":  # pretty JSON, a line per key, so a changed description shows its words
        tools = format_json(version.tools).split("\n") if version.tools else []
        choice = version.tool_choice or "auto"
        return tools + ([f"tool_choice = {choice}"] if tools or choice != "auto" else [])
    if field == "response_format":
        return format_json(version.response_format or TEXT_FORMAT).split("\n")
    value = getattr(version, field) or {}
    return [f"{key} = {json.dumps(value[key], ensure_ascii=False)}" for key in value]


def _inside_word(text: str, cut: int) -> bool:
    return 0 < cut < len(text) and _is_word(text[cut - 1]) and _is_word(text[cut])


def _is_word(character: str) -> bool:
    return character.isalnum() or character == "_"


def changed_words(old: str, new: str) -> list[Piece]:
    """The word diff of two lines, with the whole words a removal and the addition after it share kept as same.

    The word diff's tokens carry their trailing space, so "questions." against "questions for …"
    would mark "questions" on both sides; here only " for …" is.
    """
    pieces: list[Piece] = []
    raw = list(word_diff(old, new))
    index = 0
    while index < len(raw):
        piece = raw[index]
        after = raw[index + 1] if index + 1 < len(raw) else None
        if piece.kind != "removed" or after is None or after.kind != "added":
            pieces.append(piece)
            index += 1
            continue
        removed, added = piece.text, after.text
        head = len(os.path.commonprefix([removed, added]))
        while head and (_inside_word(removed, head) or _inside_word(added, head)):
            head -= 1
        tail = len(os.path.commonprefix([removed[head:][::-1], added[head:][::-1]]))
        while tail and (_inside_word(removed, len(removed) - tail) or _inside_word(added, len(added) - tail)):
            tail -= 1
        for kind, text in (
            ("same", removed[:head]),
            ("removed", removed[head : len(removed) - tail]),
            ("added", added[head : len(added) - tail]),
            ("same", removed[len(removed) - tail :]),
        ):
            if not text:
                continue
            if pieces and pieces[-1].kind == kind:
                pieces[-1] = Piece(kind, pieces[-1].text + text)
            else:
                pieces.append(Piece(kind, text))
        index += 2
    merged: list[Piece] = []
    for piece in pieces:  # a "same" piece freed above may now touch another
        if merged and merged[-1].kind == piece.kind:
            merged[-1] = Piece(piece.kind, merged[-1].text + piece.text)
        else:
            merged.append(piece)
    return merged


def side_by_side(left: list[str], right: list[str]) -> list[Row]:
    """Pair the lines of two texts, marking each row same, changed, removed or added."""
    rows = []
    matcher = difflib.SequenceMatcher(a=left, b=right, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            rows += [Row("same", i + 1, left[i], j + 1, right[j]) for i, j in zip(range(i1, i2), range(j1, j2))]
            continue
        for offset in range(max(i2 - i1, j2 - j1)):
            i, j = i1 + offset, j1 + offset
            has_left, has_right = i < i2, j < j2
            kind = "changed" if has_left and has_right else ("removed" if has_left else "added")
            row = Row(
                kind,
                i + 1 if has_left else None,
                left[i] if has_left else None,
                j + 1 if has_right else None,
                right[j] if has_right else None,
            )
            if kind == "changed":
                pieces = changed_words(left[i], right[j])
                row.left_pieces = [piece for piece in pieces if piece.kind != "added"]
                row.right_pieces = [piece for piece in pieces if piece.kind != "removed"]
            rows.append(row)
    return rows


FIELDS = (
    ("system_prompt", "System prompt"),
    ("model", "Model"),
    ("params", "Parameters"),
    ("variables", "Variables"),
    ("tools", "Tools"),
    ("response_format", "Response format"),
)


def diff_versions(old: PromptVersion, new: PromptVersion) -> list[FieldDiff]:
    """The difference of every field between two versions."""
    diffs = []
    for field, label in FIELDS:
        left, right = _lines(old, field), _lines(new, field)
        unified = list(
            difflib.unified_diff(left, right, f"version {old.number}", f"version {new.number}", lineterm="", n=3)
        )
        diffs.append(FieldDiff(label, left != right, side_by_side(left, right), unified))
    return diffs
