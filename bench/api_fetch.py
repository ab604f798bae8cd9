"""Read API latency in-process: p50 and p99 of 1,000 fetches of a prompt by label through Flask's test client.

The test config's app (in-memory SQLite unless ``--database-url``), one user and token, ``--prompts``
prompts of ``--versions`` versions each, ``production`` on the one before the latest. Each request is a whole request through the app (token check,
rate limit, query, JSON, ETag, headers, request log off); it prints the percentiles per kind of request:
a fetch by label, a revalidation with ``If-None-Match`` (304), a fetch by version number, and a render; and
the floor, a request refused before any query.

    .venv/bin/python bench/api_fetch.py [--requests 1000] [--database-url postgresql://...]
"""

import argparse
import logging
import sys
import time
from pathlib import Path
from statistics import quantiles

sys.path[:0] = [str(Path(__file__).resolve().parent.parent)]

from prompt_tracker import create_app  # noqa: E402
from prompt_tracker.auth.accounts import create_user  # noqa: E402
from prompt_tracker.auth.tokens import create_token  # noqa: E402
from prompt_tracker.extensions import db  # noqa: E402
from prompt_tracker.prompts.labels import move_label  # noqa: E402
from prompt_tracker.prompts.library import create_prompt, save_version  # noqa: E402


def percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p99 of ``samples`` (seconds), in milliseconds."""
    cuts = quantiles(samples, n=100, method="inclusive")
    return cuts[49] * 1000, cuts[98] * 1000


def timed(call, requests: int) -> tuple[list[float], list[str]]:
    """The time of each of ``requests`` calls, and the errors of those that did not answer 200 or 304."""
    samples, errors = [], []
    for _ in range(requests):
        started = time.perf_counter()
        response = call()
        samples.append(time.perf_counter() - started)
        if response.status_code not in (200, 304, 401):
            errors.append(f"{response.status_code} {response.get_data(as_text=True)}")
    return samples, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--prompts", type=int, default=50)
    parser.add_argument("--versions", type=int, default=20)
    parser.add_argument("--database-url", default="sqlite://")
    options = parser.parse_args()

    app = create_app(
        "test",
        overrides={
            "AUTH_MODE": "accounts",
            "SQLALCHEMY_DATABASE_URI": options.database_url,
            "RATE_LIMIT_API": "1000000/minute",
            "LOG_REQUESTS": False,
        },
    )
    logging.getLogger("prompt_tracker").setLevel(logging.WARNING)
    with app.app_context():
        db.create_all()
        token = create_token(create_user("bench@example.com", "x" * 12), "bench").token
        for number in range(options.prompts):
            prompt = create_prompt(f"Prompt {number}", "You help {{ customer }} with {{ topic }}.", slug=f"p{number}")
            for version in range(2, options.versions + 1):
                save_version(
                    prompt.id,
                    system_prompt=f"Version {version}: you help {{{{ customer }}}} with {{{{ topic }}}}. " * 20,
                    provider="openai",
                    model="gpt-4o-mini",
                    params={"temperature": 0.2, "max_tokens": 500},
                    variables={"topic": "billing"},
                )
            move_label(prompt, "production", options.versions - 1, "bench", admin=True)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    slug = f"p{options.prompts // 2}"
    etag = client.get(f"/api/v1/prompts/{slug}?label=latest", headers=headers).headers["ETag"]
    cases = {
        # The floor: the same request refused before any query (no token: the limiter, the hooks, a JSON 401).
        "GET without a token (401, no query)": lambda: client.get(f"/api/v1/prompts/{slug}"),
        "GET ?label=latest (200)": lambda: client.get(f"/api/v1/prompts/{slug}?label=latest", headers=headers),
        "GET ?label=production (200)": lambda: client.get(f"/api/v1/prompts/{slug}?label=production", headers=headers),
        "GET ?label=latest, If-None-Match (304)": lambda: client.get(
            f"/api/v1/prompts/{slug}?label=latest", headers={**headers, "If-None-Match": etag}
        ),
        "GET ?version=3 (200)": lambda: client.get(f"/api/v1/prompts/{slug}?version=3", headers=headers),
        "POST render (200)": lambda: client.post(
            f"/api/v1/prompts/{slug}/render",
            json={"label": "latest", "variables": {"customer": "Ann"}, "messages": [{"role": "user", "content": "Hi"}]},
            headers=headers,
        ),
    }
    timed(cases["GET ?label=latest (200)"], 50)  # warm up: compiled queries, templates, connections
    database = options.database_url.split(":", 1)[0]
    print(f"{options.requests} requests each, {options.prompts} prompts × {options.versions} versions, {database}")
    for name, call in cases.items():
        samples, errors = timed(call, options.requests)
        p50, p99 = percentiles(samples)
        failed = f"   {len(errors)} errors, e.g. {errors[0]}" if errors else ""
        print(f"{name:42} p50 {p50:6.2f} ms   p99 {p99:6.2f} ms{failed}")


if __name__ == "__main__":
    main()
