"""Stop, Retry and failures around a turn: the user's message is never lost."""

import time

import msgspec
import pytest
import redis

from prompt_tracker.extensions import services
from prompt_tracker.playground_settings import STANDALONE

from .conftest import wait_for


def test_stale_reply_shows_failed_with_retry_and_retry_completes_it(app, playground):
    playground.send("question")
    sid = playground.sid()
    with app.app_context():
        reply = services.store.all(sid, STANDALONE)[-1]
        services.store.update(sid, STANDALONE, reply.id, lambda m: msgspec.structs.replace(
            m, status="streaming", content="", created_at=time.time() - 3600))
    html = playground.page().get_data(as_text=True)
    assert "The worker stopped before finishing this reply." in html
    assert f"/playground/messages/{reply.id}/retry" in html
    assert playground.retry(reply.id).status_code == 303
    retried = playground.messages(app)[-1]
    assert retried.id == reply.id and retried.status == "done"
    assert retried.content.startswith("You said: question")


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
        "/playground/messages", data={"content": "via script", "csrf_token": token},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 202
    body = response.get_json()
    assert "via script" in body["html"] and f'id="m-{body["id"]}"' in body["html"]
    fragment = playground.client.get(f"/playground/messages/{body['id']}")
    assert fragment.status_code == 200 and "You said: via script" in fragment.get_data(as_text=True)


def test_json_send_of_a_blank_message_is_a_clear_422(playground):
    response = playground.client.post(
        "/playground/messages", data={"content": " ", "csrf_token": playground.token()},
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
