"""Stop, Retry and failures around a turn: the user's message is never lost."""

import time

import msgspec
import pytest
import redis

from prompt_tracker.domain.keys import alive_key
from prompt_tracker.domain.settings import STANDALONE
from prompt_tracker.extensions import services
from prompt_tracker.replies.reply import QUEUE_GRACE_SECONDS

from .conftest import wait_for


def test_reply_without_worker_heartbeat_shows_failed_with_retry_and_retry_completes_it(app, playground):
    playground.send("question")
    store = playground.store()
    with app.app_context():
        reply = services.store.all(store, STANDALONE)[-1]
        services.store.update(
            store, STANDALONE, reply.id, lambda m: msgspec.structs.replace(m, status="streaming", content="")
        )
        services.jobs_redis.delete(alive_key(reply.id))  # its worker's heartbeat ran out
    html = playground.page().get_data(as_text=True)
    assert "The worker stopped before finishing this reply." in html
    assert f"/playground/messages/{reply.id}/retry" in html
    assert playground.retry(reply.id).status_code == 303
    retried = playground.messages(app)[-1]
    assert retried.id == reply.id and retried.status == "done"
    assert retried.content.startswith("You said: question")


def test_a_reply_stored_but_never_queued_shows_failed_with_retry_once_its_grace_is_over(app, playground, monkeypatch):
    # The web process stops between storing the two messages and queueing the reply's job.
    monkeypatch.setattr("prompt_tracker.replies.send.enqueue_reply", lambda *args, **kwargs: None)
    playground.send("lost on the way")
    monkeypatch.undo()
    reply = playground.messages(app)[-1]
    assert reply.status == "pending"
    assert "Waiting for a worker" in playground.page().get_data(as_text=True)  # it may still be being queued
    with app.app_context():
        services.store.update(
            playground.store(),
            STANDALONE,
            reply.id,
            lambda m: msgspec.structs.replace(m, created_at=m.created_at - QUEUE_GRACE_SECONDS - 1),
        )
    html = playground.page().get_data(as_text=True)
    assert "The reply was never queued" in html and "Waiting for a worker" not in html
    assert f"/playground/messages/{reply.id}/retry" in html
    assert playground.retry(reply.id).status_code == 303
    retried = playground.messages(app)[-1]
    assert retried.status == "done" and retried.content.startswith("You said: lost on the way")
    assert retried.alternatives == []  # nothing was written by the attempt that was never queued


def test_queue_down_keeps_the_message_and_offers_retry(app, playground, monkeypatch):
    playground.page()
    with app.app_context():
        queue = services.queue

    def unreachable(*args, **kwargs):
        raise redis.ConnectionError("Connection refused")

    monkeypatch.setattr(queue, "enqueue", unreachable)
    response = playground.send("keep me")
    assert response.status_code == 303
    page = playground.page().get_data(as_text=True)
    assert "job queue" in page
    user, reply = playground.messages(app)
    assert user.content == "keep me"
    assert reply.status == "failed" and "could not be queued" in reply.error
    monkeypatch.undo()
    playground.retry(reply.id)
    assert playground.messages(app)[-1].status == "done"


def test_stop_of_a_queued_reply_marks_it_stopped(app, playground, monkeypatch):
    playground.page()
    with app.app_context():
        monkeypatch.setattr(services.queue, "enqueue", lambda *a, **k: None)  # nobody runs it
    playground.send("never answered")
    reply = playground.messages(app)[-1]
    assert reply.status == "pending"
    response = playground.client.post(f"/playground/messages/{reply.id}/stop", data={"csrf_token": playground.token()})
    assert response.status_code == 303
    assert playground.messages(app)[-1].status == "stopped"
    assert "Stopped before any text was written." in playground.page().get_data(as_text=True)


def test_json_send_returns_the_rendered_messages(app, playground):
    token = playground.token()
    response = playground.client.post(
        "/playground/messages",
        data={"content": "via script", "csrf_token": token},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 202
    body = response.get_json()
    assert "via script" in body["html"] and f'id="m-{body["id"]}"' in body["html"]
    fragment = playground.client.get(f"/playground/messages/{body['id']}")
    assert fragment.status_code == 200 and "You said: via script" in fragment.get_data(as_text=True)


def test_json_send_of_a_blank_message_is_a_clear_422(playground):
    response = playground.client.post(
        "/playground/messages",
        data={"content": " ", "csrf_token": playground.token()},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 422
    assert response.get_json() == {"error": "Type a message before sending."}


@pytest.mark.integration
def test_stop_a_reply_being_written_keeps_what_was_written(live_app, live_playground, start_worker):
    start_worker({"ECHO_DELAY": "0.1"})
    live_playground.send(" ".join(f"word{i}" for i in range(60)))
    reply_id = live_playground.messages(live_app)[-1].id

    def streaming():
        return live_playground.messages(live_app)[-1].status == "streaming"

    wait_for(streaming)
    time.sleep(0.6)
    live_playground.client.post(f"/playground/messages/{reply_id}/stop", data={"csrf_token": live_playground.token()})
    stopped = wait_for(lambda: next((m for m in live_playground.messages(live_app) if m.status == "stopped"), None))
    assert stopped.id == reply_id
    assert stopped.content.startswith("You said:")
    assert "word59" not in stopped.content  # it did not run to the end
    html = live_playground.page().get_data(as_text=True)
    assert "Stopped." in html and "Retry" in html


@pytest.mark.integration
def test_a_worker_killed_mid_turn_leaves_a_failed_reply_with_retry(live_app, live_playground, start_worker):
    import os
    import signal

    import psutil

    worker = start_worker({"ECHO_DELAY": "0.3", "HEARTBEAT_TTL": "2"})
    live_playground.send("this reply will be cut off")
    wait_for(lambda: live_playground.messages(live_app)[-1].status == "streaming")
    for process in [*psutil.Process(worker.pid).children(recursive=True), psutil.Process(worker.pid)]:
        os.kill(process.pid, signal.SIGKILL)
    reply = live_playground.messages(live_app)[-1]

    def failed_page():
        html = live_playground.page().get_data(as_text=True)
        return html if "The worker stopped before finishing this reply." in html else None

    html = wait_for(failed_page, timeout=15)
    assert f"/playground/messages/{reply.id}/retry" in html
    assert live_playground.messages(live_app)[0].content == "this reply will be cut off"  # the user's message
    # Retry with a live worker completes it
    start_worker()
    live_playground.retry(reply.id)
    done = wait_for(lambda: (m := live_playground.messages(live_app)[-1]).status == "done" and m)
    assert done.content.startswith("You said: this reply will be cut off")
