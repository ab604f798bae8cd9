"""The playground on a real redis-server and real RQ workers (never localhost:6379)."""

import re
from html import unescape

import pytest

from prompt_tracker import create_app
from prompt_tracker.domain.keys import conversation_key, session_key
from prompt_tracker.domain.messages import decode_message
from prompt_tracker.domain.settings import STANDALONE
from prompt_tracker.extensions import services

from .conftest import COOKIE, jobs_ended, wait_for

pytestmark = pytest.mark.integration
DAY = 24 * 3600
PREFIX = "prompt_tracker:session:"


def test_session_keys_live_in_db2_and_contain_session(live_app, live_playground, real_redis, start_worker):
    start_worker()
    live_playground.send("hello")
    reply = wait_for(lambda: (m := live_playground.messages(live_app)[-1]).status == "done" and m)
    keys = sorted(k.decode() for k in real_redis.client(2).scan_iter())
    store = live_playground.store()
    assert keys == [session_key(PREFIX, store), conversation_key(PREFIX, store, STANDALONE)]
    jobs = {k.decode() for k in real_redis.client(0).scan_iter()}
    assert f"rq:job:reply-{reply.id}-1" in jobs  # the reply went through RQ in DB 0
    assert not any("session" in key for key in jobs)  # and no session key landed there
    assert real_redis.client(1).dbsize() == 0  # DB 1 is Socket.IO's channel: no keys


def test_ttls_are_a_day_and_slide_on_each_request(live_playground, real_redis):
    live_playground.send("hello")
    db2 = real_redis.client(2)
    store = live_playground.store()
    keys = [session_key(PREFIX, store), conversation_key(PREFIX, store, STANDALONE)]
    for key in keys:
        assert DAY - 60 < db2.ttl(key) <= DAY
        db2.expire(key, 500)
    live_playground.page()
    for key in keys:
        assert db2.ttl(key) > DAY - 60


def run_queued_replies(app):
    """Run the queued reply jobs in this process (no fork), with the worker's JSON serializer."""
    from rq import SimpleWorker
    from rq.serializers import JSONSerializer

    with app.app_context():
        SimpleWorker([services.queue], connection=services.jobs_redis, serializer=JSONSerializer).work(burst=True)


def test_a_page_view_does_not_rewrite_the_blob(live_app, live_playground, real_redis):
    live_playground.save_settings(system_prompt="unchanged")
    live_playground.send("hello")
    run_queued_replies(live_app)
    live_playground.page()  # consumes the flash message, which does change the session
    db2 = real_redis.client(2)
    db2.config_resetstat()
    live_playground.page()
    stats = db2.info("commandstats")
    assert "cmdstat_set" not in stats  # no rewrite of the blob
    assert stats["cmdstat_get"]["calls"] == 1  # the blob, read once
    assert stats["cmdstat_expire"]["calls"] == 2  # blob + conversation list, pushed together
    assert stats["cmdstat_lrange"]["calls"] == 1  # one window of the conversation


def test_150_long_messages_are_stored_and_rendered_without_cookie_growth(live_app, live_playground, real_redis):
    live_playground.send("first")
    cookie_before = live_playground.client.get_cookie(COOKIE).value
    store = live_playground.store()
    with live_app.app_context():
        from prompt_tracker.domain.messages import user_message

        messages = [user_message(f"message {i}: " + "y" * 2048) for i in range(148)]
        services.store.append(store, STANDALONE, *messages)
    response = live_playground.page()
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "150 messages" in html
    # The page shows the newest that fit its window; "Show earlier messages" reaches every other one.
    seen = set(re.findall(r"message (\d+): ", html))
    assert "147" in seen
    while link := re.search(r'<a href="([^"]+)">Show earlier messages', html):
        html = live_playground.client.get(unescape(link.group(1))).get_data(as_text=True)
        seen |= set(re.findall(r"message (\d+): ", html))
    assert seen == {str(i) for i in range(148)}
    assert live_playground.client.get_cookie(COOKIE).value == cookie_before
    assert real_redis.client(2).llen(conversation_key(PREFIX, store, STANDALONE)) == 150


def test_reset_removes_the_key_at_once(live_playground, real_redis):
    live_playground.send("to be deleted")
    key = conversation_key(PREFIX, live_playground.store(), STANDALONE)
    assert real_redis.client(2).exists(key)
    live_playground.reset()
    assert not real_redis.client(2).exists(key)


def test_a_real_worker_completes_a_turn(live_app, live_playground, start_worker):
    start_worker()
    live_playground.send("through the worker")
    reply = wait_for(
        lambda: next(
            (m for m in live_playground.messages(live_app) if m.role == "assistant" and m.status == "done"), None
        )
    )
    assert reply.content.startswith("You said: through the worker")
    assert reply.usage.output_tokens > 0
    html = live_playground.page().get_data(as_text=True)
    assert "You said: through the worker" in html


def test_queued_message_waits_visibly_for_a_worker_then_completes(live_app, live_playground, start_worker):
    live_playground.send("no worker yet")
    html = live_playground.page().get_data(as_text=True)
    assert "Waiting for a worker" in html
    # with JS off the reply's frame refreshes itself (the page never does: what is typed stays)
    reply = live_playground.messages(live_app)[-1]
    frame = f"/playground/messages/{reply.id}/frame"
    assert frame in html and 'http-equiv="refresh"' not in html
    assert 'http-equiv="refresh"' in live_playground.client.get(frame).get_data(as_text=True)
    start_worker()
    wait_for(lambda: live_playground.messages(live_app)[-1].status == "done")
    assert 'http-equiv="refresh"' not in live_playground.client.get(frame).get_data(as_text=True)
    assert frame not in live_playground.page().get_data(as_text=True)


def test_a_reply_that_finishes_after_reset_does_not_reappear(live_app, live_playground, real_redis, start_worker):
    start_worker({"ECHO_DELAY": "0.2"})
    live_playground.send("slow one two three four five six")
    key = conversation_key(PREFIX, live_playground.store(), STANDALONE)
    db2 = real_redis.client(2)
    wait_for(lambda: any(decode_message(raw).status == "streaming" for raw in db2.lrange(key, 0, -1)))
    live_playground.reset()
    assert not db2.exists(key)
    # the job finishes (the echo reply takes ~2 s) and must not recreate the list
    wait_for(
        lambda: (
            not real_redis.client(0).llen("rq:queue:prompt_tracker")
            and _no_started_jobs(real_redis)
            and jobs_ended(real_redis)
        ),
        timeout=20,
    )
    assert not db2.exists(key)
    assert "No messages yet" in live_playground.page().get_data(as_text=True)


def _no_started_jobs(server):
    from rq import Queue

    queue = Queue("prompt_tracker", connection=server.client(0))
    return (
        queue.started_job_registry.count == 0
        and queue.finished_job_registry.count + queue.failed_job_registry.count >= 1
    )


@pytest.mark.parametrize("missing", ["REDIS_URL", "SECRET_KEY", "DATABASE_URL"])
def test_production_refuses_to_start_without_required_variables(monkeypatch, real_redis, missing):
    from config import ConfigError

    monkeypatch.setenv("REDIS_URL", real_redis.url(2))
    monkeypatch.setenv("SECRET_KEY", "s" * 40)
    monkeypatch.setenv("DATABASE_URL", "postgresql://prompt_tracker@localhost/prompt_tracker")
    monkeypatch.delenv(missing)
    with pytest.raises(ConfigError, match=missing):
        create_app("production")


def test_production_starts_with_them_and_uses_secure_cookies(monkeypatch, real_redis):
    monkeypatch.setenv("REDIS_URL", real_redis.url(2))
    monkeypatch.setenv("SECRET_KEY", "s" * 40)
    monkeypatch.setenv("DATABASE_URL", "postgresql://prompt_tracker@localhost/prompt_tracker")
    monkeypatch.setenv("AUTH_MODE", "accounts")
    monkeypatch.setenv("TRUSTED_PROXIES", "none")  # clients connect directly
    for name in ("RQ_REDIS_URL", "SOCKETIO_MESSAGE_QUEUE", "SESSION_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    app = create_app("production")
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["RQ_REDIS_URL"].endswith("/0")
    assert app.config["SOCKETIO_MESSAGE_QUEUE"].endswith("/1")
    client = app.test_client()
    response = client.get("/login", base_url="https://localhost")
    assert response.status_code == 200
    assert "Secure" in response.headers["Set-Cookie"]


def test_a_plain_rq_worker_also_completes_a_turn(live_app, live_playground, real_redis):
    """The README's alternative worker command: `rq worker prompt_tracker --url $RQ_REDIS_URL --serializer ... --worker-class ...`."""
    import subprocess
    import sys
    from pathlib import Path

    from .conftest import ROOT, service_env

    live_playground.send("plain rq")
    rq = Path(sys.executable).with_name("rq")
    subprocess.run(
        [
            str(rq),
            "worker",
            "prompt_tracker",
            "--url",
            real_redis.url(0),
            "--burst",
            "--serializer",
            "rq.serializers.JSONSerializer",
            "--worker-class",
            "prompt_tracker.rq_worker.ReplyWorker",
        ],
        cwd=ROOT,
        env=service_env(real_redis),
        check=True,
        capture_output=True,
        timeout=60,
    )
    reply = live_playground.messages(live_app)[-1]
    assert reply.status == "done" and reply.content.startswith("You said: plain rq")
