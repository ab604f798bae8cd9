"""A prompt's test cases as files: JSONL and CSV, exported and imported (checked whole first, one transaction).

JSONL: one case a line, an object with ``name``, ``variables``, ``input`` (one user message) or
``messages``, ``expected``, ``checks`` and ``tags``.

CSV: a header row, then one case a row (cells separated by commas, or by semicolons when the header
has semicolons and no comma, as spreadsheets in some languages write it). Columns: ``name``, ``input``, ``expected``, ``tags`` (separated
by commas or semicolons; an export writes commas), one ``var.<name>`` column per template variable (an
empty cell: no value), ``checks`` (a JSON list). Two more an export writes only when a case needs them:
``messages`` (a multi-turn case's messages as JSON, instead of ``input``) and ``expected_format``
(``json`` when the expected cell holds a JSON value rather than text).

An import reads and checks every case before it writes anything: the first bad line is refused with
its number and nothing is imported. A case whose name the prompt has already is updated. The file is
at most ``MAX_IMPORT_BYTES`` (the conversation import's limit), UTF-8, and holds at most as many cases
as a prompt may (``cases.max_cases``).
"""

import csv
import io
import json

import msgspec
from flask import current_app

from ..audit import record_event
from ..domain.refusals import Refused
from ..extensions import db
from .cases import (
    CaseInvalid,
    apply_fields,
    case_fields,
    content_hash,
    count_cases,
    list_cases,
    max_cases,
    single_input,
    split_tags,
)
from .models import TestCase

FORMATS = ("jsonl", "csv")
CSV_COLUMNS = ("name", "input", "messages", "expected", "expected_format", "tags", "checks")
VARIABLE_PREFIX = "var."
NOTHING = "Nothing was imported."


class CasesFileRefused(Refused, ValueError):
    """The file cannot be imported; the sentence says why (and on which line)."""

    status = 422


def format_of(filename: str, data: bytes) -> str:
    """``jsonl`` or ``csv``: by the file's extension, else by its first character (``{``: JSONL)."""
    lowered = (filename or "").lower()
    if lowered.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if lowered.endswith(".csv"):
        return "csv"
    return "jsonl" if data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{") else "csv"


def file_text(data: bytes) -> str:
    """The file as text; refused when it is too large or not UTF-8."""
    limit = current_app.config["MAX_IMPORT_BYTES"]
    if len(data) > limit:
        raise CasesFileRefused(f"The file is larger than {limit // (1024 * 1024)} MB, so nothing was imported.", 413)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CasesFileRefused(f"This file is not UTF-8 text. {NOTHING}") from None


def decode_json(text: str):
    """A JSON value, or ValueError with a short reason (malformed, or nested too deeply)."""
    try:
        return msgspec.json.decode(text.encode())
    except msgspec.DecodeError as error:
        raise ValueError(str(error).rstrip(".")) from None
    except RecursionError:  # msgspec stops at Python's recursion limit, cleanly
        raise ValueError("it nests its data too deeply") from None


def refused_at(line: int, problem) -> CasesFileRefused:
    """The refusal of a whole file for the problem on ``line``."""
    sentence = str(problem).rstrip(".")
    return CasesFileRefused(
        f"Line {line}: {sentence[0].lower() + sentence[1:] if sentence else 'unreadable'}. {NOTHING}"
    )


def parse_jsonl(data: bytes) -> list[tuple[int, dict]]:
    """(line number, checked fields) of every case of a JSONL file; CasesFileRefused at the first bad line."""
    parsed = []
    # Split at newlines only: U+2028 and the like may stand unescaped inside a JSON string.
    for number, line in enumerate(file_text(data).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = decode_json(line)
        except ValueError as error:
            raise refused_at(number, f"not a JSON object ({error})") from None
        if not isinstance(value, dict):
            raise refused_at(number, "each line is one case, a JSON object")
        try:
            parsed.append((number, case_fields(value)))
        except CaseInvalid as problem:
            raise refused_at(number, problem.sentence) from None
    return checked_whole(parsed)


def parse_csv(data: bytes) -> list[tuple[int, dict]]:
    """(line number, checked fields) of every case of a CSV file; CasesFileRefused at the first bad line."""
    text = file_text(data)
    first_line = text.split("\n", 1)[0]
    # A spreadsheet set to a language that writes decimal commas separates cells with semicolons.
    delimiter = ";" if ";" in first_line and "," not in first_line else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    parsed, line = [], 1
    try:
        header = next(reader, None)
        if header is None:
            raise CasesFileRefused(f"The file is empty. {NOTHING}")
        header = [column.strip() for column in header]
        check_header(header)
        while True:
            line = reader.line_num + 1  # where the next row starts (a quoted cell may span lines)
            row = next(reader, None)
            if row is None:
                break
            if not any(cell.strip() for cell in row):
                continue
            if len(row) > len(header):
                raise refused_at(line, f"it has {len(row)} cells and the header names {len(header)} columns")
            cells = dict(zip(header, row, strict=False))
            try:
                parsed.append((line, case_fields(csv_case(cells))))
            except CaseInvalid as problem:
                raise refused_at(line, problem.sentence) from None
    except csv.Error as error:
        raise refused_at(line, f"not readable as CSV ({error})") from None
    return checked_whole(parsed)


def check_header(header: list[str]) -> None:
    """Refuse a header without ``name``, with a column twice or one that is not ours."""
    if "name" not in header:
        raise CasesFileRefused(f"The first line must name the columns, with name among them. {NOTHING}")
    for column in header:
        if header.count(column) > 1:
            raise CasesFileRefused(f"The column {column!r} appears twice in the header. {NOTHING}")
        if column not in CSV_COLUMNS and not (
            column.startswith(VARIABLE_PREFIX) and len(column) > len(VARIABLE_PREFIX)
        ):
            raise CasesFileRefused(
                f"The column {column!r} is not one of {', '.join(CSV_COLUMNS)} or var.<name>. {NOTHING}"
            )


def csv_case(cells: dict[str, str]) -> dict:
    """A CSV row's cells as the fields ``case_fields`` reads."""
    case = {
        "name": cells.get("name", ""),
        "variables": {
            column[len(VARIABLE_PREFIX) :]: value
            for column, value in cells.items()
            if column.startswith(VARIABLE_PREFIX) and value != ""
        },
        "tags": split_tags(cells.get("tags", "")),
    }
    if cells.get("messages", "").strip():
        case["messages"] = json_cell(cells["messages"], "messages")
    else:
        case["input"] = cells.get("input", "")
    expected = cells.get("expected", "")
    expected_format = cells.get("expected_format", "").strip().lower() or "text"
    if expected_format not in ("text", "json"):
        raise CaseInvalid(f"expected_format is text or json, not {expected_format!r}.")
    case["expected"] = json_cell(expected, "expected") if expected_format == "json" and expected.strip() else expected
    case["checks"] = json_cell(cells["checks"], "checks") if cells.get("checks", "").strip() else []
    return case


def json_cell(text: str, column: str):
    """The JSON value of a cell; CaseInvalid naming the column."""
    try:
        return decode_json(text)
    except ValueError as error:
        raise CaseInvalid(f"The {column} cell is not JSON ({error}).") from None


def checked_whole(parsed: list[tuple[int, dict]]) -> list[tuple[int, dict]]:
    """Refuse a file that names a case twice or holds more cases than a prompt may."""
    if len(parsed) > max_cases():
        raise CasesFileRefused(f"The file has {len(parsed):,} cases; a prompt holds at most {max_cases():,}. {NOTHING}")
    seen = {}
    for line, fields in parsed:
        if fields["name"] in seen:
            raise refused_at(line, f"the case name {fields['name']!r} is on line {seen[fields['name']]} too")
        seen[fields["name"]] = line
    return parsed


def parse_cases(data: bytes, file_format: str) -> list[tuple[int, dict]]:
    """Every case of a file in ``file_format`` (``jsonl`` or ``csv``), checked."""
    if file_format not in FORMATS:
        raise CasesFileRefused(f"The format is jsonl or csv, not {file_format!r}.")
    return parse_jsonl(data) if file_format == "jsonl" else parse_csv(data)


def import_cases(prompt, data: bytes, file_format: str, actor=None) -> dict:
    """Import a file of cases into the prompt in one transaction; a case whose name exists is updated.

    Returns counts: ``added``, ``updated``, ``unchanged``. One ``cases.imported`` audit event when anything changed.
    """
    parsed = parse_cases(data, file_format)
    existing = {case.name: case for case in list_cases(prompt)}
    added = [fields for _, fields in parsed if fields["name"] not in existing]
    if count_cases(prompt) + len(added) > max_cases():
        raise CasesFileRefused(
            f"The import would add {len(added):,} cases to the {len(existing):,} there are; "
            f"a prompt holds at most {max_cases():,}. {NOTHING}"
        )
    counts = {"added": 0, "updated": 0, "unchanged": 0}
    try:
        for _, fields in parsed:
            case = existing.get(fields["name"])
            if case is None:
                case = TestCase(prompt_id=prompt.id)
                db.session.add(case)
                counts["added"] += 1
            elif (case.content_hash, list(case.tags or [])) == (content_hash(fields), fields["tags"]):
                counts["unchanged"] += 1
                continue
            else:
                counts["updated"] += 1
            apply_fields(case, fields)
        if counts["added"] or counts["updated"]:
            record_event(
                "cases.imported", actor, prompt, format=file_format, added=counts["added"], updated=counts["updated"]
            )
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return counts


def import_summary(counts: dict) -> str:
    """What an import did, in words: "3 added, 2 updated" (and unchanged ones, if any)."""
    summary = f"{counts['added']} added, {counts['updated']} updated"
    if counts.get("unchanged"):
        summary += f", {counts['unchanged']} unchanged"
    return summary


def case_record(case) -> dict:
    """A case as one JSONL object: ``input`` for a single user message, else ``messages``."""
    record = {"name": case.name, "variables": dict(case.variables or {})}
    text = single_input(case.messages)
    if text is not None:
        record["input"] = text
    else:
        record["messages"] = list(case.messages)
    record.update(expected=case.expected, checks=list(case.checks or []), tags=list(case.tags or []))
    return record


def export_jsonl(prompt, tag: str | None = None) -> str:
    """The prompt's cases (or those tagged ``tag``) as JSONL, by name."""
    return "".join(json.dumps(case_record(case), ensure_ascii=False) + "\n" for case in list_cases(prompt, tag))


def export_csv(prompt, tag: str | None = None) -> str:
    """The prompt's cases (or those tagged ``tag``) as CSV, by name: what ``parse_csv`` reads back."""
    cases = list_cases(prompt, tag)
    variables = sorted({name for case in cases for name in case.variables or {}})
    multi_turn = any(single_input(case.messages) is None for case in cases)
    json_expected = any(case.expected is not None and not isinstance(case.expected, str) for case in cases)
    header = ["name", "input", *(["messages"] if multi_turn else []), "expected"]
    header += [*(["expected_format"] if json_expected else []), "tags"]
    header += [VARIABLE_PREFIX + name for name in variables] + ["checks"]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for case in cases:
        text = single_input(case.messages)
        is_json = case.expected is not None and not isinstance(case.expected, str)
        row = [case.name, text if text is not None else ""]
        if multi_turn:
            row.append("" if text is not None else json.dumps(case.messages, ensure_ascii=False))
        row.append(json.dumps(case.expected, ensure_ascii=False) if is_json else case.expected or "")
        if json_expected:
            row.append("json" if is_json else "")
        row.append(", ".join(case.tags or []))
        row += [(case.variables or {}).get(name, "") for name in variables]
        row.append(json.dumps(case.checks, ensure_ascii=False) if case.checks else "")
        writer.writerow(row)
    return out.getvalue()
