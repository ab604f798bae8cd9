"""Concurrency on the real path: many requests of one session at once over real HTTP, two tabs,
Reset racing a reply being written, and a purge racing live traffic.

The first part of this module holds the real-HTTP helpers the other integration modules
(test_faults, test_scale_out, test_hostile_input, test_limits) import: a ``Browser`` tab speaking
http.client with its own cookie, web server processes, and readers of what Redis holds.
"""

import http.client
import threading
import time
import urllib.parse
from http.cookies import SimpleCookie
from typing import NamedTuple

import msgspec
import pytest
from rq import Queue
from rq.serializers import JSONSerializer

from prompt_tracker.domain.keys import conversation_key, session_key, store_id
from prompt_tracker.domain.messages import Message, decode_message
from prompt_tracker.domain.settings import STANDALONE

from .conftest import COOKIE, CSRF_RE, service_env, wait_for
from .redis_server import RedisServer

pytestmark = pytest.mark.integration

PREFIX = "prompt_tracker:session:"
SETTINGS = {"system_prompt": "", "provider": "echo", "model": "echo-1", "temperature": "0.7", "max_tokens": "1024"}


# --- helpers shared by the real-HTTP tests ---------------------------------------------------


class Answer(NamedTuple):
    """One HTTP response, read whole."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class Browser:
    """One browser tab over real HTTP: a session cookie, the page's CSRF token; redirects are not followed."""

    def __init__(self, base_url: str, cookie: str | None = None, token: str | None = None):
        parts = urllib.parse.urlsplit(base_url)
        self.base_url = base_url
        self.host, self.port = parts.hostname, parts.port
        self.cookie = cookie
        self.token = token

    def tab(self, base_url: str | None = None) -> "Browser":
        """Another tab of the same browser (same cookie and token), optionally on another web process."""
        return Browser(base_url or self.base_url, self.cookie, self.token)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> Answer:
        """Send one request on a fresh connection; remember the session cookie the answer sets."""
        headers = dict(headers or {})
        if self.cookie and "Cookie" not in headers:
            headers["Cookie"] = f"{COOKIE}={self.cookie}"
        connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            answer = Answer(response.status, response.headers, response.read())
        finally:
            connection.close()
        for header in answer.headers.get_all("Set-Cookie") or []:
            jar = SimpleCookie()
            jar.load(header)
            if COOKIE in jar:
                self.cookie = jar[COOKIE].value or None
        return answer

    def page(self, query: str = "") -> Answer:
        """GET the playground and keep its CSRF token."""
        answer = self.request("GET", "/playground" + query)
        match = CSRF_RE.search(answer.text)
        if match:
            self.token = match.group(1)
        return answer

    def post(self, path: str, fields: dict, headers: dict | None = None) -> Answer:
        """POST a form with the page's CSRF token (loading the page first if needed)."""
        if self.token is None:
            self.page()
        body = urllib.parse.urlencode({**fields, "csrf_token": self.token}).encode()
        return self.request(
            "POST", path, body, {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
        )

    def send(self, content: str, headers: dict | None = None) -> Answer:
        return self.post("/playground/messages", {"content": content}, headers)

    def save_settings(self, **fields) -> Answer:
        return self.post("/playground/settings", {**SETTINGS, **{key: str(value) for key, value in fields.items()}})

    def reset(self) -> Answer:
        return self.post("/playground/reset", {})


def stored_conversation(server: RedisServer, sid: str, playground: str = STANDALONE) -> list[Message]:
    """The conversation as DB 2 holds it, oldest first."""
    key = conversation_key(PREFIX, store_id(sid), playground)
    return [decode_message(raw) for raw in server.client(2).lrange(key, 0, -1)]


def stored_blob(server: RedisServer, sid: str) -> dict | None:
    """The session blob as DB 2 holds it (decoded msgpack), or None."""
    raw = server.client(2).get(session_key(PREFIX, store_id(sid)))
    return None if raw is None else msgspec.msgpack.decode(raw)


def stored_system_prompt(server: RedisServer, sid: str) -> str | None:
    """The standalone playground's system prompt in the stored blob."""
    return ((stored_blob(server, sid) or {}).get("settings") or {}).get(STANDALONE, {}).get("system_prompt")


def session_keys(server: RedisServer) -> set[str]:
    """Every session key of DB 2."""
    return {key.decode() for key in server.client(2).scan_iter(match=PREFIX + "*", count=1000)}


def all_done(server: RedisServer, sid: str, expected: int) -> list[Message] | None:
    """The conversation once it holds ``expected`` messages and none is still open."""
    messages = stored_conversation(server, sid)
    return messages if len(messages) == expected and not any(m.is_open for m in messages) else None


def jobs_queue(server: RedisServer) -> Queue:
    """The RQ queue of the workers, on DB 0 of ``server``."""
    return Queue("prompt_tracker", connection=server.client(0), serializer=JSONSerializer)


def start_workers(start_worker, server: RedisServer, count: int, extra_env: dict | None = None) -> None:
    """Start ``count`` real workers and wait until all of them listen on the queue."""
    from rq import Worker

    for _ in range(count):
        start_worker(extra_env)
    wait_for(lambda: Worker.count(connection=server.client(0)) == count, timeout=20)


def web_env(sessions: RedisServer, jobs: RedisServer | None = None) -> dict:
    """Environment of a web process: sessions (DB 2) on ``sessions``, jobs and Socket.IO (DB 0/1) on ``jobs``."""
    jobs = jobs or sessions
    env = service_env(sessions)
    env.update(RQ_REDIS_URL=jobs.url(0), SOCKETIO_MESSAGE_QUEUE=jobs.url(1))
    return env


def run_together(*tasks, timeout: float = 60) -> list:
    """Run callables in threads started at the same moment; return their results, re-raising any error."""
    barrier = threading.Barrier(len(tasks))
    results: list = [None] * len(tasks)
    errors: list = []

    def run(index, task):
        try:
            barrier.wait(10)
            results[index] = task()
        except BaseException as error:  # reported in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(index, task), daemon=True) for index, task in enumerate(tasks)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(thread.is_alive() for thread in threads), "a request thread did not finish in time"
    if errors:
        raise errors[0]
    return results


def assert_turns_in_order(messages: list[Message]) -> None:
    """Each user message is followed by its own finished reply (the echo names that message and its turn)."""
    for turn, (sent, reply) in enumerate(zip(messages[::2], messages[1::2]), start=1):
        assert (sent.role, reply.role) == ("user", "assistant"), f"turn {turn} is not user then assistant"
        assert reply.status == "done", f"turn {turn}: {reply.status} {reply.error}"
        assert reply.content == f"You said: {sent.content}\n\n(turn {turn})"


# --- 50 sends at once, two tabs --------------------------------------------------------------


def test_50_concurrent_sends_on_one_session_keep_every_message_and_reply_in_order(
    live_server, real_redis, start_worker
):
    """50 POSTs of one session at the same moment: 50 messages, 50 replies, each reply right after its message."""
    start_workers(start_worker, real_redis, 2)
    browser = Browser(live_server)
    browser.page()
    sid = browser.cookie
    contents = [f"message {number:02d}" for number in range(50)]

    answers = run_together(*(lambda content=content: browser.tab().send(content) for content in contents))

    assert [answer.status for answer in answers] == [303] * 50
    messages = wait_for(lambda: all_done(real_redis, sid, 100), timeout=30)
    assert sorted(message.content for message in messages[::2]) == contents
    assert_turns_in_order(messages)
    assert browser.cookie == sid
    assert "100 messages" in browser.page().text
    # RQ records a job finished after it returns, so just after the last reply's final record.
    wait_for(lambda: jobs_queue(real_redis).finished_job_registry.count == 50, timeout=10)


def test_two_tabs_never_overwrite_each_others_settings(live_server, real_redis):
    """Tab A saves its system prompt again and again while tab B resets, sends and reloads: A's prompt always stays."""
    tab_a = Browser(live_server)
    tab_a.page()
    tab_b = tab_a.tab()
    sid = tab_a.cookie
    rounds = 25
    lost = []

    def save_in_a():
        for number in range(rounds):
            assert tab_a.save_settings(system_prompt=f"prompt of A #{number}").status == 303
            # Only A writes settings: whatever B wrote meanwhile, A's latest must be what is stored.
            if stored_system_prompt(real_redis, sid) != f"prompt of A #{number}":
                lost.append((number, stored_system_prompt(real_redis, sid)))

    def reset_and_send_in_b():
        statuses = []
        for number in range(rounds):
            statuses += [tab_b.reset().status, tab_b.send(f"first message #{number}").status, tab_b.page().status]
        return statuses

    _, statuses = run_together(save_in_a, reset_and_send_in_b)

    assert statuses == [303, 303, 200] * rounds
    assert lost == []
    assert f"prompt of A #{rounds - 1}</textarea>" in tab_a.page().text
    assert stored_conversation(real_redis, sid)[0].content == f"first message #{rounds - 1}"
    assert tab_a.cookie == tab_b.cookie == sid


# --- Reset racing a reply, purge racing traffic ---------------------------------------------


def test_a_reply_being_written_never_reappears_after_reset(live_app, live_playground, real_redis, start_worker):
    """Reset at different moments of a slow reply; the next message's conversation holds only itself and its reply."""
    start_worker({"ECHO_DELAY": "0.05"})
    long_message = " ".join(f"word{number}" for number in range(8))
    queue = jobs_queue(real_redis)
    for round_number, delay in enumerate((0.0, 0.02, 0.1, 0.2, 0.35)):
        live_playground.send(f"round {round_number} {long_message}")
        time.sleep(delay)
        assert live_playground.reset().status_code == 303
        live_playground.send(f"after reset {round_number}")
        sid = live_playground.sid()
        # One worker runs the jobs in order: when the second is done, the first has ended too.
        wait_for(lambda: queue.finished_job_registry.count == 2 * (round_number + 1), timeout=15)
        sent, reply = stored_conversation(real_redis, sid)
        assert sent.content == f"after reset {round_number}"
        assert (reply.status, reply.content) == ("done", f"You said: after reset {round_number}\n\n(turn 1)")
        live_playground.reset()
    assert queue.failed_job_registry.count == 0


def test_purge_racing_live_traffic_loses_no_other_session(live_server, live_app, real_redis):
    """`flask sessions purge --sid` and `--idle-for` run while four other sessions send and reload: only the targets go."""
    runner = live_app.test_cli_runner()
    db2 = real_redis.client(2)
    victims = []
    for number in range(6):
        victim = Browser(live_server)
        victim.send(f"victim {number}")
        victims.append(victim.cookie)
    for sid in victims[3:]:  # idle for 2 h: what --idle-for 1h removes
        for key in db2.scan_iter(match=f"{PREFIX}{{{store_id(sid)}}}*"):
            db2.expire(key, 22 * 3600)
    users = [Browser(live_server) for _ in range(4)]
    for number, user in enumerate(users):
        assert user.save_settings(system_prompt=f"user {number}").status == 303
    sends = 12
    finished = []

    def traffic(user):
        def run():
            try:
                for number in range(sends):
                    assert user.send(f"live {number}").status == 303
                    assert user.page().status == 200
            finally:
                finished.append(user)

        return run

    def purges():
        outputs = [runner.invoke(args=["sessions", "purge", f"--sid={sid}", "--yes"]).output for sid in victims[:3]]
        outputs.append(runner.invoke(args=["sessions", "purge", "--idle-for", "1h", "--yes"]).output)
        while len(finished) < len(users):  # and again, as long as the traffic lasts
            outputs.append(runner.invoke(args=["sessions", "purge", "--idle-for", "1h", "--yes"]).output)
        return outputs

    *_, outputs = run_together(*map(traffic, users), purges)

    assert [output.split(" (")[0] for output in outputs[:4]] == ["Purged 1 session"] * 3 + [
        "Purged 3 sessions idle for at least 1h00m"
    ]
    assert set(outputs[4:]) <= {"Nothing to purge: no session idle for at least 1h00m is stored.\n"}
    for number, user in enumerate(users):
        messages = stored_conversation(real_redis, user.cookie)
        assert [m.content for m in messages if m.role == "user"] == [f"live {n}" for n in range(sends)]
        assert stored_system_prompt(real_redis, user.cookie) == f"user {number}"
    assert not any(f"{{{store_id(sid)}}}" in key for key in session_keys(real_redis) for sid in victims)
