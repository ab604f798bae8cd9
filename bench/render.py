"""Page render time of a 200-message conversation of Markdown-heavy replies vs the same text as plain.

Replies are rendered once when they finish (their HTML is stored), so a page view only copies the
stored HTML: this checks that the page does not pay for Markdown. In-process (Flask's test client),
one private redis-server; prints the median of ``--requests`` page views for each, and the ratio.

    .venv/bin/python bench/render.py [--messages 200] [--requests 60]
"""

import argparse
import sys
import time
from pathlib import Path
from statistics import median

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent), str(BENCH)]

from subjects import OURS, conversation, new_session  # noqa: E402

from prompt_tracker.domain.rendering import render_reply  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402

REPLY = """Here is a **summary** of the options, with ~~old~~ *new* figures:

| option | latency | cost |
| --- | ---: | ---: |
| small | 0.4 s | $0.0001 |
| large | 1.7 s | $0.0030 |

1. Read the `config` first.
2. Then run:

```python
def total(prices: list[float]) -> float:
    \"\"\"Sum the prices, rounded to cents.\"\"\"
    return round(sum(price for price in prices if price > 0), 2)
```

- a [link](https://example.org/docs) and some `inline code`
- > a quoted line

```bash
curl -s https://example.org/api | jq '.items[] | {id, name}'
```
"""


def markdown_conversation(count: int, rendered: bool) -> list:
    """``count`` messages; replies are Markdown-heavy, with their stored HTML when ``rendered``."""
    html = render_reply(REPLY)
    messages = conversation(count)
    for message in messages:
        if message.role == "assistant":
            message.content = REPLY
            message.html = html if rendered else None
    return messages


def page_times(app, conversations: list, requests: int) -> list[float]:
    """Median milliseconds of a page view of each conversation (views interleaved, so drift hits all alike)."""
    clients = []
    for messages in conversations:
        seeded = new_session(OURS, app, 0)
        OURS.store_messages(app, seeded.client, messages)
        clients.append(seeded.client)
    times = [[] for _ in clients]
    for _ in range(requests + 5):
        for client, client_times in zip(clients, times):
            started = time.perf_counter()
            response = client.get(OURS.page_path)
            client_times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200
    return [median(client_times[5:]) for client_times in times]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--requests", type=int, default=60)
    args = parser.parse_args(argv)
    server = RedisServer().start()
    try:
        app = OURS.build(server)
        plain, markdown = page_times(
            app,
            [markdown_conversation(args.messages, rendered=False), markdown_conversation(args.messages, rendered=True)],
            args.requests,
        )
    finally:
        server.stop()
    print(f"{args.messages} messages, page render (median of {args.requests}, in-process):")
    print(f"  plain text   {plain:7.2f} ms")
    print(f"  Markdown     {markdown:7.2f} ms   ratio {markdown / plain:.2f}x (target <= 1.2x)")


if __name__ == "__main__":
    main()
