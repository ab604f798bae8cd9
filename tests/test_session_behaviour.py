"""Session behaviour that must hold on both backends: cachelib (unit config) and a real Redis."""

import pickle
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import pytest

from prompt_tracker.domain.keys import conversation_key
from prompt_tracker.domain.settings import STANDALONE
from prompt_tracker.extensions import services

from .conftest import COOKIE, Playground

DAY = 24 * 3600
HOUR = 3600


@pytest.fixture(params=["cachelib", "redis"])
def backend(request):
    """(app, playground) on each session backend."""
    if request.param == "cachelib":
        app = request.getfixturevalue("app")
    else:
        request.applymarker(pytest.mark.integration)
        app = request.getfixturevalue("live_app")
    return app, Playground(app.test_client())


def blob(app, sid):
    """The stored session data (dict) or None, whatever the backend."""
    interface = app.session_interface
    with app.app_context():
        return interface._retrieve_session_data(interface._blob_key(sid))


def blob_ttl(app, sid) -> float:
    """Seconds the stored blob has left, whatever the backend."""
    interface = app.session_interface
    key = interface._blob_key(sid)
    if app.config["SESSION_TYPE"] == "cachelib":
        expires, _ = interface.cache._cache[key]
        return expires - time.time()
    with app.app_context():
        return services.session_redis.ttl(key)


def cookie_lifetime(response) -> float:
    """Seconds until the session cookie set by ``response`` expires."""
    cookie = next(value for value in response.headers.getlist("Set-Cookie") if value.startswith(COOKIE))
    expires = parsedate_to_datetime(cookie.split("Expires=")[1].split(";")[0])
    return (expires - datetime.now(UTC)).total_seconds()


def test_a_visitor_who_never_uses_the_session_is_kept_an_hour_only(backend):
    """A cookie-less page view stores a session (its CSRF token): an hour, not a day; looking again does not extend it."""
    app, playground = backend
    response = playground.page()
    assert HOUR - 60 < cookie_lifetime(response) <= HOUR
    assert HOUR - 60 < blob_ttl(app, playground.sid()) <= HOUR
    for _ in range(3):
        playground.page()
        playground.client.get("/playground/messages/open")
        playground.client.get("/playground/compare")
    assert blob_ttl(app, playground.sid()) <= HOUR


@pytest.mark.parametrize("use", ["send", "save_settings"])
def test_using_the_session_gives_it_the_full_lifetime(backend, use):
    app, playground = backend
    playground.page()
    sid = playground.sid()
    response = getattr(playground, use)(**({"content": "hello"} if use == "send" else {"system_prompt": "mine"}))
    assert playground.sid() == sid
    assert DAY - 60 < cookie_lifetime(response) <= DAY
    assert DAY - 60 < blob_ttl(app, sid) <= DAY
    playground.page()
    assert DAY - 60 < blob_ttl(app, sid) <= DAY


def test_a_session_is_stored_server_side_with_settings(backend):
    app, playground = backend
    playground.save_settings(system_prompt="Stored server-side")
    data = blob(app, playground.sid())
    assert data["settings"][STANDALONE]["system_prompt"] == "Stored server-side"
    assert playground.client.get_cookie(COOKIE).value == playground.sid()


def test_cookie_does_not_grow_with_the_conversation(backend):
    app, playground = backend
    with app.app_context():
        services.store.max_open_replies = 100  # no worker on the Redis variant: every reply stays open
    playground.send("first")
    before = playground.client.get_cookie(COOKIE).value
    for index in range(20):
        playground.send(f"message {index} " + "x" * 2000)
    assert playground.client.get_cookie(COOKIE).value == before
    assert len(playground.messages(app)) == 42


def test_conversation_list_gets_the_session_lifetime(backend):
    app, playground = backend
    playground.send("hello")
    with app.app_context():
        ttl = services.session_redis.ttl(
            conversation_key(app.config["SESSION_KEY_PREFIX"], playground.store(), STANDALONE)
        )
    assert DAY - 60 < ttl <= DAY


def test_a_later_request_pushes_the_conversation_expiry(backend):
    app, playground = backend
    playground.send("hello")
    key = conversation_key(app.config["SESSION_KEY_PREFIX"], playground.store(), STANDALONE)
    with app.app_context():
        services.session_redis.expire(key, 100)
    playground.page()
    with app.app_context():
        assert services.session_redis.ttl(key) > DAY - 60


def test_blob_that_is_not_msgpack_or_json_is_no_session(backend):
    app, playground = backend
    playground.save_settings(system_prompt="secret settings")
    sid = playground.sid()
    key = app.session_interface._blob_key(sid)
    payload = pickle.dumps({"settings": {STANDALONE: {"system_prompt": "from pickle"}}})
    with app.app_context():
        if app.config["SESSION_TYPE"] == "redis":
            services.session_redis.set(key, payload)
        else:
            app.session_interface.cache.set(key, "not a dict")
    html = playground.page().get_data(as_text=True)
    assert "from pickle" not in html
    assert "secret settings" not in html
    assert playground.sid() != sid  # a fresh session was issued


def test_malformed_cookies_start_fresh_sessions(backend):
    app, playground = backend
    playground.send("mine")
    for value in ["A" * 43, "short", "x" * 4000, "bad chars!@#$%^&*()", ""]:
        playground.client.set_cookie(COOKIE, value)
        response = playground.page()
        assert response.status_code == 200
        assert "No messages yet" in response.get_data(as_text=True)


def test_regenerate_keeps_the_data_under_a_new_id_and_deletes_the_old_keys(backend):
    """What a login does (Flask-Session's ``regenerate``): new id, same settings and conversation, old keys gone."""
    from prompt_tracker.domain.keys import store_id

    app, playground = backend
    playground.save_settings(system_prompt="kept across the new id")
    playground.send("kept too")
    old_sid, old_store = playground.sid(), playground.store()

    interface = app.session_interface
    with app.test_request_context(headers={"Cookie": f"{COOKIE}={old_sid}"}) as context:
        interface.regenerate(context.session)
        response = app.response_class()
        interface.save_session(app, context.session, response)
    new_sid = context.session.sid
    assert f"{COOKIE}={new_sid}" in response.headers["Set-Cookie"]
    playground.client.set_cookie(COOKIE, new_sid)
    assert new_sid != old_sid
    assert blob(app, new_sid)["settings"][STANDALONE]["system_prompt"] == "kept across the new id"
    assert [m.content for m in playground.messages(app)][0] == "kept too"
    assert blob(app, old_sid) is None
    with app.app_context():
        left = [key.decode() for key in services.session_redis.scan_iter() if old_store.encode() in key]
    assert left == []
    html = playground.page().get_data(as_text=True)
    assert "kept across the new id" in html and "kept too" in html
    assert store_id(new_sid) == playground.store()


def test_the_session_id_is_not_readable_before_the_stored_session_is_loaded(backend):
    """A forged cookie's id never reaches a view: reading ``sid`` loads the session, which replaces an unknown id."""
    from flask import session

    app, playground = backend
    forged = "F" * 43
    playground.client.set_cookie(COOKIE, forged)
    seen = {}

    @app.get("/test-sid")
    def read_sid():
        seen["sid"] = session.sid
        seen["loaded"] = session.loaded
        return "ok"

    playground.client.get("/test-sid")
    assert seen["loaded"] is True
    assert seen["sid"] != forged
