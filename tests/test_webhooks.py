"""Signed webhooks: the signature, the settings, and deliveries by a real worker to a local server (one
received and verified, one retried until it succeeds, one that fails all five tries)."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from config import ConfigError, read_webhook_settings
from prompt_tracker import create_app
from prompt_tracker.extensions import db
from prompt_tracker.prompts.labels import move_label
from prompt_tracker.prompts.library import create_prompt, save_version
from prompt_tracker.webhooks import notify
from prompt_tracker.webhooks.events import UnknownEvent
from prompt_tracker.webhooks.models import WebhookDelivery
from prompt_tracker.webhooks.signing import signature, verify

from .conftest import service_env, wait_for

SECRET = "test-webhook-secret-0123456789abcdef"


def test_the_signature_is_githubs_scheme_and_checks_every_byte():
    body = b'{"id":"evt_1","type":"version.created"}'
    # GitHub's documented example value is computed the same way: HMAC-SHA256 of the raw body, hex.
    assert signature(b"Hello, World!", "It's a Secret to Everybody") == (
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    )
    assert verify(body, SECRET, signature(body, SECRET))
    assert not verify(body + b" ", SECRET, signature(body, SECRET))
    assert not verify(body, "another secret", signature(body, SECRET))
    assert not verify(body, SECRET, None)


def test_settings_refuse_urls_without_a_secret_and_bad_intervals(monkeypatch):
    settings = {"WEBHOOK_URLS": [], "WEBHOOK_SECRET": "", "WEBHOOK_RETRY_INTERVALS": [10], "WEBHOOK_TIMEOUT": 10}
    monkeypatch.setenv("WEBHOOK_URLS", "https://a.example/hook, https://b.example/hook")
    monkeypatch.setenv("WEBHOOK_RETRY_INTERVALS", "1,2,3,4")
    with pytest.raises(ConfigError, match="WEBHOOK_SECRET is not"):
        read_webhook_settings(dict(settings))
    read_webhook_settings(settings | {"WEBHOOK_SECRET": SECRET})
    monkeypatch.setenv("WEBHOOK_RETRY_INTERVALS", "soon")
    with pytest.raises(ConfigError, match="WEBHOOK_RETRY_INTERVALS must be whole numbers"):
        read_webhook_settings(settings | {"WEBHOOK_SECRET": SECRET})
    monkeypatch.setenv("WEBHOOK_RETRY_INTERVALS", "1")
    monkeypatch.setenv("WEBHOOK_URLS", "ftp://a.example/")
    with pytest.raises(ConfigError, match="not an http"):
        read_webhook_settings(settings | {"WEBHOOK_SECRET": SECRET})


def test_without_urls_nothing_is_recorded_and_an_unknown_kind_is_refused():
    app = create_app("test")
    with app.app_context():
        db.create_all()
        create_prompt("Quiet", "x")
        assert notify("version.created", {}) == []
        assert db.session.scalar(db.select(db.func.count(WebhookDelivery.id))) == 0
        with pytest.raises(UnknownEvent):
            notify("prompt.eaten", {})


class Receiver:
    """A local HTTP server: ``/ok`` answers 200, ``/flaky`` 500 twice per event then 204, ``/down`` always 503."""

    def __init__(self):
        self.requests: dict[str, list[tuple[dict, bytes]]] = {"/ok": [], "/flaky": [], "/down": []}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                seen = receiver.requests[self.path]
                seen.append((dict(self.headers, received=time.monotonic()), body))
                tries = sum(
                    1
                    for headers, _ in seen
                    if headers["X-Prompt-Tracker-Event-Id"] == self.headers["X-Prompt-Tracker-Event-Id"]
                )
                status = {"/ok": 200, "/flaky": 500 if tries <= 2 else 204, "/down": 503}[self.path]
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


def test_a_committed_version_is_delivered_from_the_audit_hook_with_jobs_inline(receiver):
    """Unit-test config (jobs run inline): the audit event's after-commit hook writes the delivery in a session of
    its own and the job posts it, signed; a change rolled back sends nothing."""
    app = create_app("test", overrides={"WEBHOOK_URLS": [receiver.url + "/ok"], "WEBHOOK_SECRET": SECRET})
    with app.app_context():
        db.create_all()
        prompt = create_prompt("Inline", "x", author="local")
        db.session.add(WebhookDelivery(event_id="evt_x", event="version.created", url="rolled back", body="{}"))
        db.session.rollback()
        rows = db.session.scalars(db.select(WebhookDelivery)).all()
        assert [(row.event, row.status, row.attempts) for row in rows] == [("version.created", "delivered", 1)]
        assert prompt.slug == "inline"  # the caller's objects are still usable after the hook's own session
    ((headers, body),) = receiver.requests["/ok"]
    assert verify(body, SECRET, headers["X-Prompt-Tracker-Signature"])
    assert json.loads(body)["data"] == json.loads(body)["data"] | {"slug": "inline", "version": 1, "actor": "local"}


@pytest.mark.integration
def test_a_real_worker_delivers_signed_events_retries_with_back_off_and_records_every_attempt(
    receiver, real_redis, start_worker, tmp_path, monkeypatch
):
    webhook_env = {
        "DATABASE_URL": f"sqlite:///{tmp_path}/webhooks.sqlite3",
        "WEBHOOK_URLS": ",".join(receiver.url + path for path in ("/ok", "/flaky", "/down")),
        "WEBHOOK_SECRET": SECRET,
        # Seconds (the default is 10,60,300,1800). RQ schedules to the whole second, so 2 waits 1 to 2 s.
        "WEBHOOK_RETRY_INTERVALS": "2",
        "WEBHOOK_TIMEOUT": "2",
    }
    for key, value in {**service_env(real_redis), **webhook_env}.items():
        monkeypatch.setenv(key, value)
    app = create_app("development", overrides={"DEBUG": False})
    with app.app_context():
        db.create_all()
    start_worker(webhook_env)
    with app.app_context():
        prompt = create_prompt("Hooked", "Hello {{ name }}.", author="alice")
        save_version(
            prompt.id, system_prompt="Hi.", provider="echo", model="echo-1", params={}, variables={}, author="alice"
        )
        move_label(prompt, "production", 1, "alice", admin=True)

    def deliveries():
        with app.app_context():
            db.session.remove()
            rows = db.session.scalars(db.select(WebhookDelivery).order_by(WebhookDelivery.id)).all()
            return [(row.url.rsplit("/", 1)[1], row) for row in rows]

    def settled():
        rows = deliveries()
        return rows if len(rows) == 9 and all(row.status in ("delivered", "failed") for _, row in rows) else None

    rows = wait_for(settled, timeout=60, interval=0.2)
    # Received and verified: versions 1 and 2 created, production moved to 1; each signed over the exact body,
    # with its id and time (body and headers), its data from the audit event.
    received = receiver.requests["/ok"]
    assert len(received) == 3
    events = []
    for headers, body in received:
        assert verify(body, SECRET, headers["X-Prompt-Tracker-Signature"])
        event = json.loads(body)
        assert headers["X-Prompt-Tracker-Event"] == event["type"]
        assert headers["X-Prompt-Tracker-Event-Id"] == event["id"] and event["id"].startswith("evt_")
        assert headers["X-Prompt-Tracker-Timestamp"] == str(event["timestamp"])
        assert headers["Content-Type"] == "application/json"
        assert event["data"]["slug"] == "hooked" and event["data"]["actor"] == "alice"
        events.append(event)
    assert sorted((event["type"], event["data"].get("version")) for event in events) == [
        ("label.moved", None),
        ("version.created", 1),
        ("version.created", 2),
    ]
    moved = next(event["data"] for event in events if event["type"] == "label.moved")
    assert (moved["label"], moved["from_version"], moved["to_version"]) == ("production", None, 1)
    for row in (row for path, row in rows if path == "ok"):
        assert (row.status, row.attempts, row.last_error, row.last_status_code) == ("delivered", 1, "", 200)

    # Failed twice, then delivered: three attempts of the same bytes and signature, after a back-off each.
    flaky = receiver.requests["/flaky"]
    assert len(flaky) == 9
    for event_id in {headers["X-Prompt-Tracker-Event-Id"] for headers, _ in flaky}:
        tries = [(headers, body) for headers, body in flaky if headers["X-Prompt-Tracker-Event-Id"] == event_id]
        assert len(tries) == 3 and len({body for _, body in tries}) == 1
        assert len({headers["X-Prompt-Tracker-Signature"] for headers, _ in tries}) == 1
        times = [headers["received"] for headers, _ in tries]
        assert all(later - earlier >= 1 for earlier, later in zip(times, times[1:])), times  # the back-off
    for row in (row for path, row in rows if path == "flaky"):
        assert (row.status, row.attempts, row.last_status_code) == ("delivered", 3, 204)

    # Never answered 2xx: five tries, then failed, with the last error recorded.
    assert len(receiver.requests["/down"]) == 15
    for row in (row for path, row in rows if path == "down"):
        assert (row.status, row.attempts, row.last_status_code) == ("failed", 5, 503)
        assert row.last_error == "The endpoint answered 503."

    # The admin page (AUTH_MODE=none: the local admin) lists every delivery.
    page = app.test_client().get("/admin/webhooks").get_data(as_text=True)
    assert page.count('<tr class="delivery-') == 9
    assert "failed (503)" in page and "delivered (204)" in page and "The endpoint answered 503." in page
    assert app.test_client().get("/audit").get_data(as_text=True).count('<tr class="delivery-') == 9  # there too
