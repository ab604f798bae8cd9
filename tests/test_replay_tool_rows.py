"""Replay rows show each turn's tool calls (name, arguments, result) on both sides (issue 18)."""

import json
import re
from html import unescape

from .test_tool_results import TIME, WEATHER, answer


def column(page: str, side: str) -> str:
    """The HTML of the first row's ``side`` column ("replay-old" or "replay-new")."""
    return re.search(
        rf'<div class="turn-column {side}">(.*?)</div>\s*(?:<div class="turn-column|</div>)', page, re.S
    ).group(1)


def test_replay_rows_show_the_tool_calls_of_each_turn_beside_the_originals(app, playground):
    playground.save_settings(tools=json.dumps([WEATHER, TIME]))
    playground.send('/call get_weather {"city": "Paris"}')
    answer(playground, playground.messages(app)[-1].id, "call_echo_1_1", "18 °C")
    playground.send("thanks")  # a turn without tools: no steps
    data = {"provider": "echo", "model": "echo-2", "csrf_token": playground.token()}
    playground.client.post("/playground/replay", data=data)
    page = unescape(playground.client.get("/playground/replay").get_data(as_text=True))
    assert "Replay finished: 2 turns." in page

    old, new = column(page, "replay-old"), column(page, "replay-new")
    for html in (old, new):
        assert html.count('class="tool-call tool-step"') == 1
        assert '<code class="tool-name">get_weather</code>' in html
        assert '<pre class="tool-arguments"><code>{\n  "city": "Paris"\n}</code></pre>' in html
    assert "<code>18 °C</code>" in old  # answered by hand in the original
    assert '<code>{"temperature": 21}</code>' in new  # by the mock in the replay
    # Beside them the turn's last replies, and the difference that compares the calls too.
    assert "Tool result for call_echo_1_1: 18 °C" in old and "Tool result for call_echo_1_1: {" in new
    assert "[tool call] get_weather" in page
    second = page.split('id="turn-2"')[1]
    assert "tool-step" not in second

    # The rows' own fragment (what the page's script fetches) shows them too.
    rows = unescape(playground.client.get("/playground/replay/rows").get_data(as_text=True))
    assert rows.count('class="tool-call tool-step"') == 2
