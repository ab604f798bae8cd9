"""The baseline: a minimal Flask app on stock Flask-Session 0.8, the conversation kept INSIDE the session.

What the benchmark compares Prompt Tracker with. Everything is Flask-Session's defaults
(``SESSION_TYPE=redis``, msgpack serializer, ``SESSION_REFRESH_EACH_REQUEST``, eager load on every
request), so every request that carries the cookie reads the whole blob and writes it back.
To keep the comparison about storage, it renders Prompt Tracker's own page template
(``playground/index.html``, with the same context and the same stylesheets), with Flask-WTF's CSRF
and the same page window (the latest ``PAGE_WINDOW`` messages, cut to ``PAGE_WINDOW_BYTES``). Two
things differ: where the conversation is kept, and how a message's HTML is made: here the page's
macro renders each message on every view, as a stock app does; Prompt Tracker renders it once,
when the message is stored, and joins the stored HTML. The endpoints the template links to exist
under the same names; only the page and send do anything.

Run: ``gunicorn 'stock_app:create_app()'`` with ``bench/`` and the repository on PYTHONPATH and
``STOCK_SESSION_REDIS_URL`` naming the Redis database (default ``redis://127.0.0.1:6379/3``).
"""

import os
import secrets
import time
from pathlib import Path

import jinja2
import msgspec
import redis
from flask import Blueprint, Flask, abort, current_app, redirect, render_template, request, session, url_for
from flask_session import Session
from flask_wtf.csrf import CSRFProtect
from markupsafe import Markup

from config import Config
from prompt_tracker.domain.messages import Message, encode_message
from prompt_tracker.domain.pricing import context_window
from prompt_tracker.domain.settings import (
    MAX_MODEL_CHARS,
    MAX_TOKENS_RANGE,
    STANDALONE,
    TEMPERATURE_RANGE,
    PlaygroundSettings,
    settings_version,
)
from prompt_tracker.prompts.settings import variables_panel
from prompt_tracker.providers import available_providers
from prompt_tracker.store.conversations import Window
from prompt_tracker.web.playground.forms import MessageForm, SettingsForm

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PACKAGE = ROOT / "prompt_tracker"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/3"
_messages = msgspec.convert  # the window's dicts become the same Message records our page renders


def create_app(redis_url: str | None = None, debug: bool | None = None) -> Flask:
    """Build the baseline app on the Redis database ``redis_url`` (default: $STOCK_SESSION_REDIS_URL)."""
    app = Flask(__name__, static_folder=str(PACKAGE / "static"))
    app.jinja_loader = jinja2.FileSystemLoader(
        [str(PACKAGE / area / "templates") for area in (".", "web/playground", "web/prompts")]
        + [str(BENCH / "templates")]
    )
    # Our settings (limits, page window, sign-in mode...) so the shared template finds what it reads;
    # the session settings below are stock Flask-Session's.
    app.config.from_object(Config)
    app.config.update(
        SESSION_KEY_PREFIX="session:",
        SESSION_COOKIE_NAME="session",
        SECRET_KEY=os.environ.get("STOCK_SECRET_KEY", "bench-only-not-secret"),
        SESSION_TYPE="redis",
        SESSION_REDIS=redis.Redis.from_url(redis_url or os.environ.get("STOCK_SESSION_REDIS_URL", DEFAULT_REDIS_URL)),
        PAGE_WINDOW=int(os.environ.get("PAGE_WINDOW", Config.PAGE_WINDOW)),
        PAGE_WINDOW_BYTES=int(os.environ.get("PAGE_WINDOW_BYTES", Config.PAGE_WINDOW_BYTES)),
        MAX_MESSAGE_CHARS=20_000,
        MAX_SYSTEM_PROMPT_CHARS=20_000,
        WTF_CSRF_TIME_LIMIT=None,  # as in Prompt Tracker: the token lives as long as the session
        # The bench runs both apps with DEBUG off (FLASK_DEBUG=0 for ours, STOCK_DEBUG=0 here).
        DEBUG=os.environ.get("STOCK_DEBUG", "0") == "1" if debug is None else debug,
    )
    app.jinja_env.trim_blocks = app.jinja_env.lstrip_blocks = True  # as ours: the same page, byte for byte
    app.add_template_global(context_window)
    app.add_template_global(variables_panel)
    Session(app)
    CSRFProtect(app)
    app.register_blueprint(bp)
    app.register_blueprint(prompts_bp)
    mirror_links(app)
    return app


def mirror_links(app: Flask) -> None:
    """Give every other endpoint of Prompt Tracker's pages a stub here, and its template globals, so
    the shared template renders as the page grows (the benchmark requests only the page and send)."""
    from prompt_tracker import create_app as create_ours

    ours = create_ours("test")
    for rule in ours.url_map.iter_rules():
        if rule.endpoint != "static" and rule.endpoint not in app.view_functions:
            app.add_url_rule(rule.rule, rule.endpoint, not_in_the_baseline, methods=rule.methods)
    for name, value in ours.jinja_env.globals.items():
        app.jinja_env.globals.setdefault(name, value)


bp = Blueprint("playground", __name__)
prompts_bp = Blueprint("prompts", __name__, url_prefix="/prompts")  # the page's header links to it


@bp.get("/chat")
def index():
    stored = session.get("messages", [])
    limit = current_app.config["PAGE_WINDOW"]
    shown = within_bytes(_messages(stored[-limit:], list[Message]), current_app.config["PAGE_WINDOW_BYTES"])
    window = Window(messages=shown, start=len(stored) - len(shown), total=len(stored))
    settings = PlaygroundSettings()
    return render_template(
        "playground/index.html",
        window=window,
        messages=window.messages,
        # Stock renders each message with the page's macro (ours joins the HTML stored on its records).
        messages_html=Markup(
            render_template(
                "stock_messages.html",
                messages=window.messages,
                stale_ids=set(),
                settings_version=settings_version(settings),
            )
        ),
        settings=settings,
        settings_form=SettingsForm(formdata=None, data=msgspec.to_builtins(settings)),
        message_form=MessageForm(formdata=None),
        waiting=any(m.is_open for m in window.messages),
        refresh_url=url_for(
            ".index", t=time.monotonic_ns(), _anchor=f"m-{window.messages[-1].id}" if window.messages else None
        ),
        providers=available_providers(),
        limits={"temperature": TEMPERATURE_RANGE, "max_tokens": MAX_TOKENS_RANGE, "model_chars": MAX_MODEL_CHARS},
        lifetime_hours=24,
        playground=STANDALONE,
        settings_digest=settings_version(settings),
        settings_version=settings_version(settings),
    )


@bp.post("/send")
def send():
    content = request.form.get("content", "").replace("\r\n", "\n")
    if not content.strip():
        return redirect(url_for(".index"), 303)
    # A user message and a pending reply, as Prompt Tracker appends; the whole list is rewritten.
    session.setdefault("messages", []).extend(
        [
            new_message("user", content=content),
            new_message("assistant", status="pending", provider="echo", model="echo-1"),
        ]
    )
    session.modified = True
    return redirect(url_for(".index"), 303)


def not_in_the_baseline(**_):
    abort(404)


def within_bytes(messages: list[Message], budget: int) -> list[Message]:
    """The newest messages whose records add up to ``budget`` bytes (the newest always): the page
    window our store's Lua script cuts, so that both apps render the same page."""
    if not budget or len(messages) < 2:
        return messages
    first, used = len(messages) - 1, len(encode_message(messages[-1]))
    while first > 0 and used + len(encode_message(messages[first - 1])) <= budget:
        first -= 1
        used += len(encode_message(messages[first]))
    return messages[first:]


def new_message(role: str, **fields) -> dict:
    """A message record as a plain dict (the fields Prompt Tracker's ``Message`` has when they are set)."""
    return {
        "id": secrets.token_hex(8),
        "role": role,
        "content": "",
        "status": "done",
        "created_at": time.time(),
        **fields,
    }
