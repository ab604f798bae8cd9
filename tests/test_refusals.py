"""Refusals: one exception family (status and sentence) and one handler that answers it as the page or JSON."""

import pytest

from prompt_tracker.domain.refusals import Refused
from prompt_tracker.domain.settings import StaleSettings
from prompt_tracker.limits import TooManySends
from prompt_tracker.limits.budget import BudgetExceeded
from prompt_tracker.limits.models import ModelNotAllowed
from prompt_tracker.prompts.variables import TemplateProblem
from prompt_tracker.replies.choice import InvalidChoice
from prompt_tracker.replies.context import MayNotFit
from prompt_tracker.replies.edit import MessageGone
from prompt_tracker.replies.replay import NothingToReplay, ReplayRunning
from prompt_tracker.replies.send import DuplicateSend, InvalidMessage, QueueUnavailable, UnknownProvider
from prompt_tracker.store.conversations import ConversationFull, TooManyOpenReplies
from prompt_tracker.store.edits import NotAUserMessage, UnconfirmedRemoval
from prompt_tracker.store.transfer import ImportRefused
from prompt_tracker.web.errors import refusals_shown_by

JSON = {"Accept": "application/json"}


@pytest.mark.parametrize(
    ("refusal", "status"),
    [
        (TooManySends("x"), 429),
        (TooManyOpenReplies("x"), 429),
        (BudgetExceeded("x"), 429),
        (ModelNotAllowed("x"), 422),
        (ConversationFull("x"), 422),
        (InvalidMessage("x"), 422),
        (InvalidChoice("x"), 422),
        (UnknownProvider("x"), 422),
        (TemplateProblem("x"), 422),
        (NothingToReplay("x"), 422),
        (ImportRefused("x"), 422),
        (MayNotFit("x"), 409),
        (ReplayRunning("x"), 409),
        (StaleSettings(), 409),
        (NotAUserMessage(), 409),
        (UnconfirmedRemoval(2), 409),
        (MessageGone(), 404),
        (QueueUnavailable("x"), 503),
        (DuplicateSend(), 200),
    ],
)
def test_every_refusal_is_a_refused_with_its_status(refusal, status):
    assert isinstance(refusal, Refused)
    assert refusal.status == status


def test_a_status_can_be_given_and_builtin_bases_are_kept():
    assert InvalidMessage("x", 400).status == 400  # an edit's text is refused as 400
    assert isinstance(TemplateProblem("x"), ValueError) and isinstance(MessageGone(), LookupError)
    assert str(ReplayRunning("A replay is still running.")) == "A replay is still running."


@pytest.fixture
def refusing_app(app):
    """The test app with two views that refuse: one with a page of its own for refusals, one without."""

    @app.post("/refuse/plain")
    def refuse_plain():
        raise ReplayRunning("A replay is still running: stop it first.")

    @app.post("/refuse/page")
    @refusals_shown_by(lambda refusal: (f"page says: {refusal.sentence}", refusal.status))
    def refuse_with_page():
        raise TooManyOpenReplies("Too many open replies.")

    app.config["WTF_CSRF_ENABLED"] = False
    return app


def test_the_handler_answers_json_when_the_script_asks_for_it(refusing_app):
    client = refusing_app.test_client()
    response = client.post("/refuse/page", headers=JSON)
    assert response.status_code == 429
    assert response.get_json() == {"error": "Too many open replies."}
    response = client.post("/refuse/plain", headers=JSON)
    assert response.status_code == 409
    assert response.get_json() == {"error": "A replay is still running: stop it first."}


def test_the_handler_answers_a_page_otherwise(refusing_app):
    client = refusing_app.test_client()
    response = client.post("/refuse/page", headers={"Accept": "text/html"})
    assert response.status_code == 429
    assert response.get_data(as_text=True) == "page says: Too many open replies."
    # A view without a page of its own: the error page, with the status and the sentence.
    response = client.post("/refuse/plain", headers={"Accept": "text/html"})
    assert response.status_code == 409
    html = response.get_data(as_text=True)
    assert "A replay is still running: stop it first." in html and "(409)" in html


def test_a_json_refusal_carries_its_details():
    assert MayNotFit("It may not fit.").json() == {"error": "It may not fit.", "overflow": True}
    assert DuplicateSend().json() == {"duplicate": True}
    removal = UnconfirmedRemoval(1)
    assert removal.json() == {
        "error": "Resending removes the 1 message after this one: press Resend again to confirm.",
        "removes": 1,
    }
    assert removal.sentence == "Resending removes the 1 message after this one: tick the box to confirm."


def broken_template(playground):
    assert playground.save_settings(system_prompt="Hello {{ customer }}").status_code == 303


def test_a_refused_send_without_script_keeps_the_typed_text(app, playground):
    broken_template(playground)
    response = playground.send("my carefully typed <message>")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Fill in the variable customer before sending." in html
    assert "my carefully typed &lt;message&gt;</textarea>" in html  # in the composer, escaped
    assert playground.messages(app) == []


def test_a_refused_send_from_the_script_is_json(app, playground):
    broken_template(playground)
    response = playground.send("typed", headers=JSON)
    assert response.status_code == 422
    assert response.get_json() == {"error": "Fill in the variable customer before sending."}
    # The page's script asks for its refusals as a 200 with the status in a header (Chromium logs a
    # fetch's 4xx as a console error): the same sentence; the status where static/requests.js reads it.
    quiet = playground.send("typed", headers={**JSON, "Prompt-Tracker-Refusals": "200"})
    assert quiet.status_code == 200 and quiet.headers["Prompt-Tracker-Status"] == "422"
    assert quiet.get_json() == {"error": "Fill in the variable customer before sending."}
    page = playground.send("typed", headers={"Prompt-Tracker-Refusals": "200"})  # a page stays a 422
    assert page.status_code == 422 and "Prompt-Tracker-Status" not in page.headers


def test_a_refused_retry_without_script_flashes_and_goes_back(app, playground):
    playground.send("hello")
    reply = playground.messages(app)[-1]
    broken_template(playground)
    response = playground.retry(reply.id)
    assert response.status_code == 303
    with playground.client.session_transaction() as session:
        assert ("error", "Fill in the variable customer before sending.") in session["_flashes"]
    response = playground.client.post(
        f"/playground/messages/{reply.id}/retry", data={"csrf_token": playground.token()}, headers=JSON
    )
    assert response.status_code == 422  # a template problem is 422 here too (it was 503)


def test_a_refused_replay_forgets_its_submission_so_the_form_can_be_sent_again(app, playground):
    form = {"provider": "echo", "model": "echo-1", "client_token": "replay-token-1"}
    refused = playground.client.post("/playground/replay", data={**form, "csrf_token": playground.token()})
    assert refused.status_code == 422 and "Nothing to replay" in refused.get_data(as_text=True)
    playground.send("now there is a turn")
    started = playground.client.post("/playground/replay", data={**form, "csrf_token": playground.token()})
    assert started.status_code == 303
    again = playground.client.post("/playground/replay", data={**form, "csrf_token": playground.token()}, headers=JSON)
    assert again.status_code == 200 and again.get_json() == {"duplicate": True}  # started once


@pytest.fixture
def queue_down(app, monkeypatch):
    """The jobs Redis refuses every enqueue (the replies are stored, then marked failed)."""
    import redis

    from prompt_tracker.extensions import services

    with app.app_context():
        queue = services.queue

    def unreachable(*args, **kwargs):
        raise redis.ConnectionError("Connection refused")

    monkeypatch.setattr(queue, "enqueue", unreachable)


def test_a_send_stored_but_not_queued_is_503_for_the_script_and_the_session_keeps_the_playground(
    app, playground, queue_down
):
    playground.page()
    response = playground.send("keep me", headers=JSON)
    assert response.status_code == 503 and "could not be queued" in response.get_json()["error"]
    assert playground.messages(app)[0].content == "keep me"
    with playground.client.session_transaction() as session:
        assert "standalone" in session.playgrounds()


def test_a_replay_started_but_not_queued_is_recorded_and_says_so(app, playground, queue_down):
    playground.page()
    playground.send("a turn")  # stored; its reply failed
    form = {"provider": "echo", "model": "echo-1", "csrf_token": playground.token()}
    response = playground.client.post("/playground/replay", data=form)
    assert response.status_code == 303 and response.headers["Location"].endswith("/playground/replay")
    with playground.client.session_transaction() as session:
        assert ("error", "The reply could not be queued: the job queue (Redis) is unreachable.") in session["_flashes"]
        assert session["replays"]["standalone"]["choice"] == {"provider": "echo", "model": "echo-1"}


def test_a_companion_retry_of_a_gone_reply_is_404(playground):
    playground.send("hello")
    form = {"provider": "echo", "model": "echo-2", "csrf_token": playground.token()}
    assert playground.client.post("/playground/compare", data=form).status_code == 303
    response = playground.client.post(
        "/playground/compare/messages/nope/retry", data={"csrf_token": playground.token()}, headers=JSON
    )
    assert response.status_code == 404 and response.get_json() == {"error": "That reply is no longer there."}
