"""A reply being written when something else happens to it: a Delete, a Retry while its old worker
still lives, a Stop while the model thinks. Unit tests: fakeredis, jobs run inline (or in a thread
playing a worker), a scripted provider or the fake Anthropic server."""

import threading

import pytest

from prompt_tracker.domain.settings import STANDALONE
from prompt_tracker.extensions import services
from prompt_tracker.providers import Usage
from prompt_tracker.replies import control
from prompt_tracker.replies import reply as reply_module
from prompt_tracker.store.edits import delete_message
from prompt_tracker.store.tickets import read_ticket

from .conftest import wait_for


class ScriptedStream:
    """One provider call: yields ``pieces``, running ``before(index)`` ahead of each; records how far it got."""

    def __init__(self, pieces, before=None, after_close=None):
        self.pieces = pieces
        self.before = before or (lambda index: None)
        self.after_close = after_close or (lambda: None)
        self.yielded = 0
        self.closed_early = False

    def __call__(self, request):
        try:
            for index, piece in enumerate(self.pieces):
                self.before(index)
                yield piece
                self.yielded += 1
            yield Usage(input_tokens=1, output_tokens=len(self.pieces))
        except GeneratorExit:
            self.closed_early = True  # the worker closed the stream (Stop, Reset, Delete)
            raise
        finally:
            self.after_close()


class ScriptedProvider:
    """Stands in for a provider: each call streams the next ``ScriptedStream``."""

    def __init__(self, *streams):
        self.streams = list(streams)

    def stream(self, request):
        return self.streams.pop(0)(request)


@pytest.fixture
def every_delta_flushed(monkeypatch):
    """Flush after every delta, so that each step of a scripted stream is one flush."""
    monkeypatch.setattr(reply_module, "FLUSH_SECONDS", 0)


def use_provider(monkeypatch, *streams) -> None:
    provider = ScriptedProvider(*streams)
    monkeypatch.setattr(reply_module, "get_provider", lambda name: provider)


def test_deleting_a_message_whose_reply_is_being_written_stops_the_reply(
    app, playground, monkeypatch, every_delta_flushed
):
    """Delete stops an open reply as Edit and Reset do: the provider stream closes at the next flush,
    the reply leaves the open set (its slot is free again) and its partial text goes at once."""
    playground.send("kept")
    store = playground.store()
    deleted = {}

    def delete_the_question(index):
        if index == 3:
            question, reply = services.conversations.all(store, STANDALONE)[-2:]
            assert services.conversations.open_replies(store) == [(STANDALONE, reply.id)]
            assert delete_message(services.conversations, store, STANDALONE, question.id) == 2
            deleted["reply"] = reply.id

    stream = ScriptedStream([f" w{number}" for number in range(100)], before=delete_the_question)
    use_provider(monkeypatch, stream)
    assert playground.send("deleted while answered").status_code == 303

    assert stream.closed_early and stream.yielded == 3  # the flush after the Delete ended it
    assert [m.content for m in playground.messages(app)][:1] == ["kept"] and len(playground.messages(app)) == 2
    with app.app_context():
        conversations = services.conversations
        assert conversations.open_replies(store) == []
        assert not services.session_redis.exists(conversations.partial_key(store, deleted["reply"]))
        assert read_ticket(deleted["reply"]) is None


def test_a_retry_of_a_reply_that_looked_dead_never_mixes_two_streams(app, playground, monkeypatch, every_delta_flushed):
    """Attempt 1's worker lost its heartbeat but still lives; Retry starts attempt 2. The old worker's
    flushes go nowhere (the partial shows attempt 2's text only) and it stops; attempt 2 ends done."""
    playground.page()
    store = playground.store()
    with app.app_context():
        queue = services.queue
    enqueue = queue.enqueue
    monkeypatch.setattr(queue, "enqueue", lambda *args, **kwargs: None)  # attempt 1: run by hand below
    playground.send("question")
    reply_id = playground.messages(app)[-1].id
    retried, old_worker_went_on = threading.Event(), threading.Event()
    partial_during_attempt_2 = {}

    def old_worker_waits_for_the_retry(index):
        if index == 1:
            assert retried.wait(10)
        if index == 2:
            old_worker_went_on.set()

    def new_worker_lets_the_old_one_flush(index):
        if index == 1:
            retried.set()
            assert old_worker_went_on.wait(10)
            partial_during_attempt_2["text"] = services.conversations.partial(store, reply_id)

    old = ScriptedStream(
        ["old0", " old1", " old2", " old3"], before=old_worker_waits_for_the_retry, after_close=old_worker_went_on.set
    )
    new = ScriptedStream(["new0", " new1", " new2"], before=new_worker_lets_the_old_one_flush)
    use_provider(monkeypatch, old)
    outcome = {}

    def old_worker():  # no heartbeat: the page shows this reply as dead
        with app.app_context():
            ticket = read_ticket(reply_id)
            outcome["old"], _ = reply_module.write_reply(store, STANDALONE, reply_id, 1, ticket.settings, ticket.user)

    thread = threading.Thread(target=old_worker)
    thread.start()
    with app.app_context():
        wait_for(lambda: services.conversations.partial(store, reply_id) == "old0")
    monkeypatch.setattr(queue, "enqueue", enqueue)  # attempt 2 runs inline, in the Retry request
    use_provider(monkeypatch, new)
    assert playground.retry(reply_id).status_code == 303
    thread.join(10)

    assert partial_during_attempt_2 == {"text": "new0"}
    assert old.closed_early and old.yielded == 1 and outcome == {"old": "dropped"}
    final = playground.messages(app)[-1]
    assert (final.status, final.attempt, final.content) == ("done", 2, "new0 new1 new2")
    assert [(a.attempt, a.content) for a in final.alternatives] == [(1, "old0")]


def test_stop_during_anthropic_extended_thinking_closes_the_stream_before_any_text(app, playground, fake_anthropic):
    """The provider sends no text while the model thinks: Stop must still be seen there (checked on
    every event of the stream, not only when text is flushed)."""
    fake_anthropic.script.thinking = " ".join(f"t{number}" for number in range(200))
    fake_anthropic.script.chunk_delay = 0.02
    fake_anthropic.script.reply = "The answer."
    assert (
        playground.save_settings(
            provider="anthropic", model="claude-sonnet-4-6", max_tokens=4096, thinking_budget=2048
        ).status_code
        == 303
    )
    store = playground.store()

    def stop_once_streaming():
        with app.app_context():
            reply = wait_for(
                lambda: next(
                    (m for m in services.conversations.all(store, STANDALONE) if m.status == "streaming"), None
                )
            )
            control.request_stop(store, STANDALONE, reply.id)

    stopper = threading.Thread(target=stop_once_streaming)
    stopper.start()
    assert playground.send("think hard").status_code == 303  # the job runs inline, in this request
    stopper.join(10)

    reply = playground.messages(app)[-1]
    assert reply.status == "stopped" and reply.content == ""
    assert fake_anthropic.wait_for_disconnect()
    thinking_frames = 1 + 200 + 2  # message_start, then the thinking block's deltas; text comes after
    assert fake_anthropic.progress.chunks_sent < thinking_frames
