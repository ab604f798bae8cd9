"""Security headers on every response: a CSP without inline script, no sniffing, no framing;
HSTS in production; pages are never cached (they carry conversation data)."""

from flask import Flask, current_app, request

# 'self' covers same-origin ws:/wss: for the Socket.IO connection; frames: only our own (a reply
# written while JS is off), and no page of ours may be framed except those that say so.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
FRAMED_CONTENT_SECURITY_POLICY = CONTENT_SECURITY_POLICY.replace("frame-ancestors 'none'", "frame-ancestors 'self'")


def framed_by_own_pages(response):
    """Let this response be shown in a frame of our own pages only (the no-JS reply frame)."""
    response.headers["Content-Security-Policy"] = FRAMED_CONTENT_SECURITY_POLICY
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


def add_security_headers(response):
    """Set the headers unless a view chose its own."""
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Frame-Options", "DENY")
    hsts = current_app.config.get("HSTS_SECONDS")
    if hsts:
        response.headers.setdefault("Strict-Transport-Security", f"max-age={hsts}; includeSubDomains")
    if request.endpoint != "static":
        # Pages and JSON answers hold conversation data: no shared or browser cache may keep them.
        response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask) -> None:
    """Register the headers on every response of ``app``."""
    app.after_request(add_security_headers)
