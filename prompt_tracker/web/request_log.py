"""Structured logs: one JSON line per request and per reply, never a session id, prompt text or key.

``LOG_FORMAT=json`` (the production default) writes every record of the app's loggers as one JSON
object on stderr; ``text`` keeps Flask's readable lines for development. The request line carries
user, route (the URL rule, not the path, so no id in a URL reaches the log), status and duration.
"""

import json
import logging
import sys
import time

from flask import Flask, g, request

logger = logging.getLogger("prompt_tracker")


class JSONFormatter(logging.Formatter):
    """Format a record as one JSON object per line (UTC times); ``extra={"fields": {...}}`` adds keys."""

    converter = time.gmtime

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as JSON: time, level, logger, message and its ``fields``."""
        data = {
            "timestamp": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        data.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


class StderrHandler(logging.StreamHandler):
    """A stream handler that writes to whatever ``sys.stderr`` is when a record is emitted."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def configure(app: Flask) -> None:
    """Send the app's logs to stderr in the configured format and log every request once."""
    handler = StderrHandler()
    if app.config.get("LOG_FORMAT", "text") == "json":
        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in ("prompt_tracker", app.logger.name):
        log = logging.getLogger(name)
        log.handlers[:] = [handler]
        log.setLevel(logging.DEBUG if app.debug else logging.INFO)
        log.propagate = False
    if app.config.get("LOG_REQUESTS", True):
        app.before_request(_start_timer)
        app.after_request(_log_request)


def _start_timer() -> None:
    g.request_started = time.perf_counter()


def _log_request(response):
    started = g.get("request_started")
    if started is None or request.endpoint == "static":
        return response
    route = request.url_rule.rule if request.url_rule else "(no route)"
    logger.info(
        "%s %s %s",
        request.method,
        route,
        response.status_code,
        extra={
            "fields": {
                "event": "request",
                "user": current_user_name(),
                "method": request.method,
                "route": route,
                "status": response.status_code,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            }
        },
    )
    return response


def current_user_name() -> str | None:
    """The signed-in user's name for the log, if the sign-in layer set one on ``g``."""
    return g.get("log_user")
