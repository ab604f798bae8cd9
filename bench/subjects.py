"""The two apps under test, described the same way so that every measurement runs on both unchanged.

- ``OURS``: Prompt Tracker (``wsgi:app``, development config): a small session blob in DB 2 and
  the conversation as a Redis list beside it.
- ``STOCK``: ``stock_app`` (stock Flask-Session 0.8) in DB 3: the conversation inside the blob.

Both get the same conversation (the same ``Message`` records; the stock app stores them as dicts),
and a session is always created the way a browser creates one: a first page view (which also
issues the CSRF token), then the messages are written through each app's own code.
"""

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec
import stock_app
from flask import Flask
from flask.testing import FlaskClient

from prompt_tracker import create_app
from prompt_tracker.domain.messages import Message, Usage, new_message_id
from prompt_tracker.domain.settings import STANDALONE
from prompt_tracker.extensions import services
from tests.redis_server import RedisServer

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
COUNT_RE = re.compile(r'data-count="(\d+)"')
MESSAGE_CHARS = 2000  # "2 KB messages"
APPEND_CHUNK = 100  # messages per append call when seeding our lists
SESSIONS_DB, JOBS_DB, SOCKETIO_DB, STOCK_DB = 2, 0, 1, 3


def conversation(count: int) -> list[Message]:
    """``count`` messages of about 2 KB, user and finished assistant turns alternating."""
    now = time.time()
    messages = []
    for index in range(count):
        text = f"message {index}: " + "lorem ipsum dolor sit amet " * (MESSAGE_CHARS // 27)
        if index % 2 == 0:
            messages.append(Message(id=new_message_id(), role="user", content=text, created_at=now))
        else:
            messages.append(
                Message(
                    id=new_message_id(),
                    role="assistant",
                    content=text,
                    provider="echo",
                    model="echo-1",
                    params={"temperature": 0.7, "max_tokens": 1024},
                    usage=Usage(input_tokens=500, output_tokens=500),
                    latency_ms=420,
                    created_at=now,
                    finished_at=now,
                )
            )
    return messages


def redis_urls(server: RedisServer) -> dict[str, str]:
    """Every Redis URL either app reads from its environment, all on the private server."""
    return {
        "SESSION_REDIS_URL": server.url(SESSIONS_DB),
        "RQ_REDIS_URL": server.url(JOBS_DB),
        "SOCKETIO_MESSAGE_QUEUE": server.url(SOCKETIO_DB),
        "STOCK_SESSION_REDIS_URL": server.url(STOCK_DB),
    }


# Both apps, in-process and under gunicorn. A benchmark sends faster than a person may, and no worker
# writes the replies: every send leaves one open, so the per-session cap (MAX_OPEN_REPLIES, 3) and
# the send rate are set out of the way, as tests/conftest.py's service_env does for load tests.
BENCH_SETTINGS = dict(
    PROMPT_TRACKER_ENV="development",
    FLASK_DEBUG="0",
    STOCK_DEBUG="0",
    MAX_CONVERSATION_MESSAGES="100000",
    MAX_OPEN_REPLIES="1000000",
    RATE_LIMIT_SENDS="1000000/minute",
)


def server_env(server: RedisServer) -> dict:
    """Environment for both apps' server processes."""
    return dict(
        os.environ,
        **BENCH_SETTINGS,
        PYTHONPATH=os.pathsep.join([str(ROOT), str(BENCH)]),
        **redis_urls(server),
    )


def build_ours(server: RedisServer) -> Flask:
    """Prompt Tracker in this process, configured from the environment exactly as its gunicorn workers are.

    Refuses to go on if the app would use another Redis (an ``instance/config.py`` that sets a URL
    wins over the environment): the benchmark must never touch a developer's Redis.
    """
    os.environ.update(**BENCH_SETTINGS, **redis_urls(server))
    app = create_app()
    elsewhere = [name for name, url in redis_urls(server).items() if name in app.config and app.config[name] != url]
    if elsewhere:
        raise RuntimeError(
            f"{', '.join(elsewhere)} from instance/config.py would point the app away from the "
            "benchmark's private Redis; move instance/config.py aside to run the benchmark."
        )
    return app


def build_stock(server: RedisServer) -> Flask:
    """The stock Flask-Session app in this process, on the private server."""
    return stock_app.create_app(server.url(STOCK_DB))


def store_in_lists(app: Flask, client: FlaskClient, messages: list[Message]) -> None:
    """Ours: register the playground in the session, then append to its list with the ConversationStore."""
    with client.session_transaction() as session:
        session.add_playground(STANDALONE)
        store = session.store_id
    with app.app_context():
        for first in range(0, len(messages), APPEND_CHUNK):
            services.conversations.append(store, STANDALONE, *messages[first : first + APPEND_CHUNK])


def store_in_session(app: Flask, client: FlaskClient, messages: list[Message]) -> None:
    """Stock: put the whole conversation into session["messages"], saved by Flask-Session's interface."""
    with client.session_transaction() as session:
        session["messages"] = [msgspec.to_builtins(message) for message in messages]


@dataclass(frozen=True)
class Subject:
    """One app under test: its URLs, how to run it, how to write a conversation into a session."""

    name: str
    description: str
    page_path: str
    send_path: str
    static_path: str
    missing_path: str
    cookie_name: str
    gunicorn_target: str
    build: Callable[[RedisServer], Flask]
    store_messages: Callable[[Flask, FlaskClient, list[Message]], None]
    redis_db: int


OURS = Subject(
    name="ours",
    description="Prompt Tracker (blob + conversation list)",
    page_path="/playground",
    send_path="/playground/messages",
    static_path="/static/style.css",
    missing_path="/no-such-page",
    cookie_name="_prompt_tracker_session",
    gunicorn_target="wsgi:app",
    build=build_ours,
    store_messages=store_in_lists,
    redis_db=SESSIONS_DB,
)

STOCK = Subject(
    name="stock",
    description="stock Flask-Session 0.8 (conversation in the blob)",
    page_path="/chat",
    send_path="/send",
    static_path="/static/style.css",
    missing_path="/no-such-page",
    cookie_name="session",
    gunicorn_target="stock_app:create_app()",
    build=build_stock,
    store_messages=store_in_session,
    redis_db=STOCK_DB,
)

SUBJECTS = (OURS, STOCK)


@dataclass
class SeededSession:
    """A session holding a known number of messages, and the test client that carries its cookie."""

    client: FlaskClient
    cookie_name: str
    sid: str
    csrf_token: str

    @property
    def cookie_header(self) -> str:
        """The Cookie header a browser would send."""
        return f"{self.cookie_name}={self.sid}"


def new_session(subject: Subject, app: Flask, messages: int) -> SeededSession:
    """Create a session as a browser does (first page view), then write ``messages`` messages into it."""
    client = app.test_client()
    page = client.get(subject.page_path)
    if page.status_code != 200:
        raise RuntimeError(f"{subject.name}: GET {subject.page_path} answered {page.status_code}")
    token = CSRF_RE.search(page.get_data(as_text=True)).group(1)
    subject.store_messages(app, client, conversation(messages))
    sid = client.get_cookie(subject.cookie_name).value
    return SeededSession(client, subject.cookie_name, sid, token)


def shown_count(html: str) -> int | None:
    """The message count a page shows in its header (``data-count``), or None."""
    match = COUNT_RE.search(html)
    return int(match.group(1)) if match else None
