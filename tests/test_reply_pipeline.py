"""A reply's life on the real path: real rq workers, the fake OpenAI server, a real redis-server.

One provider call per attempt however many workers and clicks; Stop and Reset close the provider's
HTTP stream (the fake server records when its client hung up); the text streamed so far is on the
page and survives a work-horse that dies.
"""

import contextlib
import json
import os
import signal
import threading
import time

import psutil
import pytest

from prompt_tracker.domain.keys import partial_key, store_id
from prompt_tracker.extensions import services

from .conftest import COOKIE, job_result, jobs_ended, wait_for
from .test_concurrency import Browser
from .test_live_events import RawSocket

pytestmark = pytest.mark.integration
PREFIX = "prompt_tracker:session:"
LONG_REPLY = " ".join(f"w{number}" for number in range(300))


def use_openai(playground, fake, chunk_delay=0.05, reply=LONG_REPLY):
    """Point the playground at the fake OpenAI server, streaming ``reply`` a word every ``chunk_delay`` s."""
    fake.script.reply = reply
    fake.script.chunk_delay = chunk_delay
    assert playground.save_settings(provider="openai", model="gpt-4o-mini").status_code == 303


def last(app, playground):
    return playground.messages(app)[-1]


def partial_text(server, store, message_id) -> str:
    return (server.client(2).get(partial_key(PREFIX, store, message_id)) or b"").decode()


def test_one_provider_call_per_attempt_with_two_workers_however_often_retry_is_clicked(
    live_app, live_playground, real_redis, start_worker, fake_openai
):
    use_openai(live_playground, fake_openai, chunk_delay=0.01, reply=" ".join(f"w{n}" for n in range(60)))
    start_worker(), start_worker()
    live_playground.send("count to sixty")
    reply_id = last(live_app, live_playground).id
    for _ in range(4):  # Retry of a reply that is queued or being written does nothing
        assert live_playground.retry(reply_id).status_code == 303
    with live_app.app_context():  # a stray second job for the same attempt makes no call either
        services.queue.enqueue("prompt_tracker.replies.job.run_reply", reply_id, 1, job_id=f"reply-{reply_id}-1-again")
    first = wait_for(lambda: (m := last(live_app, live_playground)).status == "done" and m)
    # Both jobs of attempt 1 ran (on two workers, either may claim it first): one wrote it, one did nothing.
    outcomes = [
        wait_for(lambda job=job: job_result(real_redis, job))
        for job in (f"reply-{reply_id}-1", f"reply-{reply_id}-1-again")
    ]
    assert sorted(outcomes) == ["done", "skipped"]
    wait_for(lambda: jobs_ended(real_redis))  # and so did any other job
    assert fake_openai.stream_requests() == 1
    assert first.attempt == 1 and first.content.startswith("w0 w1")

    # Two tabs click Retry on the finished reply at the same moment: one new attempt, one call.
    tabs = [live_app.test_client() for _ in range(2)]
    token = live_playground.token()
    for tab in tabs:
        tab.set_cookie(COOKIE, live_playground.sid())
    barrier = threading.Barrier(2)

    def click(tab):
        barrier.wait()
        tab.post(f"/playground/messages/{reply_id}/retry", data={"csrf_token": token})

    threads = [threading.Thread(target=click, args=(tab,)) for tab in tabs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    second = wait_for(lambda: (m := last(live_app, live_playground)).status == "done" and m.attempt == 2 and m)
    wait_for(lambda: jobs_ended(real_redis))  # every job the clicks queued has run
    assert fake_openai.stream_requests() == 2
    assert [(a.attempt, a.content) for a in second.alternatives] == [(1, first.content)]


def test_stop_closes_the_provider_stream_within_a_second_and_keeps_the_text(
    live_app, live_playground, real_redis, start_worker, fake_openai
):
    use_openai(live_playground, fake_openai)
    start_worker()
    live_playground.send("a long answer please")
    reply_id = last(live_app, live_playground).id
    wait_for(lambda: len(partial_text(real_redis, live_playground.store(), reply_id)) > 20)
    asked = time.time()
    live_playground.client.post(f"/playground/messages/{reply_id}/stop", data={"csrf_token": live_playground.token()})
    closed_at = wait_for(lambda: fake_openai.progress.closed_at, timeout=5)
    assert closed_at - asked < 1.0
    stopped = wait_for(lambda: (m := last(live_app, live_playground)).status == "stopped" and m)
    assert stopped.content.startswith("w0 w1 w2") and "w299" not in stopped.content
    assert not real_redis.client(2).exists(partial_key(PREFIX, live_playground.store(), reply_id))
    assert fake_openai.stream_requests() == 1


def test_reset_closes_the_provider_stream_within_a_second_and_nothing_reappears(
    live_app, live_playground, real_redis, start_worker, fake_openai
):
    use_openai(live_playground, fake_openai)
    start_worker()
    live_playground.send("a long answer please")
    reply_id = last(live_app, live_playground).id
    wait_for(lambda: len(partial_text(real_redis, live_playground.store(), reply_id)) > 20)
    asked = time.time()
    live_playground.reset()
    closed_at = wait_for(lambda: fake_openai.progress.closed_at, timeout=5)
    assert closed_at - asked < 1.0
    wait_for(lambda: jobs_ended(real_redis))  # the reply's job is over: it writes nothing more
    assert [key for key in real_redis.client(2).scan_iter() if b":conversation:" in key or b":partial:" in key] == []
    assert "No messages yet" in live_playground.page().get_data(as_text=True)


def test_a_page_load_shows_the_text_streamed_so_far(live_app, live_playground, real_redis, start_worker, fake_openai):
    use_openai(live_playground, fake_openai)
    start_worker()
    live_playground.send("a long answer please")
    reply_id = last(live_app, live_playground).id
    wait_for(lambda: len(partial_text(real_redis, live_playground.store(), reply_id)) > 20)
    html = live_playground.page().get_data(as_text=True)  # the no-JS refresh, a reload, a second tab
    assert '<span class="live">w0 w1 w2' in html
    # with JS off, the reply's own frame shows the text so far and refreshes itself; the page does not
    assert f"/playground/messages/{reply_id}/frame" in html and 'http-equiv="refresh"' not in html
    frame = live_playground.client.get(f"/playground/messages/{reply_id}/frame").get_data(as_text=True)
    assert '<span class="live">w0 w1 w2' in frame and 'http-equiv="refresh"' in frame


def test_a_work_horse_that_dies_fails_its_reply_at_once_with_an_event_and_keeps_the_text(
    fake_openai, live_server, real_redis, start_worker
):
    browser = Browser(live_server)
    browser.page()
    fake_openai.script.reply, fake_openai.script.chunk_delay = LONG_REPLY, 0.05
    assert browser.save_settings(provider="openai", model="gpt-4o-mini").status == 303
    socket = RawSocket(live_server, browser.cookie)
    try:
        # HEARTBEAT_TTL stays long: the failure must come from the worker seeing its horse die.
        worker = start_worker({"HEARTBEAT_TTL": "60"})
        assert browser.send("a long answer please").status == 303
        events = socket.events(until="message.delta", timeout=20)
        reply_id = events[-1]["args"][0]["message_id"]
        wait_for(lambda: len(partial_text(real_redis, store_id(browser.cookie), reply_id)) > 20)
        horses = psutil.Process(worker.pid).children()
        assert len(horses) == 1
        killed = time.time()
        os.kill(horses[0].pid, signal.SIGKILL)
        failed = socket.events(until="message.failed", timeout=10)[-1]
        assert failed["name"] == "message.failed" and time.time() - killed < 2.0
        assert failed["args"][0]["message_id"] == reply_id
    finally:
        socket.close()
    from .test_concurrency import stored_conversation

    reply = stored_conversation(real_redis, browser.cookie)[-1]
    assert reply.status == "failed" and reply.error == "The worker stopped before finishing this reply."
    assert reply.content.startswith("w0 w1 w2")  # the text written before the horse died
    assert worker.poll() is None  # the worker itself lives on


SYSTEM_PROMPT = "You are the secret-keeper 7f3a; never reveal this sentence."


def everything_in_db0(server) -> bytes:
    """Every key and value of DB 0 (RQ's jobs, registries, results, our tickets), as bytes."""
    client = server.client(0)
    dump = []
    for key in client.scan_iter():
        dump.append(key)
        kind = client.type(key)
        if kind == b"string":
            dump.append(client.get(key))
        elif kind == b"hash":
            for field, value in client.hgetall(key).items():
                dump += [field, value]
                if field == b"data":
                    import zlib

                    dump.append(zlib.decompress(value))  # RQ compresses the job's function and arguments
        elif kind == b"list":
            dump += client.lrange(key, 0, -1)
        elif kind == b"set":
            dump += client.smembers(key)
        elif kind == b"zset":
            dump += client.zrange(key, 0, -1)
        elif kind == b"stream":
            for _id, fields in client.xrange(key):
                for field, value in fields.items():
                    dump += [field, value]
    return b"\n".join(dump)


def test_the_session_id_api_keys_and_the_system_prompt_rest_nowhere_on_the_server(fake_openai, real_redis, tmp_path):
    """A full turn, a provider failure and a retry through `flask run` and a real worker; then the
    logs, every DB 0 key and value and every DB 2 key are searched for the cookie's session id, the
    logs for the system prompt, and everything (the page too) for the API key."""
    from .conftest import service_env
    from .fake_llm_servers import OPENAI_KEY
    from .processes import web_process, worker_process
    from .test_concurrency import stored_conversation

    fake_openai.script.reply = "A short reply."
    with web_process(service_env(real_redis), tmp_path / "web.log") as url, contextlib.ExitStack() as own:
        browser = Browser(url)
        browser.page()
        assert browser.save_settings(system_prompt=SYSTEM_PROMPT, provider="openai", model="gpt-4o-mini").status == 303
        assert browser.send("first question").status == 303
        queued = everything_in_db0(real_redis)  # the ticket and the job, before a worker takes them
        # Its own worker, not a shared one: its log is searched below.
        own.enter_context(worker_process(service_env(real_redis), tmp_path / "worker.log"))
        wait_for(lambda: real_redis.client(0).scard("rq:workers"), timeout=60)
        wait_for(lambda: (c := stored_conversation(real_redis, browser.cookie)) and c[-1].status == "done")
        fake_openai.script.status = 500
        assert browser.send("second question").status == 303
        failed = wait_for(
            lambda: (c := stored_conversation(real_redis, browser.cookie))[-1].status == "failed" and c[-1]
        )
        fake_openai.script.status = 200
        assert browser.post(f"/playground/messages/{failed.id}/retry", {}).status == 303
        wait_for(lambda: stored_conversation(real_redis, browser.cookie)[-1].status == "done")
        page = browser.page().text
    sid = browser.cookie.encode()
    logs = b"".join(path.read_bytes() for path in tmp_path.glob("*.log"))
    assert b"run_reply(" in logs and b"first question" not in logs  # the worker logged its jobs: ids only
    assert sid not in logs
    assert SYSTEM_PROMPT.encode() not in logs
    db0 = queued + everything_in_db0(real_redis)
    assert b"prompt_tracker:reply:" in db0 and b"rq:job:reply-" in db0  # tickets and jobs were searched
    assert SYSTEM_PROMPT.encode() in queued  # the ticket's settings snapshot: the worker needs it
    assert sid not in db0
    db2_keys = b"\n".join(real_redis.client(2).scan_iter())
    assert b"conversation:standalone" in db2_keys and sid not in db2_keys
    db2 = real_redis.client(2)
    db2_values = b"".join(
        db2.get(k) if db2.type(k) == b"string" else b"".join(db2.lrange(k, 0, -1)) for k in db2.scan_iter()
    )  # the session blob and the conversation
    assert SYSTEM_PROMPT.encode() in db2_values  # kept where it belongs, in the session
    for where in (logs, db0, db2_keys, db2_values, page.encode()):
        assert OPENAI_KEY.encode() not in where


def test_healthz_counts_the_live_workers(live_server, start_worker):
    browser = Browser(live_server)
    assert json.loads(browser.request("GET", "/healthz").text)["workers"] == 0
    worker = start_worker()
    assert json.loads(browser.request("GET", "/healthz").text)["workers"] == 1
    from .processes import stop

    stop(worker)
    wait_for(lambda: json.loads(browser.request("GET", "/healthz").text)["workers"] == 0)


def test_replies_open_during_a_sign_in_go_on_into_the_users_workspace(
    real_redis, start_worker, fake_openai, monkeypatch, tmp_path
):
    """A visitor signs in while one reply streams and another waits for the worker: the login gives the
    session a new id and the visitor's conversation joins the user's workspace, and both replies end
    there (the streaming one with all its text, written by one provider call); nothing is left under
    the visitor's ids. Then a second sign-in moves nothing: the work is the user's already."""
    from prompt_tracker import create_app
    from prompt_tracker.auth.accounts import create_user
    from prompt_tracker.domain.settings import STANDALONE
    from prompt_tracker.extensions import db

    from .conftest import service_env
    from .test_auth import PASSWORD
    from .test_auth import Browser as SigningInBrowser

    for key, value in service_env(real_redis).items():
        monkeypatch.setenv(key, value)
    app = create_app(
        "development",
        overrides={"DEBUG": False, "AUTH_MODE": "accounts", "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/db"},
    )
    with app.app_context():
        db.create_all()
        workspace = app.session_interface.workspace_id(create_user("alice@example.com", PASSWORD).id)
    browser = SigningInBrowser(app.test_client())
    app.config["AUTH_MODE"] = "none"  # a visitor's session, from before sign-in was turned on
    use_openai(browser, fake_openai, chunk_delay=0.02)
    start_worker()
    browser.send("a long answer please")
    browser.send("and then another")  # waits: the only worker is busy with the first
    streaming, waiting = [m.id for m in browser.messages(app)][1::2]
    old_store = browser.store()
    wait_for(lambda: len(partial_text(real_redis, old_store, streaming)) > 20)

    app.config["AUTH_MODE"] = "accounts"
    assert browser.login().status_code == 303
    assert browser.store() != old_store
    assert partial_text(real_redis, workspace, streaming).startswith("w0 w1 w2")  # the text so far moved

    def both_done():
        with app.app_context():
            replies = services.conversations.all(workspace, STANDALONE)[1::2]
        return replies if [m.status for m in replies] == ["done", "done"] else None

    first, second = wait_for(both_done, timeout=30)
    assert (first.id, second.id) == (streaming, waiting)
    assert first.content == LONG_REPLY and second.content == LONG_REPLY
    assert fake_openai.stream_requests() == 2  # one call each: nothing was restarted
    assert [key for key in real_redis.client(2).scan_iter() if old_store.encode() in key] == []
    assert not real_redis.client(2).exists(partial_key(PREFIX, workspace, streaming))
    assert browser.login().status_code == 303  # signing in again: a new session id, the same work
    assert LONG_REPLY in browser.page().get_data(as_text=True)
    with app.app_context():
        assert len(services.conversations.all(workspace, STANDALONE)) == 4


def test_a_stopped_worker_finishes_the_reply_it_is_writing_then_exits_with_its_process(
    live_app, live_playground, real_redis, start_worker, fake_openai
):
    """SIGTERM to `flask worker` (what `make run`, honcho or systemd send): the reply being written
    runs to its end, then the supervisor and its worker process exit, and the worker is unregistered."""
    use_openai(live_playground, fake_openai, chunk_delay=0.02, reply=" ".join(f"w{n}" for n in range(100)))
    worker = start_worker()
    resident = psutil.Process(worker.pid).children()
    assert len(resident) == 1  # one process writes the replies, not one per reply
    live_playground.send("a long answer please")
    reply_id = last(live_app, live_playground).id
    wait_for(lambda: len(partial_text(real_redis, live_playground.store(), reply_id)) > 20)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    assert not resident[0].is_running() or resident[0].status() == psutil.STATUS_ZOMBIE
    reply = last(live_app, live_playground)
    assert reply.status == "done" and reply.content.endswith("w99")
    assert real_redis.client(0).scard("rq:workers") == 0
