"""The session's edges under faults: which data earns the full lifetime, a request still in flight when
sign-out lands, and a Cluster key move that must never leave a key without expiry."""

import flask
import pytest
from flask import session

from prompt_tracker.domain.keys import store_id
from prompt_tracker.extensions import services

from .conftest import COOKIE, Playground
from .test_session_behaviour import DAY, HOUR, blob, blob_ttl, cookie_lifetime


@pytest.fixture
def app_storing(app):
    """The unit app with a view that stores ``key`` = ``value`` in the session, as new code would."""

    @app.get("/test-only/store/<key>")
    def store_in_session(key):
        session[key] = flask.request.args.get("value", "mine")
        return ""

    return app


@pytest.mark.parametrize("key", ["replay_draft", "compare", "variables_panel", "_user_id", "proxy_user"])
def test_any_value_the_app_stores_keeps_the_full_lifetime(app_storing, key):
    """The idle lifetime is for what is not the user's; a key nobody listed (new code's) is the user's."""
    client = app_storing.test_client()
    response = client.get(f"/test-only/store/{key}")
    sid = client.get_cookie(COOKIE).value
    assert DAY - 60 < cookie_lifetime(response) <= DAY
    assert DAY - 60 < blob_ttl(app_storing, sid) <= DAY


@pytest.mark.parametrize("key", ["csrf_token", "_flashes", "_fresh", "_id"])
def test_bookkeeping_alone_keeps_the_idle_lifetime(app_storing, key):
    client = app_storing.test_client()
    response = client.get(f"/test-only/store/{key}", query_string={"value": "x"})
    assert HOUR - 60 < cookie_lifetime(response) <= HOUR
    assert HOUR - 60 < blob_ttl(app_storing, client.get_cookie(COOKIE).value) <= HOUR


@pytest.mark.parametrize("changes", [False, True], ids=["reads only", "writes"])
def test_a_request_in_flight_when_sign_out_lands_does_not_set_the_old_id_again(app, changes):
    """A request loaded the session; sign-out (another request) deleted it; this request's save must
    neither write the blob back nor send the old id in a Set-Cookie (it would undo the sign-out)."""
    playground = Playground(app.test_client())
    playground.save_settings(system_prompt="mine")
    sid = playground.sid()
    interface = app.session_interface
    with app.test_request_context("/playground", headers={"Cookie": f"{COOKIE}={sid}"}):
        in_flight = interface.open_session(app, flask.request)
        assert in_flight.get("settings")  # loaded: the blob was there
        interface.delete_stored(store_id(sid), in_flight.playgrounds())  # the sign-out lands
        if changes:
            in_flight["_flashes"] = [("message", "Saved.")]
        response = app.response_class()
        interface.save_session(app, in_flight, response)
    assert not [value for value in response.headers.getlist("Set-Cookie") if value.startswith(f"{COOKIE}={sid}")]
    assert blob(app, sid) is None


class ExpiresAfterFirstRead:
    """A Redis client whose ``key`` expires right after the first command that reads it (a race the
    move must survive), delegating everything else to a real (fake) client."""

    def __init__(self, client, key):
        self.client, self.key, self.reads = client, key, 0

    def _read(self, command, key):
        result = command(key)
        if key == self.key:
            self.reads += 1
            if self.reads == 1:
                self.client.delete(key)
        return result

    def dump(self, key):
        return self._read(self.client.dump, key)

    def pttl(self, key):
        return self._read(self.client.pttl, key)

    def __getattr__(self, name):
        return getattr(self.client, name)


def test_a_cluster_key_move_never_restores_a_key_without_expiry(app):
    """DUMP/RESTORE key by key: a key that expires in between is skipped, never restored forever; a key
    restored takes its remaining time (one without expiry gets the session's lifetime, not none)."""
    with app.app_context():
        conversations = services.conversations
        redis = services.session_redis
        expiring = conversations.key("a" * 64, "standalone")
        lasting = conversations.key("a" * 64, "prompt-1")
        unlimited = conversations.key("a" * 64, "prompt-2")
        redis.rpush(expiring, b"x")
        redis.expire(expiring, 100)
        redis.rpush(lasting, b"y")
        redis.expire(lasting, 500)
        redis.rpush(unlimited, b"z")
        moved = [conversations.key("b" * 64, playground) for playground in ("standalone", "prompt-1", "prompt-2")]
        real = conversations.redis
        conversations.redis = ExpiresAfterFirstRead(real, expiring)
        try:
            conversations._move_across_slots(list(zip([expiring, lasting, unlimited], moved)))
        finally:
            conversations.redis = real
        assert redis.pttl(moved[0]) == -2 or redis.pttl(moved[0]) > 0  # skipped, or with a time to live
        assert 400_000 < redis.pttl(moved[1]) <= 500_000
        assert 0 < redis.pttl(moved[2]) <= conversations.ttl_seconds * 1000
        assert redis.lrange(moved[1], 0, -1) == [b"y"] and not redis.exists(lasting, unlimited)
