"""The benchmark's baseline (bench/stock_app.py) must keep rendering our page as the page grows:
the same template, the same messages, byte for byte but for URLs, ids and tokens. Otherwise the
same-template ratios in README would compare our page with an error page or an empty one."""

import re
import sys

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.integration

VARYING = [
    re.compile(r'(href|action|formaction|data-[a-z-]*url)="[^"]*"'),
    re.compile(r'value="[^"]*"'),
    re.compile(r"[0-9a-f]{16,}"),
]


def normalised(html: str) -> str:
    for pattern in VARYING:
        html = pattern.sub("…", html)
    return html


def test_the_stock_app_renders_the_same_page_as_ours(redis_server, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    from subjects import SUBJECTS, new_session, redis_urls

    # build_ours sets these in os.environ: set them here first, so the test's end restores them.
    for name, value in redis_urls(redis_server).items():
        monkeypatch.setenv(name, value)
    for name in ("PROMPT_TRACKER_ENV", "FLASK_DEBUG", "STOCK_DEBUG", "MAX_CONVERSATION_MESSAGES", "RATE_LIMIT_SENDS"):
        monkeypatch.setenv(name, "")
    pages = {}
    for subject in SUBJECTS:
        app = subject.build(redis_server)
        seeded = new_session(subject, app, 200)  # 2 KB each: the page shows the newest that fit its bytes
        answer = seeded.client.get(subject.page_path)
        assert answer.status_code == 200, subject.name
        pages[subject.name] = answer.get_data(as_text=True)
    shown = pages["ours"].count('class="message message-')
    assert 20 < shown < 200 and pages["stock"].count('class="message message-') == shown
    assert normalised(pages["ours"]) == normalised(pages["stock"])
    sys.modules.pop("subjects", None)
