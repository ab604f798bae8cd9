"""The baseline: a minimal Flask app on stock Flask-Session 0.8, the conversation kept INSIDE the session.

What the benchmark compares Prompt Tracker with. Everything is Flask-Session's defaults
(``SESSION_TYPE=redis``, msgpack serializer, ``SESSION_REFRESH_EACH_REQUEST``, eager load on every
request), so every request that carries the cookie reads the whole blob and writes it back.
To keep the comparison about storage, it shares with Prompt Tracker what is not storage: the
stylesheet (served from ``prompt_tracker/static``), the message filter, Flask-WTF's CSRF check and
the page window (the latest ``PAGE_WINDOW`` messages are rendered).

Run: ``gunicorn 'stock_app:create_app()'`` with ``bench/`` and the repository on PYTHONPATH and
``STOCK_SESSION_REDIS_URL`` naming the Redis database (default ``redis://127.0.0.1:6379/3``).
"""

import os
import secrets
import time
from pathlib import Path

import redis
from flask import Flask, redirect, render_template, request, session, url_for
from flask_session import Session
from flask_wtf.csrf import CSRFProtect

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/3"


def create_app(redis_url: str | None = None, debug: bool | None = None) -> Flask:
    """Build the baseline app on the Redis database ``redis_url`` (default: $STOCK_SESSION_REDIS_URL)."""
    app = Flask(__name__, static_folder=str(ROOT / "prompt_tracker" / "static"))
    app.config.update(
        SECRET_KEY=os.environ.get("STOCK_SECRET_KEY", "bench-only-not-secret"),
        SESSION_TYPE="redis",
        SESSION_REDIS=redis.Redis.from_url(redis_url or os.environ.get("STOCK_SESSION_REDIS_URL", DEFAULT_REDIS_URL)),
        PAGE_WINDOW=int(os.environ.get("PAGE_WINDOW", 200)),
        WTF_CSRF_TIME_LIMIT=None,  # as in Prompt Tracker: the token lives as long as the session
        # The bench runs both apps with DEBUG off (FLASK_DEBUG=0 for ours, STOCK_DEBUG=0 here).
        DEBUG=os.environ.get("STOCK_DEBUG", "0") == "1" if debug is None else debug,
    )
    Session(app)
    CSRFProtect(app)

    @app.get("/chat")
    def chat():
        messages = session.get("messages", [])
        return render_template("chat.html", total=len(messages), messages=messages[-app.config["PAGE_WINDOW"]:])

    @app.post("/send")
    def send():
        content = request.form.get("content", "").replace("\r\n", "\n")
        if not content.strip():
            return redirect(url_for("chat"), 303)
        # A user message and a pending reply, as Prompt Tracker appends; the whole list is rewritten.
        session.setdefault("messages", []).extend([
            new_message("user", content=content),
            new_message("assistant", status="pending", provider="echo", model="echo-1"),
        ])
        session.modified = True
        return redirect(url_for("chat"), 303)

    return app


def new_message(role: str, **fields) -> dict:
    """A message record as a plain dict (the fields Prompt Tracker's ``Message`` has when they are set)."""
    return {"id": secrets.token_hex(8), "role": role, "content": "", "status": "done", "created_at": time.time(), **fields}
