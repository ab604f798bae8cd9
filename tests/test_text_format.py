"""Message text to HTML: escaped, line breaks kept, ``` fences as code blocks."""

from prompt_tracker.text_format import message_html


def test_text_is_escaped():
    assert message_html("<script>alert(1)</script> & co") == (
        '<span class="prose">&lt;script&gt;alert(1)&lt;/script&gt; &amp; co</span>'
    )


def test_fenced_code_becomes_a_code_block_without_extra_blank_lines():
    html = message_html("Look:\n```python\nif a < b:\n    pass\n```\nDone.")
    assert html == (
        '<span class="prose">Look:</span>'
        '<pre><code data-lang="python">if a &lt; b:\n    pass</code></pre>'
        '<span class="prose">Done.</span>'
    )


def test_an_unclosed_fence_runs_to_the_end_and_language_is_escaped():
    html = message_html('```"><img>\ncode')
    assert "<img>" not in html
    assert html == '<pre><code data-lang="">&#34;&gt;&lt;img&gt;\ncode</code></pre>'
