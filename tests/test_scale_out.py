"""Scale-out on one Redis: two web processes (`flask run` and the Procfile's gunicorn) and two RQ workers side by side.

Sessions, jobs and the Socket.IO fan-out all go through the one Redis, so a browser may land on either
web process for any request and every job runs once, on whichever worker takes it.
"""

import pytest
from rq.job import Job
from rq.serializers import JSONSerializer

from .conftest import wait_for
from .processes import web_process
from .test_concurrency import Browser, all_done, assert_turns_in_order, jobs_queue, run_together, start_workers, web_env
from .test_live_events import RawSocket

pytestmark = pytest.mark.integration


@pytest.fixture
def two_webs(real_redis, web_pool):
    """URLs of web A (`flask run`, threaded) and web B (the Procfile's gunicorn, gevent), both on the private Redis
    (shared with the other tests of their environment, like ``live_server``)."""
    env = web_env(real_redis)
    return web_pool.url(env, "flask"), web_pool.url(env, "production")


def test_a_conversation_begun_on_web_a_continues_on_web_b(two_webs, real_redis, start_worker):
    """Same cookie, other process: B shows A's turn, and B's turn is answered with A's turn in its history."""
    web_a, web_b = two_webs
    start_workers(start_worker, real_redis, 2)
    on_a = Browser(web_a)
    assert on_a.send("begun on A").status == 303
    wait_for(lambda: all_done(real_redis, on_a.cookie, 2))
    on_b = on_a.tab(web_b)
    page = on_b.page()
    assert page.status == 200 and "begun on A" in page.text and "2 messages" in page.text
    assert on_b.send("continued on B").status == 303
    messages = wait_for(lambda: all_done(real_redis, on_a.cookie, 4))
    assert [m.content for m in messages[::2]] == ["begun on A", "continued on B"]
    assert_turns_in_order(messages)  # B's reply says "(turn 2)": it saw the turn sent through A
    assert "4 messages" in on_a.page().text
    assert on_a.cookie == on_b.cookie


def test_events_of_a_turn_posted_on_web_a_reach_a_socket_on_web_b_once(two_webs, real_redis, start_worker):
    """Worker → Redis DB 1 → both web processes; the socket on B gets each event of the turn exactly once."""
    web_a, web_b = two_webs
    on_a = Browser(web_a)
    on_a.page()
    socket = RawSocket(web_b, on_a.cookie)
    try:
        assert socket.connected
        start_workers(start_worker, real_redis, 2)
        answer = on_a.send("streamed to B", headers={"Accept": "application/json"})
        assert answer.status == 202
        received = socket.events(until="message.done")
        # A settings save's event reaches the socket through the same queue after any repeat of the turn's.
        assert on_a.save_settings().status == 303
        received += socket.events(until="settings.saved")
    finally:
        socket.close()
    assert received.pop()["name"] == "settings.saved"
    names = [event["name"] for event in received]
    assert names[0] == "message.appended" and names[1] == "message.started" and names.count("message.started") == 1
    assert names.count("message.done") == 1
    text = "".join(event["args"][0]["text"] for event in received if event["name"] == "message.delta")
    assert text == "You said: streamed to B\n\n(turn 1)"
    reply = all_done(real_redis, on_a.cookie, 2)[1]
    assert {event["args"][0]["id"] for event in received[1:]} == {reply.id}


def test_sends_through_both_webs_at_once_each_run_exactly_once(two_webs, real_redis, start_worker):
    """20 sends of one session, half through A and half through B at once: 20 replies, 20 finished jobs, one run each."""
    web_a, web_b = two_webs
    # Replies that take a moment (about 0.1 s), so that one worker cannot drain all twenty before the
    # other takes one: "both workers took jobs" below must not depend on the machine's speed.
    start_workers(start_worker, real_redis, 2, {"ECHO_DELAY": "0.02"})
    on_a = Browser(web_a)
    on_a.page()
    on_b = on_a.tab(web_b)
    contents = [f"via {'AB'[number % 2]} {number:02d}" for number in range(20)]
    tabs = [on_a, on_b]

    answers = run_together(
        *(
            lambda number=number, content=content: tabs[number % 2].tab().send(content)
            for number, content in enumerate(contents)
        )
    )

    assert [answer.status for answer in answers] == [303] * 20
    messages = wait_for(lambda: all_done(real_redis, on_a.cookie, 40), timeout=30)
    assert sorted(m.content for m in messages[::2]) == sorted(contents)
    assert_turns_in_order(messages)
    queue = jobs_queue(real_redis)
    # A job writes its reply before RQ files it as finished: wait for the registry, not the reply.
    finished = wait_for(lambda: (ids := queue.finished_job_registry.get_job_ids()) and len(ids) >= 20 and ids)
    assert len(finished) == 20 and queue.failed_job_registry.count == 0
    runs = {
        job_id: len(Job.fetch(job_id, connection=real_redis.client(0), serializer=JSONSerializer).results())
        for job_id in finished
    }
    assert runs == dict.fromkeys(finished, 1)
    workers = {
        Job.fetch(job_id, connection=real_redis.client(0), serializer=JSONSerializer).worker_name for job_id in finished
    }
    assert len(workers) == 2  # both workers took jobs


def test_the_procfile_web_runs_web_concurrency_gevent_workers_default_2(monkeypatch):
    """Several gevent workers per host (Flask-SocketIO's way with the message queue and WebSocket only),
    each allowed more connections than the fd limit of a default shell would."""
    from .processes import procfile_command

    command = procfile_command("web", 8000, env={})
    options = dict(zip(command, command[1:]))
    assert options["--worker-class"] == "gevent" and options["-w"] == "2"
    assert int(options["--worker-connections"]) >= 10_000
    assert procfile_command("web", 8000, env={"WEB_CONCURRENCY": "4"})[command.index("-w") + 1] == "4"


def test_the_production_web_serves_from_several_processes(real_redis, tmp_path):
    """The Procfile's web is a gunicorn master and WEB_CONCURRENCY (2) workers, all serving one port."""
    import subprocess

    from .conftest import service_env

    env = service_env(real_redis)
    with web_process(env, tmp_path / "web.log", "production") as url:
        port = url.rsplit(":", 1)[1]
        listeners = subprocess.run(
            ["ss", "-tlnpH", f"( sport = :{port} )"], capture_output=True, text=True, check=True
        ).stdout
        assert listeners.count("pid=") >= 3, listeners  # the master and two workers share the socket
