"""Reply text to HTML, once, when the text is final: Markdown (CommonMark, tables, strikethrough)
with raw HTML off, safe links only, and code highlighted by Pygments with CSS classes.

Rendering is bounded in time: markdown-it-py spends seconds on some crafted texts of 20,000
characters (``[`` or ``![`` repeated: each opening bracket scans ahead), so the parser checks a
deadline as it goes, and a text past it is shown as escaped plain text; code blocks longer than
``HIGHLIGHT_MAX_CHARS``, or met past the deadline, are not highlighted (Pygments takes about a
second for 20,000 characters of Python).

User text is not rendered here: the page shows it escaped, with its line breaks (CSS).
"""

import json
import re
import time
from html import escape
from urllib.parse import urlsplit

from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

from .tools import check_arguments, format_json, validate_instance

LINK_SCHEMES = ("http", "https", "mailto")
LINK_REL = "noopener noreferrer"
# The committed static/pygments.css is generated from these two styles (see ``pygments_css``).
LIGHT_STYLE = "default"
DARK_STYLE = "monokai"
CODE_CLASS = "highlight"

# Seconds one text may take to parse before it is shown as plain text (a capped message of ordinary
# Markdown takes a few tens of milliseconds).
RENDER_TIME_LIMIT = 0.5
HIGHLIGHT_MAX_CHARS = 6_000

_formatter = HtmlFormatter(nowrap=True)
_LANGUAGE_NAME = re.compile(r"^[\w+#.-]{1,40}$")

# Table cell alignment is a class (style.css: .align-left/center/right), never an inline style: the
# CSP (no 'unsafe-inline' styles) refuses a style attribute and the browser logs each refusal.
ALIGNMENTS = ("left", "center", "right")
# What markdown-it writes for an aligned cell: the only style attribute a render ever held (raw HTML is
# off, so a reply's own text reaches the HTML escaped and cannot match). For HTML stored before.
_ALIGN_STYLE = re.compile(r'<(t[hd]) style="text-align:(left|center|right)">')


class _OutOfTime(Exception):
    """The text took longer than its time limit to parse."""


def _code_block(code: str, info: str, deadline: float) -> str:
    """A code block with its copy button, highlighted when its language is one Pygments knows (and time allows)."""
    name = info.split()[0] if info.strip() else ""
    name = name if _LANGUAGE_NAME.match(name) else ""
    highlighted = name and len(code) <= HIGHLIGHT_MAX_CHARS and time.monotonic() < deadline
    try:
        body = highlight(code, get_lexer_by_name(name), _formatter) if highlighted else escape(code)
    except ClassNotFound:
        body = escape(code)  # an unknown language: plain, never guessed
    language_class = f' class="language-{escape(name)}"' if name else ""
    # The copy button (shown by copy.js) copies the <code> text; it is inert without the script.
    return (
        f'<div class="code-block"><button type="button" class="copy-button" data-copy="code">Copy</button>'
        f'<pre class="{CODE_CLASS}"><code{language_class}>{body}</code></pre></div>\n'
    )


def _safe_link(url: str) -> bool:
    """Only absolute http(s) and mailto links: no javascript:, data:, or relative URLs into the app."""
    try:
        return urlsplit(url.strip()).scheme.lower() in LINK_SCHEMES
    except ValueError:
        return False


def _build_parser() -> MarkdownIt:
    parser = MarkdownIt("commonmark", {"html": False})
    parser.enable(["table", "strikethrough"])
    # Images would load from other hosts (which the CSP refuses anyway): `![a](u)` stays a link.
    parser.disable("image")
    parser.validateLink = _safe_link

    def link_open(renderer, tokens, index, options, env):
        tokens[index].attrSet("rel", LINK_REL)
        return renderer.renderToken(tokens, index, options, env)

    def fence(renderer, tokens, index, options, env):
        return _code_block(tokens[index].content, tokens[index].info, env["deadline"])

    def code_block(renderer, tokens, index, options, env):
        return _code_block(tokens[index].content, "", env["deadline"])

    # Checked first at every inline position (the link rule's look-ahead runs the rules again, so
    # this is checked inside it too) and at every block line.
    def inline_deadline(state, silent):
        if time.monotonic() > state.env["deadline"]:
            raise _OutOfTime
        return False

    def block_deadline(state, start_line, end_line, silent):
        if time.monotonic() > state.env["deadline"]:
            raise _OutOfTime
        return False

    parser.inline.ruler.before(parser.inline.ruler.get_all_rules()[0], "deadline", inline_deadline)
    parser.block.ruler.before(
        parser.block.ruler.get_all_rules()[0],
        "deadline",
        block_deadline,
        {"alt": ["paragraph", "reference", "blockquote", "list"]},
    )

    def cell_open(renderer, tokens, index, options, env):
        token = tokens[index]
        style = token.attrs.pop("style", None)
        alignment = str(style).removeprefix("text-align:") if style else ""
        if alignment in ALIGNMENTS:
            token.attrJoin("class", f"align-{alignment}")
        return renderer.renderToken(tokens, index, options, env)

    parser.add_render_rule("link_open", link_open)
    parser.add_render_rule("th_open", cell_open)
    parser.add_render_rule("td_open", cell_open)
    parser.add_render_rule("fence", fence)
    parser.add_render_rule("code_block", code_block)
    return parser


_parser = _build_parser()


def render_reply(text: str, time_limit: float = RENDER_TIME_LIMIT) -> str:
    """The HTML of a finished reply's Markdown ``text`` (safe to insert: raw HTML is escaped), or the
    text escaped as one paragraph if it takes longer than ``time_limit`` seconds to parse."""
    try:
        return _parser.render(text, {"deadline": time.monotonic() + time_limit})
    except _OutOfTime:
        return plain_html(text)


def render_structured(text: str, schema: dict | None, time_limit: float = RENDER_TIME_LIMIT) -> str:
    """The HTML of a structured reply: a badge (valid against ``schema``, or its first error; or not
    JSON at all), then the JSON formatted, or the text as it came when it is not JSON."""
    try:
        value = json.loads(text)
    except ValueError as error:
        where = f" at line {error.lineno}, column {error.colno}" if isinstance(error, json.JSONDecodeError) else ""
        reason = escape(getattr(error, "msg", "not JSON"))
        badge = _badge(False, f"Not valid JSON: {reason}{where}.")
        return badge + plain_html(text)
    if schema is None:
        badge = _badge(True, "Valid JSON")
    else:
        problem = validate_instance(schema, value)
        badge = _badge(True, "Valid against the schema") if problem is None else _badge(False, escape(problem))
    return badge + _code_block(format_json(value), "json", time.monotonic() + time_limit)


def _badge(valid: bool, text: str) -> str:
    kind = "valid" if valid else "invalid"
    return f'<p class="badge badge-{kind} schema-badge">{text}</p>\n'


def tool_call_views(message) -> list[dict]:
    """What the page shows of each tool call of ``message``: name, id, arguments formatted, and whether
    they are valid against the tool's parameters as sent with the request (``error``: the first problem)."""
    chat = (message.request or {}).get("chat") or {}
    tools = chat.get("tools") if isinstance(chat.get("tools"), list) else None
    views = []
    for call in message.tool_calls:
        try:
            arguments = format_json(json.loads(call.arguments or "{}"))
        except ValueError:
            arguments = call.arguments
        error = check_arguments(tools, call.name, call.arguments) if tools is not None else None
        views.append(
            {"id": call.id, "name": call.name, "arguments": arguments, "error": error, "checked": tools is not None}
        )
    return views


def without_inline_styles(html: str) -> str:
    """Reply HTML rendered before alignment was a class, with its cells' alignment as classes."""
    return _ALIGN_STYLE.sub(r'<\1 class="align-\2">', html)


def plain_html(text: str) -> str:
    """``text`` escaped, as one paragraph with its line breaks."""
    return "<p>" + escape(text, quote=False).replace("\n", "<br>\n") + "</p>\n"


def pygments_css() -> str:
    """The stylesheet for highlighted code, light and dark (the text of static/pygments.css)."""

    def rules(style: str) -> list[str]:
        # Only the rules scoped to .highlight (get_style_defs adds global ``pre`` and line-number rules).
        formatter = HtmlFormatter(style=style)
        scope = f".{CODE_CLASS}"
        return formatter.get_background_style_defs(scope) + formatter.get_token_style_defs(scope)

    light = "\n".join(rules(LIGHT_STYLE))
    dark = "\n".join("  " + line for line in rules(DARK_STYLE))
    return (
        "/* Generated by prompt_tracker.domain.rendering.pygments_css() from Pygments styles "
        f"{LIGHT_STYLE!r} and {DARK_STYLE!r}; do not edit by hand. */\n"
        f"{light}\n@media (prefers-color-scheme: dark) {{\n{dark}\n}}\n"
    )
