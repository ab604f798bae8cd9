"""Replies as Markdown, rendered once at finish: CommonMark + tables + strikethrough, safe links, Pygments."""

import gc
import time
from pathlib import Path

import pytest

from prompt_tracker.domain.rendering import RENDER_TIME_LIMIT, pygments_css, render_reply, without_inline_styles

STATIC = Path(__file__).resolve().parent.parent / "prompt_tracker" / "static"


def test_markdown_tables_and_strikethrough():
    html = render_reply("# Title\n\n**bold** ~~gone~~\n\n- one\n- two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")
    assert "<h1>Title</h1>" in html
    assert "<strong>bold</strong> <s>gone</s>" in html
    assert "<ul>\n<li>one</li>\n<li>two</li>\n</ul>" in html
    assert "<table>" in html and "<th>a</th>" in html and "<td>2</td>" in html


def test_table_columns_are_aligned_by_class_never_by_an_inline_style():
    """The CSP refuses style attributes (a console error per cell, the alignment lost): classes instead."""
    html = render_reply("| l | c | r | - |\n|:--|:-:|--:|---|\n| 1 | 2 | 3 | 4 |\n")
    assert "style=" not in html
    assert (
        '<th class="align-left">l</th>\n<th class="align-center">c</th>\n<th class="align-right">r</th>\n<th>-</th>'
        in html
    )
    assert '<td class="align-right">3</td>\n<td>4</td>' in html
    css = (STATIC / "style.css").read_text()
    assert all(f".markdown .align-{side} {{ text-align: {side}; }}" in css for side in ("left", "center", "right"))
    # HTML stored before (markdown-it's inline style) reads the same as new; a reply's own text cannot
    # match: raw HTML is escaped.
    assert without_inline_styles(html.replace('class="align-right"', 'style="text-align:right"')) == html
    typed = render_reply('<td style="text-align:right">x</td>')
    assert without_inline_styles(typed) == typed


def test_raw_html_is_escaped():
    html = render_reply('<script>alert(1)</script>\n\nhi <img src=x onerror="alert(1)">')
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


@pytest.mark.parametrize(
    "link, kept",
    [
        ("[a](https://example.org/x)", True),
        ("[a](http://example.org/x)", True),
        ("[a](mailto:someone@example.org)", True),
        ("<https://example.org/auto>", True),
        ("[a](javascript:alert(1))", False),
        ("[a](JAVASCRIPT:alert(1))", False),
        ("[a](data:text/html,hi)", False),
        ("[a](/playground/reset)", False),
        ("[a](vbscript:x)", False),
    ],
)
def test_only_http_https_and_mailto_links(link, kept):
    html = render_reply(link)
    assert ("<a " in html) is kept
    if kept:
        assert 'rel="noopener noreferrer"' in html


def test_images_stay_links():
    html = render_reply("![chart](https://example.org/chart.png)")
    assert "<img" not in html
    assert '<a href="https://example.org/chart.png" rel="noopener noreferrer">chart</a>' in html


def test_code_is_highlighted_with_classes_and_a_copy_button():
    html = render_reply("```python\nif a < b:\n    print('x')\n```\n")
    assert '<pre class="highlight"><code class="language-python">' in html
    assert '<span class="k">if</span>' in html and "&lt;" in html
    assert 'class="copy-button" data-copy="code"' in html
    assert "style=" not in html  # the CSP forbids inline styles


def test_unknown_or_hostile_languages_are_plain_code():
    html = render_reply('```nosuchlanguage\nx < y\n```\n\n```"><img src=x>\nz\n```\n')
    assert '<code class="language-nosuchlanguage">x &lt; y\n</code>' in html
    assert "<img" not in html and "<code>z\n</code>" in html


def test_indented_code_gets_a_copy_button_too():
    assert 'data-copy="code"' in render_reply("text\n\n    code here\n")


def test_committed_pygments_stylesheet_matches_the_generator():
    # Regenerate with: python -c "from prompt_tracker.domain.rendering import pygments_css; print(pygments_css(), end='')" > prompt_tracker/static/pygments.css
    css = (STATIC / "pygments.css").read_text()
    assert css == pygments_css()
    assert "@media (prefers-color-scheme: dark)" in css and ".highlight .k" in css


def test_a_finished_reply_stores_its_html_and_the_page_shows_it(app, playground):
    playground.send("**bold** and `code` <b>raw</b>")
    user, reply = playground.messages(app)
    assert user.html is None  # user text is never rendered
    assert reply.status == "done"
    assert reply.html == render_reply(reply.content)
    assert "<strong>bold</strong>" in reply.html and "&lt;b&gt;raw&lt;/b&gt;" in reply.html
    page = playground.page().get_data(as_text=True)
    assert '<div class="body markdown"><p>You said: <strong>bold</strong>' in page
    # the user's own text is shown as typed, escaped, never as Markdown
    assert '<div class="body plain">**bold** and `code` &lt;b&gt;raw&lt;/b&gt;</div>' in page
    assert "copy.js" in page and "pygments.css" in page


# Each 20,000 characters (MAX_MESSAGE_CHARS): markdown-it-py spends 1-3 s on some of them unbounded.
PATHOLOGICAL = {
    "nested quotes": ">" * 19_998 + " x",
    "a quote per line, deeper each time": "\n".join(">" * depth + " x" for depth in range(190)),
    "open brackets": "[" * 20_000,
    "open image brackets": "![" * 10_000,
    "unclosed links": "[a](" * 5_000,
    "brackets then parentheses": "[" * 10_000 + "](" * 5_000,
    "emphasis runs": "a**" * 6_666,
    "mixed emphasis": "*_" * 10_000,
    "a huge code block": "```python\n" + 'x = f(1, "a")  # c\n' * 1_050,
}


# The bound is the parser's CPU time. A full collection of the garbage collector is not: in a full run
# (a heap of hundreds of tests) one landing inside the call once took 2 s of CPU, so none may run in it.
@pytest.mark.parametrize("text", PATHOLOGICAL.values(), ids=PATHOLOGICAL.keys())
def test_pathological_markdown_renders_in_bounded_time(text):
    assert len(text) <= 20_000
    gc.disable()
    try:
        started = time.thread_time()  # CPU time: other processes on a busy machine do not count
        html = render_reply(text)
        spent = time.thread_time() - started
    finally:
        gc.enable()
    assert spent < RENDER_TIME_LIMIT + 0.3
    assert "<script" not in html and html.strip()


def test_markdown_past_its_time_is_shown_as_escaped_text():
    html = render_reply("**[x](http://a.example)** <b>" + "[" * 20_000, time_limit=0.001)
    assert html.startswith("<p>") and "<strong>" not in html and "<a " not in html
    assert "**[x](http://a.example)** &lt;b&gt;" + "[" * 20_000 in html
