"""Template variables of a system prompt: ``{{ name }}``, rendered in Jinja2's sandbox.

A missing value, a syntax error or an attempt to reach Python internals is a ``TemplateProblem``
with a sentence for the page, raised before anything is sent or stored.
"""

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from ..domain.refusals import Refused

# autoescape off: the result goes to a model, not to a browser (the page escapes what it shows).
_env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
_MARKERS = ("{{", "{%", "{#")


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


def variable_names(text: str) -> list[str]:
    """Names of the variables the template needs, in order of first appearance."""
    if not is_template(text):
        return []
    tree = _parse(text)
    undeclared = meta.find_undeclared_variables(tree)
    names = []
    for node in tree.find_all(nodes.Name):
        if node.name in undeclared and node.name not in names:
            names.append(node.name)
    return names


def render(text: str, values: dict[str, str]) -> str:
    """Return the system prompt with its variables filled in from ``values``."""
    if not is_template(text):
        return text
    missing = [name for name in variable_names(text) if not (values.get(name) or "").strip()]
    if missing:
        listed = ", ".join(missing)
        raise TemplateProblem(f"Fill in the variable{'s' if len(missing) > 1 else ''} {listed} before sending.")
    try:
        return _env.from_string(text).render(**{name: str(value) for name, value in values.items()})
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
    except Exception as error:  # a filter misused on a value, e.g. {{ name | int(base=99) }}
        raise TemplateProblem(f"The system prompt could not be rendered: {error}.") from None
