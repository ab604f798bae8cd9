"""Turn message text into safe HTML: everything escaped, ``` fences as code blocks."""

import re

from markupsafe import Markup, escape

_FENCE = re.compile(r"```([\w+-]*)\n?(.*?)(?:```\n?|$)", re.DOTALL)  # the newline after a fence belongs to it


def message_html(text: str) -> Markup:
    """Escape ``text``, keeping line breaks (by CSS) and rendering ``` fenced blocks as <pre><code>."""
    pieces = []
    position = 0
    for match in _FENCE.finditer(text):
        # Line breaks next to a fence are the fence's: <pre> is a block already.
        pieces.append(f'<span class="prose">{escape(text[position:match.start()].removesuffix(chr(10)))}</span>')
        language = escape(match.group(1))
        pieces.append(f'<pre><code data-lang="{language}">{escape(match.group(2).removesuffix(chr(10)))}</code></pre>')
        position = match.end()
    pieces.append(f'<span class="prose">{escape(text[position:])}</span>')
    return Markup("".join(piece for piece in pieces if piece != '<span class="prose"></span>'))
