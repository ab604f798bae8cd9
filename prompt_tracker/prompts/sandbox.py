"""A Jinja2 sandbox whose every render is bounded in time, in output and in the size of what it builds.

Jinja's ``SandboxedEnvironment`` keeps a template away from Python internals, not from the CPU: a
36-character ``{{ x ~ (9 ** 30000000) }}`` held a gevent web process for 30 s, and a thread cannot
be stopped from outside. So the template stops itself: every operator, call, filter, attribute
read, loop step and output chunk passes here, checks the render's deadline, and refuses (before
allocating) a value larger than the character cap. Values are measured by their *weight*: the
characters of a string, one per number, and for a container one plus the weight of each item (a
list holding the same long string twice weighs twice), counted with a walk that stops at the cap.

A limit reached raises ``TemplateTooCostly`` with a sentence; ``variables.render`` turns it into
the ``TemplateProblem`` the page shows.
"""

import contextlib
import contextvars
import functools
import re
import string
import time
from dataclasses import dataclass

from jinja2 import nodes
from jinja2.compiler import CodeGenerator
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import _PassArg

DEFAULT_MAX_CHARS = 20_000  # config MAX_SYSTEM_PROMPT_CHARS; the cap of a render outside a request
DEFAULT_TIME_LIMIT = 0.1  # seconds of wall clock per render
MAX_RANGE = 10_000  # range() of a template: Jinja's own cap is 100,000
MAX_INT_BITS = 4_096  # about 1,200 digits: no template needs a larger number
_NUMBER_TYPES = (int, float, complex)


class TemplateTooCostly(Exception):
    """A render went past one of its limits; the text says which."""

    def __init__(self, sentence: str):
        super().__init__(sentence)
        self.sentence = sentence


@dataclass(frozen=True)
class Limits:
    """The bounds of one render: the character cap and the deadline (``time.monotonic()``; None: no deadline)."""

    max_chars: int = DEFAULT_MAX_CHARS
    deadline: float | None = None
    time_limit: float = DEFAULT_TIME_LIMIT


_OUTSIDE_A_RENDER = Limits()  # a template only parsed or compiled: the default cap, no deadline
_limits: contextvars.ContextVar[Limits] = contextvars.ContextVar("template_limits", default=_OUTSIDE_A_RENDER)


def current_limits() -> Limits:
    """The limits of the render under way (defaults outside one, e.g. when a template is only parsed)."""
    return _limits.get()


@contextlib.contextmanager
def bounded(max_chars: int, time_limit: float):
    """Within the ``with`` block, renders are bounded by ``max_chars`` and ``time_limit`` seconds from now."""
    token = _limits.set(Limits(max_chars=max_chars, deadline=time.monotonic() + time_limit, time_limit=time_limit))
    try:
        yield
    finally:
        _limits.reset(token)


def check_time() -> None:
    """Refuse to go on once the render's deadline has passed."""
    limits = _limits.get()
    if limits.deadline is not None and time.monotonic() > limits.deadline:
        raise TemplateTooCostly(
            f"The system prompt takes too long to render (more than {round(limits.time_limit * 1000)} ms); "
            "simplify its loops."
        )


def _too_large(how: str = "") -> TemplateTooCostly:
    cap = _limits.get().max_chars
    return TemplateTooCostly(
        f"The system prompt builds a value larger than its limit of {cap:,} characters{f' ({how})' if how else ''}."
    )


def weigh(value, cap: int | None = None) -> int:
    """The weight of ``value`` (see the module's docstring); raises TemplateTooCostly past ``cap``.

    The walk visits at most ``cap`` items, so weighing costs no more than the cap however the value is built.
    """
    cap = _limits.get().max_chars if cap is None else cap
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item)
        elif isinstance(item, dict):
            total += 1
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            total += 1
            stack.extend(item)
        else:
            total += 1
        if total > cap:
            raise _too_large()
    return total


def check_int(value) -> None:
    """Refuse an integer of more than MAX_INT_BITS bits (its decimal text alone would take seconds to make)."""
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise TemplateTooCostly("The system prompt computes a number too large to write out.")


def _check_width(value, what: str = "A width or count in the system prompt is") -> None:
    """A number a filter or method makes that many characters or items of: at most the character cap."""
    cap = _limits.get().max_chars
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > cap:
        raise TemplateTooCostly(f"{what} {value:,}: more than the system prompt's limit of {cap:,} characters.")


# printf-style conversions: %(name)s, flags, width, precision
_PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?([a-zA-Z%])")


def check_printf(template: str, args) -> None:
    """Refuse ``template % args`` when the result would pass the cap (widths and precisions are counted)."""
    estimate = len(template) + weigh(args)
    for width, precision, _ in _PRINTF.findall(template):
        if "*" in (width, precision):
            raise TemplateTooCostly("The system prompt uses a '*' width in % formatting, which templates may not do.")
        estimate += int(width or 0) + int(precision or 0)
    if estimate > _limits.get().max_chars:
        raise _too_large("formatting a text")


def check_format_spec(template: str) -> None:
    """Refuse a ``str.format`` template whose widths or precisions pass the cap."""
    for _, _, spec, _ in string.Formatter().parse(template):
        for number in re.findall(r"\d+", spec or ""):
            _check_width(int(number))


def _check_binop(operator: str, left, right) -> None:
    cap = _limits.get().max_chars
    if operator == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
            if left.bit_length() * right > MAX_INT_BITS:
                raise TemplateTooCostly("The system prompt computes a number too large to write out.")
    elif operator == "*":
        if isinstance(left, int) and isinstance(right, int):
            if left.bit_length() + right.bit_length() > MAX_INT_BITS:
                raise TemplateTooCostly("The system prompt computes a number too large to write out.")
            return
        for sequence, times in ((left, right), (right, left)):
            if isinstance(sequence, (str, list, tuple)) and isinstance(times, int):
                if times > 0 and weigh(sequence) * times > cap:
                    raise _too_large("repeating a text or list")
    elif operator == "+":
        if isinstance(left, int) and isinstance(right, int):
            if max(left.bit_length(), right.bit_length()) >= MAX_INT_BITS:
                raise TemplateTooCostly("The system prompt computes a number too large to write out.")
        elif not isinstance(left, _NUMBER_TYPES) and weigh(left) + weigh(right) > cap:
            raise _too_large()
    elif operator == "%" and isinstance(left, str):
        check_printf(left, right)


def _bounded_range(*args: int) -> range:
    """``range`` of a template: at most MAX_RANGE numbers."""
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise TemplateTooCostly(f"The system prompt loops over more than {MAX_RANGE:,} numbers.")
    return numbers


# --- filters and str methods that make a large text from small arguments -------------------------


def _lines(text) -> int:
    return str(text).count("\n") + 1


def _pre_indent(s, width=4, *_, **__):
    padding = len(width) if isinstance(width, str) else width
    _check_width(padding)
    if len(str(s)) + _lines(s) * (padding or 0) > _limits.get().max_chars:
        raise _too_large("indenting a text")


def _pre_join(value, d="", attribute=None):
    items = list(value)
    if sum(weigh(item) for item in items) + max(len(items) - 1, 0) * len(str(d)) > _limits.get().max_chars:
        raise _too_large("joining a list")
    return items


def _pre_replace(s, old, new, count=None):
    text, old, new = str(s), str(old), str(new)
    found = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    if len(text) + found * max(len(new) - len(old), 0) > _limits.get().max_chars:
        raise _too_large("replacing text")


def _pre_wordwrap(s, width=79, break_long_words=True, wrapstring=None, *_, **__):
    _check_width(width)
    text = str(s)
    lines = len(text) // max(int(width), 1) + _lines(text)
    if len(text) + lines * len(wrapstring or "\n") > _limits.get().max_chars:
        raise _too_large("wrapping a text")


def _pre_tojson(value, indent=None):
    _check_width(indent)
    if indent and weigh(value) * (int(indent) + 1) > _limits.get().max_chars:
        raise _too_large("writing JSON")


def _pre_format(value, *args, **kwargs):
    check_printf(str(value), (args, kwargs))


def _pre_widths(value, *args, **kwargs):
    for argument in (*args, *kwargs.values()):
        _check_width(argument)


_FILTER_CHECKS = {
    "indent": _pre_indent,
    "join": _pre_join,
    "replace": _pre_replace,
    "wordwrap": _pre_wordwrap,
    "tojson": _pre_tojson,
    "format": _pre_format,
    **dict.fromkeys(("center", "truncate", "batch", "slice", "round", "urlize", "filesizeformat"), _pre_widths),
}


def _guard_filter(name: str, filter_function):
    """``filter_function`` checking the deadline, its arguments' weights and its own pre-check, and weighing its result."""
    pre_check = _FILTER_CHECKS.get(name)
    passes_first = _PassArg.from_obj(filter_function) is not None  # context, eval context or environment

    @functools.wraps(filter_function)
    def guarded(*args, **kwargs):
        check_time()
        own = args[1:] if passes_first else args
        for argument in (*own, *kwargs.values()):
            weigh(argument)
        if pre_check is not None and own:
            materialized = pre_check(*own, **kwargs)
            if materialized is not None:  # join: the value, read once (it may be a generator)
                args = (*args[: len(args) - len(own)], materialized, *own[1:])
        result = filter_function(*args, **kwargs)
        if isinstance(result, (str, list, tuple, dict)):
            weigh(result)
        check_int(result)
        return result

    return guarded


_STR_METHOD_CHECKS = {
    "join": lambda text, items: _pre_join(items, text),
    "replace": lambda text, old, new, count=-1: _pre_replace(text, old, new, count),
    "expandtabs": lambda text, tabsize=8: _check_tabs(text, tabsize),
}


def _check_tabs(text: str, tabsize) -> None:
    _check_width(tabsize)
    if len(text) + text.count("\t") * max(int(tabsize), 0) > _limits.get().max_chars:
        raise _too_large("expanding tabs")


# --- the code a template compiles to ---------------------------------------------------------------


class _BoundedCodeGenerator(CodeGenerator):
    """Compiles ``~``, list, tuple and dict literals, and each loop's iterable, through the environment's checks."""

    def visit_Concat(self, node, frame) -> None:
        self.write("environment.bounded_concat((")
        for part in node.nodes:
            self.visit(part, frame)
            self.write(", ")
        self.write("))")

    def _bounded_literal(visit):
        def visit_literal(self, node, frame) -> None:
            if getattr(node, "ctx", "load") != "load":  # a loop's or set's target: names, not a value
                visit(self, node, frame)
                return
            self.write("environment.bounded_value(")
            visit(self, node, frame)
            self.write(")")

        return visit_literal

    visit_List = _bounded_literal(CodeGenerator.visit_List)
    visit_Tuple = _bounded_literal(CodeGenerator.visit_Tuple)
    visit_Dict = _bounded_literal(CodeGenerator.visit_Dict)
    del _bounded_literal

    def visit_For(self, node, frame) -> None:
        guarded = nodes.Call(
            nodes.EnvironmentAttribute("bounded_iteration", lineno=node.lineno),
            [node.iter],
            [],
            None,
            None,
            lineno=node.lineno,
        )
        node = nodes.For(
            node.target, guarded, node.body, node.else_, node.test, node.recursive, lineno=node.lineno
        ).set_environment(self.environment)
        super().visit_For(node, frame)


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, with every render bounded by the limits set with ``bounded``."""

    code_generator_class = _BoundedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.globals["range"] = _bounded_range
        self.globals.pop("lipsum", None)  # paragraphs of filler: nothing a system prompt needs, and costly
        self.filters = {name: _guard_filter(name, function) for name, function in self.filters.items()}

    def call_binop(self, context, operator, left, right):
        """An intercepted operator: refused when its result would be too large, else computed."""
        check_time()
        _check_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805  (Jinja's own signature)
        """Call from a template: the deadline, the arguments' weights and widths, then the result's weight."""
        check_time()
        for argument in (*args, *kwargs.values()):
            weigh(argument)
        owner = getattr(__obj, "__self__", None)
        name = getattr(__obj, "__name__", "")
        if isinstance(owner, str):
            if name in ("center", "ljust", "rjust", "zfill"):
                _pre_widths(owner, *args, **kwargs)
            elif name in _STR_METHOD_CHECKS:
                materialized = _STR_METHOD_CHECKS[name](owner, *args, **kwargs)
                if materialized is not None:
                    args = (materialized,)
        result = super().call(__context, __obj, *args, **kwargs)
        if isinstance(result, (str, list, tuple, dict)):
            weigh(result)
        check_int(result)
        return result

    def getattr(self, obj, attribute):
        """Attribute read from a template (after the deadline check)."""
        check_time()
        return super().getattr(obj, attribute)

    def getitem(self, obj, argument):
        """Item read from a template (after the deadline check)."""
        check_time()
        return super().getitem(obj, argument)

    def wrap_str_format(self, value):
        """``str.format`` of a template: widths in its fields are bounded like the filters' widths."""
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            check_format_spec(value.__self__)
        return wrapped

    def concat(self, parts) -> str:
        """Join the output of a block, macro or ``set`` block, refusing it past the cap."""
        parts = list(parts)
        cap = _limits.get().max_chars
        total = 0
        for index, part in enumerate(parts):
            total += len(part)
            if total > cap:
                raise _too_large("writing a block")
            if index % 256 == 0:
                check_time()
        return "".join(parts)

    def bounded_concat(self, parts: tuple) -> str:
        """``a ~ b``: the parts as text, refused past the cap before they are joined."""
        check_time()
        if sum(weigh(part) for part in parts) > _limits.get().max_chars:
            raise _too_large()
        return "".join(map(str, parts))

    def bounded_value(self, value):
        """A list, tuple or dict literal: refused past the cap (a literal can hold the same big value many times)."""
        weigh(value)
        return value

    def bounded_iteration(self, iterable):
        """A loop's items, checking the deadline at each step."""
        for item in iterable:
            check_time()
            yield item
