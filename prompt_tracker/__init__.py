"""Prompt Tracker: a prompt playground whose conversations live server-side, in Redis.

This module is the composition root: ``create_app`` binds every layer's parts to one app. Importing
a blueprint's package registers its views and Socket.IO handlers, so they are all declared (here,
at import) before ``socketio.init_app`` builds the server, or a second app (tests build many)
would not get them.
"""

import os

import socketio as socketio_module
from flask import Flask, redirect, url_for

from config import config, database_options

from .audit.cli import audit_cli
from .auth.cli import users_cli
from .auth.tokens_cli import tokens_cli
from .domain.pricing import context_window
from .domain.rendering import tool_call_views
from .evals import models as evals_models  # noqa: F401  (registers the tables with the metadata)
from .evals.cli import evals_cli
from .extensions import csrf, db, migrate, services, socketio
from .limits.cli import usage_command
from .prompts.cli import prompts_cli
from .replies.eval_cli import run_command as eval_run_command
from .replies.worker_cli import worker_command
from .store.cli import sessions_cli
from .store.redis_urls import socketio_manager
from .store.session_interface import make_session_interface
from .web import headers as security_headers
from .web import identity, rate_limits, request_log, template_cache
from .web.account import bp as account_bp
from .web.admin import bp as admin_bp
from .web.api import bp as api_bp
from .web.api import pages_bp as api_pages_bp
from .web.auth import bp as auth_bp
from .web.errors import bp as errors_bp
from .web.evals import bp as evals_bp
from .web.form_guard import refuse_unreadable_forms
from .web.health import bp as health_bp
from .web.off_loop import event_loop_patched
from .web.playground import bp as playground_bp
from .web.playground.fragments import message_fragment
from .web.prompts import bp as prompts_bp


def socketio_async_mode() -> str:
    """Socket.IO's concurrency model, following the server: gevent under `gunicorn -k gevent`, else threads."""
    return "gevent" if event_loop_patched() else "threading"


def create_app(config_name: str | None = None, overrides: dict | None = None) -> Flask:
    """Build the app for ``config_name`` (default: $PROMPT_TRACKER_ENV or development)."""
    config_name = config_name or os.environ.get("PROMPT_TRACKER_ENV", "development")
    if config_name not in config:
        raise RuntimeError(f"Unknown PROMPT_TRACKER_ENV {config_name!r}; use one of: development, test, production.")
    config_class = config[config_name]

    app = Flask(__name__, instance_relative_config=True)
    app.jinja_env.trim_blocks = app.jinja_env.lstrip_blocks = True
    template_cache.init_app(app)
    app.config.from_object(config_class)
    app.config["ENV_NAME"] = config_name
    config_class.init_app(app)
    if config_name != "test":
        app.config.from_pyfile("config.py", silent=True)
    app.config.update(overrides or {})
    app.config["SQLALCHEMY_DATABASE_URI"], engine_options = database_options(app.config["SQLALCHEMY_DATABASE_URI"])
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", engine_options)

    # Every final message is stored with its page HTML, rendered once (the worker's too: same factory).
    bound = services.init_app(app, render_fragment=message_fragment)
    app.session_interface = make_session_interface(app, bound.session_redis, bound.conversations)
    # The read API signs in by token: its requests neither read nor set the session cookie.
    app.session_interface.sessionless_paths = (api_bp.url_prefix + "/",)
    # Before CSRF: a body that is not a UTF-8 form is refused for what it is, not as a missing token.
    app.before_request(refuse_unreadable_forms)
    csrf.init_app(app)
    # WebSocket only: no long-polling, so any web process can take any request (no sticky sessions).
    socket_options = dict(async_mode=socketio_async_mode(), transports=["websocket"])
    db.init_app(app)
    # An absolute path: `flask db upgrade` must find the revisions from any working directory.
    migrate.init_app(app, db, directory=os.path.join(os.path.dirname(app.root_path), "migrations"))
    # Who is asking, then how often they may: the limits are keyed by the signed-in user.
    identity.init_app(app)
    rate_limits.init_app(app, bound.jobs_redis)
    if app.config["SOCKETIO_MESSAGE_QUEUE"]:
        # Our own manager: Flask-SocketIO would hand a redis+sentinel:// URL to kombu.
        manager = socketio_manager(app.config["SOCKETIO_MESSAGE_QUEUE"])
        socketio.init_app(app, client_manager=manager, **socket_options)
    else:
        # In-process only (unit tests); explicit, since the shared SocketIO object keeps old options.
        socketio.init_app(app, client_manager=socketio_module.Manager(), **socket_options)

    # Outermost, so Socket.IO handshakes pass through it too (its middleware wraps what is there).
    identity.init_proxies(app)
    security_headers.init_app(app)
    request_log.configure(app)
    app.add_template_global(context_window)
    app.add_template_global(tool_call_views)

    app.register_blueprint(errors_bp)
    app.register_blueprint(health_bp)
    app.register_blueprint(playground_bp)
    # The same playground views once more, as each prompt's own playground (/prompts/<slug>/playground).
    app.register_blueprint(playground_bp, name="prompt_playground", url_prefix="/prompts/<slug>/playground")
    app.register_blueprint(prompts_bp)
    app.register_blueprint(auth_bp)
    app.register_blueprint(account_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(api_pages_bp)
    app.register_blueprint(evals_bp)
    app.cli.add_command(prompts_cli)
    app.cli.add_command(users_cli)
    app.cli.add_command(tokens_cli)
    app.cli.add_command(audit_cli)
    app.cli.add_command(usage_command)
    app.cli.add_command(sessions_cli)
    app.cli.add_command(worker_command)
    evals_cli.add_command(eval_run_command)
    app.cli.add_command(evals_cli)

    @app.get("/")
    def index():
        return redirect(url_for("playground.index"))

    return app
