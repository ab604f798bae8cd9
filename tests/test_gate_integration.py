"""The gate on the real path: a real redis-server, real `flask worker` processes, the fake OpenAI server counting calls."""

import io
import json
import threading

import pytest
from rq import Queue
from rq.job import Job
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer

from prompt_tracker import create_app
from prompt_tracker.auth.accounts import find_user
from prompt_tracker.domain.keys import reply_job_id
from prompt_tracker.domain.settings import STANDALONE
from prompt_tracker.extensions import db, services
from prompt_tracker.limits import budget

from .conftest import Playground, service_env, wait_for

pytestmark = pytest.mark.integration
REPLAY = STANDALONE + "~replay"
USER = "alice@example.com"


def conversation(app, playground, name=STANDALONE):
    with app.app_context():
        return services.conversations.all(playground.store(), name)


def queue_drained(real_redis, app) -> bool:
    """Nothing queued and nothing being worked on: every job queued so far has ended."""
    connection = real_redis.client(0)
    queue = Queue(app.config["RQ_QUEUE"], connection=connection, serializer=JSONSerializer)
    return queue.count == 0 and StartedJobRegistry(queue=queue).count == 0


def test_a_replay_runs_only_the_turns_it_started_with(live_app, live_playground, real_redis, start_worker, fake_openai):
    """A 1-turn conversation replayed, then 100 user turns imported into the original while the replay
    runs: one provider call (it was 101, with the send counter at 1)."""
    start_worker()
    assert live_playground.send("one").status_code == 303  # echo: no provider call
    wait_for(lambda: [m.status for m in conversation(live_app, live_playground)] == ["done", "done"], timeout=30)
    exported = json.loads(live_playground.client.get("/playground/export.json").get_data())
    exported["messages"] = [{**exported["messages"][0], "content": f"imported turn {n}"} for n in range(100)]

    fake_openai.script.reply = " ".join(f"w{n}" for n in range(40))
    fake_openai.script.chunk_delay = 0.05  # the first turn streams for about two seconds
    token = live_playground.token()
    form = {"provider": "openai", "model": "gpt-4o-mini", "csrf_token": token}
    assert live_playground.client.post("/playground/replay", data=form).status_code == 303
    first = wait_for(
        lambda: next((m for m in conversation(live_app, live_playground, REPLAY) if m.status == "streaming"), None),
        timeout=30,
    )
    data = {"csrf_token": token, "file": (io.BytesIO(json.dumps(exported).encode()), "c.json")}
    assert live_playground.client.post("/playground/import", data=data).status_code == 303
    assert len(conversation(live_app, live_playground)) == 100
    fake_openai.script.chunk_delay = 0.0

    job = Job.fetch(reply_job_id(first.id, 1), connection=real_redis.client(0), serializer=JSONSerializer)
    wait_for(lambda: job.get_status(refresh=True) == "finished" and queue_drained(real_redis, live_app), timeout=120)
    assert fake_openai.stream_requests() == 1
    replayed = conversation(live_app, live_playground, REPLAY)
    assert [(m.role, m.status) for m in replayed] == [("user", "done"), ("assistant", "done")]


def test_parallel_sends_from_five_sessions_stay_within_the_daily_token_budget(
    real_redis, monkeypatch, start_worker, fake_openai, tmp_path
):
    """20 sends at once from 5 sessions of one user: replies in flight hold their estimate, so what the
    provider billed stays within DAILY_BUDGET_TOKENS (it was 150 % and more) and the rest are 429s.

    Signed in (a trusted proxy names the user): the budget is the user's, across their sessions.
    """
    for key, value in service_env(real_redis).items():
        monkeypatch.setenv(key, value)
    overrides = {
        "DEBUG": False,
        "DAILY_BUDGET_TOKENS": 300,
        "AUTH_MODE": "header",
        "TRUSTED_PROXIES": ["127.0.0.1"],
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'users.sqlite3'}",
    }
    app = create_app("development", overrides=overrides)
    with app.app_context():
        db.create_all()
    start_worker()
    # The fake endpoint has no known price: each reply bills 30 tokens (21 in, 9 out) and holds
    # about 100 (Max tokens) plus its input while it is queued or written.
    fake_openai.script.reply = " ".join(f"w{n}" for n in range(10))
    fake_openai.script.chunk_delay = 0.05
    sessions = [Playground(app.test_client()) for _ in range(5)]
    for playground in sessions:
        playground.client.environ_base["HTTP_X_FORWARDED_USER"] = USER
        assert playground.save_settings(provider="openai", model="gpt-4o-mini", max_tokens=100).status_code == 303

    statuses: list[int] = []
    lock = threading.Lock()
    go = threading.Barrier(len(sessions))

    def send_four(playground):
        tokens = [playground.token() for _ in range(4)]
        go.wait()
        for number, token in enumerate(tokens):
            response = playground.client.post(
                "/playground/messages", data={"content": f"message {number}", "csrf_token": token}
            )
            with lock:
                statuses.append(response.status_code)

    threads = [threading.Thread(target=send_four, args=(playground,)) for playground in sessions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(statuses) == 20 and set(statuses) <= {303, 429}
    accepted = statuses.count(303)

    # Signed in, the five sessions share the user's workspace: one conversation holds every reply.
    with app.app_context():
        workspace = app.session_interface.workspace_id(find_user(USER).id)

    def all_ended() -> bool:
        with app.app_context():
            replies = [m for m in services.conversations.all(workspace, STANDALONE) if m.role == "assistant"]
        return len(replies) == accepted and not any(m.is_open for m in replies) and queue_drained(real_redis, app)

    wait_for(all_ended, timeout=120)
    with app.app_context():
        spent = budget.spent(USER)
    assert spent.unpriced_tokens == 30 * accepted <= 300
    assert fake_openai.stream_requests() == accepted == spent.replies
    assert 1 <= accepted < 20
    with app.app_context():
        assert budget.held(USER) == []  # every reservation settled
