"""Render time of the Replay page: 100 turns, each an old and a new reply of about 350 words, diffed per turn.

The diffs are computed when the page is rendered (and kept per process, so the page fetched again
at every event of a running replay diffs each pair once). In-process, on the test config (fakeredis);
prints the median of the first render (no cached diffs) and of renders after it.
``--vocabulary small`` draws the words from 14 only, the matcher's worst case.

    .venv/bin/python bench/replay_page.py [--turns 100] [--words 350] [--vocabulary readme|small]
"""

import argparse
import random
import re
import sys
import time
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prompt_tracker import create_app  # noqa: E402
from prompt_tracker.domain.messages import Message, new_message_id, user_message  # noqa: E402
from prompt_tracker.domain.rendering import render_reply  # noqa: E402
from prompt_tracker.domain.text_diff import word_diff  # noqa: E402
from prompt_tracker.extensions import services  # noqa: E402

SMALL = "the a model prompt reply token stream answer question system user cost latency window".split()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=100)
    parser.add_argument("--words", type=int, default=350)
    parser.add_argument("--vocabulary", choices=("readme", "small"), default="readme")
    parser.add_argument("--requests", type=int, default=5)
    args = parser.parse_args()
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text().lower()
    words = SMALL if args.vocabulary == "small" else sorted(set(re.findall(r"[a-z]+", readme)))
    random.seed(1)

    app = create_app("test")
    client = app.test_client()
    client.get("/playground")
    original, replayed = [], []
    for number in range(args.turns):
        text = " ".join(random.choice(words) for _ in range(args.words))
        new_text = text.replace(" the ", " that ", 3).replace("model", "engine")
        user = user_message(f"question {number}")
        old, new = (
            Message(
                id=new_message_id(),
                role="assistant",
                content=content,
                html=render_reply(content),
                provider="echo",
                model="echo-1",
                created_at=time.time(),
            )
            for content in (text, new_text)
        )
        original += [user, old]
        replayed += [user, new]
    with client.session_transaction() as session:
        session["replays"] = {
            "standalone": {"choice": {"provider": "echo", "model": "echo-1"}, "until": original[-2].id}
        }
        session["conversations"] = {"standalone": 1, "standalone~replay": 1}
        sid = session.sid
    with app.app_context():
        from prompt_tracker.domain.keys import store_id

        services.conversations.append(store_id(sid), "standalone", *original)
        services.conversations.append(store_id(sid), "standalone~replay", *replayed)

    first, again = [], []
    for _ in range(args.requests):
        word_diff.cache_clear()
        started = time.perf_counter()
        response = client.get("/playground/replay")
        first.append(time.perf_counter() - started)
        started = time.perf_counter()
        client.get("/playground/replay")
        again.append(time.perf_counter() - started)
    assert response.status_code == 200 and response.get_data(as_text=True).count('class="word-diff-box"') == args.turns
    print(
        f"{args.turns} turns x {args.words} words ({len(words)} distinct): page {len(response.data) // 1024} KiB, "
        f"first render {median(first) * 1000:.0f} ms, again {median(again) * 1000:.0f} ms (medians of {args.requests})"
    )


if __name__ == "__main__":
    main()
