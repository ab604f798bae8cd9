"""Tools and structured output: parsing and checking what the settings form takes, and checking what
a model answers (tool-call arguments, a structured reply) against its JSON Schema.

Schemas are checked with the ``jsonschema`` library against their own meta-schema (the draft a
schema names in ``$schema``, else the newest), so a typo such as ``"type": "strng"`` is said before
anything is sent. Every function here answers a sentence, never raises, for what a person typed.
"""

import json
import re

from jsonschema import validators
from jsonschema.exceptions import SchemaError, best_match

from ..providers.schema_instance import minimal_instance

__all__ = [
    "TOOL_CHOICES",
    "TOOL_NAME",
    "check_arguments",
    "check_json_schema",
    "check_tool_choice",
    "format_json",
    "minimal_instance",
    "parse_json_schema",
    "parse_tools",
    "sent_tools",
    "tools_text",
    "validate_instance",
]

TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
TOOL_CHOICES = ("auto", "none", "required")  # or a tool's name
SCHEMA_NAME = TOOL_NAME  # OpenAI's rule for a response schema's name
TOOL_KEYS = ("name", "description", "parameters", "mock")
MAX_TOOLS = 128  # OpenAI's limit


def _json_error(what: str, text: str, error: json.JSONDecodeError) -> str:
    return f"{what} is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}."


def check_json_schema(schema, what: str = "The schema") -> str | None:
    """None if ``schema`` is a JSON Schema valid against its meta-schema; else a sentence saying where it is not."""
    if not isinstance(schema, dict):
        return f"{what} must be a JSON object (a JSON Schema)."
    try:
        validators.validator_for(schema).check_schema(schema)
    except SchemaError as error:
        return f"{what} is not a valid JSON Schema: {_where(error)}{error.message}."
    return None


def _where(error) -> str:
    path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path)
    return f"at {path.lstrip('.')}: " if path else ""


def parse_tools(text: str) -> tuple[list[dict], str | None]:
    """The tools a JSON array text describes, and None; or ([], a sentence) when it is not valid."""
    if not (text or "").strip():
        return [], None
    try:
        tools = json.loads(text)
    except json.JSONDecodeError as error:
        return [], _json_error("Tools", text, error)
    if not isinstance(tools, list):
        return [], 'Tools must be a JSON array of tools: [{"name": …, "description": …, "parameters": {…}}].'
    if len(tools) > MAX_TOOLS:
        return [], f"Up to {MAX_TOOLS} tools; this has {len(tools)}."
    seen = set()
    for index, tool in enumerate(tools, start=1):
        label = f"Tool {index}"
        if not isinstance(tool, dict):
            return [], f"{label} must be a JSON object with a name, a description and parameters."
        unknown = [key for key in tool if key not in TOOL_KEYS]
        if unknown:
            return [], f"{label} has an unknown key {unknown[0]!r} (known: {', '.join(TOOL_KEYS)})."
        name = tool.get("name")
        if not isinstance(name, str) or not TOOL_NAME.match(name):
            return [], f"{label}'s name must be 1 to 64 letters, digits, underscores or hyphens."
        label = f"Tool {name!r}"
        if name in seen:
            return [], f"Two tools are named {name!r}: tool names must be unique."
        seen.add(name)
        if not isinstance(tool.get("description", ""), str):
            return [], f"{label}'s description must be a string."
        if "parameters" not in tool:
            tool["parameters"] = {"type": "object", "properties": {}}
        error = check_json_schema(tool["parameters"], f"{label}'s parameters")
        if error:
            return [], error
    return tools, None


def parse_json_schema(text: str) -> tuple[dict | None, str | None]:
    """The JSON Schema a text holds, and None; or (None, a sentence)."""
    if not (text or "").strip():
        return None, None
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as error:
        return None, _json_error("The schema", text, error)
    error = check_json_schema(schema)
    return (None, error) if error else (schema, None)


def check_tool_choice(choice: str, tools: list[dict]) -> str | None:
    """None if ``choice`` is auto, none, required or the name of one of ``tools``; else a sentence."""
    if choice in TOOL_CHOICES:
        return None
    if any(tool.get("name") == choice for tool in tools):
        return None
    return f"Tool choice {choice!r} names no tool: choose auto, none, required or one of the tools' names."


def validate_instance(schema: dict | None, value) -> str | None:
    """None if ``value`` is valid against ``schema`` (or there is none); else its first error, as "JSON path: message"."""
    if not isinstance(schema, dict):
        return None
    try:
        validator = validators.validator_for(schema)(schema)
        error = best_match(validator.iter_errors(value))
    except Exception as error:  # a schema that passed its meta-schema but cannot be applied (a remote $ref)
        return f"$: the schema could not be applied ({type(error).__name__})"
    return None if error is None else f"{error.json_path}: {error.message}"


def check_arguments(tools: list[dict], name: str, arguments: str) -> str | None:
    """None if a call of tool ``name`` with the JSON text ``arguments`` is valid against the tool's parameters."""
    tool = next((tool for tool in tools or [] if isinstance(tool, dict) and tool.get("name") == name), None)
    if tool is None:
        return f"No tool named {name!r} was offered."
    try:
        value = json.loads(arguments or "{}")
    except json.JSONDecodeError as error:
        return _json_error("The arguments", arguments, error)
    return validate_instance(tool.get("parameters"), value)


def sent_tools(tools: list[dict]) -> list[dict]:
    """The tools as a provider is sent them: without their ``mock`` (ours, not the model's)."""
    return [{key: value for key, value in tool.items() if key != "mock"} for tool in tools]


def format_json(value) -> str:
    """``value`` as indented JSON (what the page and the textareas show)."""
    return json.dumps(value, indent=2, ensure_ascii=False)


def tools_text(tools: list[dict]) -> str:
    """The tools as the settings form's textarea shows them ("" for none)."""
    return format_json(tools) if tools else ""
