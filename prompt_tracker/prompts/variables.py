"""Template variables of a system prompt: ``{{ name }}``, rendered in Jinja2's sandbox.

A missing value, a syntax error, an attempt to reach Python internals or a template that would
render too long or too large (``sandbox.BoundedSandbox``) is a ``TemplateProblem`` with a sentence
for the page, raised before anything is sent or stored.
"""

import functools

from flask import current_app, has_app_context
from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, meta, nodes
from jinja2.exceptions import SecurityError

from ..domain.refusals import Refused
from .sandbox import DEFAULT_MAX_CHARS, DEFAULT_TIME_LIMIT, BoundedSandbox, TemplateTooCostly, bounded, check_time

# autoescape off: the result goes to a model, not to a browser (the page escapes what it shows).
_env = BoundedSandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
_MARKERS = ("{{", "{%", "{#")
# Parsing and compiling a template costs up to a few hundred ms for the longest system prompt (its
# length is capped, so this is bounded): a page view or a send of the same text reuses the work.
_CACHED_TEMPLATES = 64


class TemplateProblem(Refused, ValueError):
    """The system prompt cannot be rendered; the text says why and what to do."""

    status = 422


def is_template(text: str) -> bool:
    """True when ``text`` has template syntax at all (plain text is sent as it is)."""
    return any(marker in text for marker in _MARKERS)


def _parse(text: str):
    try:
        return _env.parse(text)
    except TemplateSyntaxError as error:
        raise TemplateProblem(
            f"The system prompt is not a valid template (line {error.lineno}): {error.message.rstrip('.')}."
        ) from None
    except RecursionError:
        raise TemplateProblem("The system prompt nests its brackets or blocks too deeply to be read.") from None


def variable_names(text: str) -> list[str]:
    """Names of the variables the template needs, in order of first appearance."""
    if not is_template(text):
        return []
    return list(_variable_names(text))


@functools.lru_cache(maxsize=_CACHED_TEMPLATES)
def _variable_names(text: str) -> tuple[str, ...]:
    tree = _parse(text)
    try:
        # finding them compiles the template, and compiling folds constants (filters of constants too)
        undeclared = meta.find_undeclared_variables(tree)
    except TemplateTooCostly as limit:
        raise TemplateProblem(limit.sentence) from None
    except (ValueError, ArithmeticError, RecursionError) as error:  # a constant too large to write, say
        raise TemplateProblem(f"The system prompt could not be read as a template: {error}.") from None
    names = []
    for node in tree.find_all(nodes.Name):
        if node.name in undeclared and node.name not in names:
            names.append(node.name)
    return tuple(names)


def render_limits() -> tuple[int, float]:
    """The character cap (config ``MAX_SYSTEM_PROMPT_CHARS``) and the time limit in seconds of a render."""
    if not has_app_context():
        return DEFAULT_MAX_CHARS, DEFAULT_TIME_LIMIT
    config = current_app.config
    return config.get("MAX_SYSTEM_PROMPT_CHARS", DEFAULT_MAX_CHARS), config.get(
        "TEMPLATE_TIME_LIMIT_MS", DEFAULT_TIME_LIMIT * 1000
    ) / 1000


@functools.lru_cache(maxsize=_CACHED_TEMPLATES)
def _compiled(text: str):
    return _env.from_string(text)


def _render_bounded(template, values: dict[str, str], max_chars: int) -> str:
    """Render in the sandbox, reading its output chunk by chunk so that it stops at the cap or the deadline."""
    written, size = [], 0
    for chunk in template.generate(**values):
        check_time()
        size += len(chunk)
        if size > max_chars:
            raise TemplateTooCostly(f"The rendered system prompt is longer than the limit of {max_chars:,} characters.")
        written.append(chunk)
    return "".join(written)


def render(text: str, values: dict[str, str]) -> str:
    """Return the system prompt with its variables filled in from ``values``, within the render's limits.

    The rendered text is at most ``MAX_SYSTEM_PROMPT_CHARS`` long (a plain text too) and the render
    takes at most ``TEMPLATE_TIME_LIMIT_MS``; past either, a TemplateProblem says so.
    """
    max_chars, time_limit = render_limits()
    if not is_template(text):
        if len(text) > max_chars:
            raise TemplateProblem(f"The system prompt is longer than the limit of {max_chars:,} characters.")
        return text
    missing = [name for name in variable_names(text) if not (values.get(name) or "").strip()]
    if missing:
        listed = ", ".join(missing)
        raise TemplateProblem(f"Fill in the variable{'s' if len(missing) > 1 else ''} {listed} before sending.")
    return _render_in_sandbox(text, values, max_chars, time_limit)


def check_renders(text: str, values: dict[str, str]) -> None:
    """Raise the TemplateProblem a send would meet, other than values not filled in (those render as empty).

    For a page that shows the system prompt: a template that cannot be rendered says so there, within
    the same limits as a send.
    """
    if not is_template(text):
        return
    max_chars, time_limit = render_limits()
    filled = {name: values.get(name) or "" for name in variable_names(text)}
    _render_in_sandbox(text, {**values, **filled}, max_chars, time_limit)


def _render_in_sandbox(text: str, values: dict[str, str], max_chars: int, time_limit: float) -> str:
    try:
        template = _compiled(text)  # bounded by the text's length; the time limit is the render's
        with bounded(max_chars, time_limit):
            return _render_bounded(template, {name: str(value) for name, value in values.items()}, max_chars)
    except TemplateTooCostly as limit:
        raise TemplateProblem(limit.sentence) from None
    except SecurityError:
        raise TemplateProblem(
            "The system prompt tries to reach Python internals, which templates may not do; "
            "use plain {{ name }} variables."
        ) from None
    except UndefinedError as error:
        raise TemplateProblem(
            f"The system prompt uses something that is not defined: {error.message.rstrip('.')}."
        ) from None
    except TemplateSyntaxError as error:
        raise TemplateProblem(
            f"The system prompt is not a valid template (line {error.lineno}): {error.message.rstrip('.')}."
        ) from None
    except RecursionError:
        raise TemplateProblem("The system prompt calls its macros too deeply; simplify it.") from None
    except Exception as error:  # a filter misused on a value, e.g. {{ name | int(base=99) }}
        raise TemplateProblem(f"The system prompt could not be rendered: {error}.") from None
