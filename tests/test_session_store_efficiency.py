"""What a request costs in Redis, and how concurrent writers of one session merge."""

import pytest

from prompt_tracker.store.session_interface import merge_changes

from .conftest import Playground


def test_merge_keeps_what_another_request_wrote():
    original = {"settings": {"a": {"model": "m1"}}, "csrf_token": "t"}
    mine = {"settings": {"a": {"model": "m2"}}, "csrf_token": "t"}
    theirs = {"settings": {"a": {"model": "m1"}, "b": {"model": "x"}}, "csrf_token": "t", "_flashes": [["info", "hi"]]}
    assert merge_changes(original, mine, theirs) == {
        "settings": {"a": {"model": "m2"}, "b": {"model": "x"}},
        "csrf_token": "t",
        "_flashes": [["info", "hi"]],
    }


def test_merge_applies_deletions_and_ignores_untouched_keys():
    original = {"_flashes": [["info", "saved"]], "settings": {"a": 1}}
    mine = {"settings": {"a": 1}}  # the flash was shown (popped)
    theirs = {"_flashes": [["info", "saved"]], "settings": {"a": 2}}
    assert merge_changes(original, mine, theirs) == {"settings": {"a": 2}}


def commands(db2):
    """Calls per command on the private server since the last reset (INFO itself excluded)."""
    stats = db2.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): value["calls"]
        for name, value in stats.items()
        if name not in ("cmdstat_info", "cmdstat_config|resetstat", "cmdstat_config")
    }


@pytest.mark.integration
@pytest.mark.parametrize("path", ["/static/style.css", "/static/playground.js", "/no-such-page"])
def test_requests_that_never_touch_the_session_cost_no_redis_command(live_playground, real_redis, path):
    live_playground.send("hello")  # a real session with a conversation
    db2 = real_redis.client(2)
    db2.config_resetstat()
    response = live_playground.client.get(path)
    assert response.status_code in (200, 404)
    response.close()
    assert commands(db2) == {}


@pytest.mark.integration
def test_page_view_is_two_round_trips_and_writes_under_1kb_at_any_size(live_app, live_playground, real_redis):
    from prompt_tracker.domain.messages import user_message
    from prompt_tracker.domain.settings import STANDALONE
    from prompt_tracker.extensions import services

    live_playground.send("hello")
    live_playground.page()
    with live_app.app_context():
        services.store.append(live_playground.store(), STANDALONE, *[user_message("z" * 2000) for _ in range(500)])
    db2 = real_redis.client(2)
    db2.config_resetstat()
    before = db2.info("stats")["total_net_input_bytes"]
    live_playground.page()
    written = db2.info("stats")["total_net_input_bytes"] - before
    # Round trip 1: GET the blob. Round trip 2: one script reads the window (LLEN, then LRANGEs of
    # 16 records from the end until the page's byte budget is spent: some 60 of these 2 KB messages),
    # the open replies (ZRANGE) and their partial text (GET: the reply is still queued, no worker
    # here) and pushes the expiry of the blob and the conversation.
    counts = commands(db2)
    assert counts.pop("lrange") == 4
    assert counts == {"get": 2, "evalsha": 1, "llen": 1, "zrange": 1, "expire": 2}
    assert written < 1024


def test_two_tabs_saving_different_things_keep_both(app):
    """Tab A loads, tab B saves settings, tab A then changes something else: B's settings stay."""
    first = Playground(app.test_client())
    first.save_settings(system_prompt="from tab B")
    # a second client with the same cookie is a second tab
    second_client = app.test_client()
    second_client.set_cookie("_prompt_tracker_session", first.sid())
    second = Playground(second_client)
    second.save_settings(system_prompt="from tab B, edited")
    first.reset()  # tab A's request writes a flash message into the session
    html = second.page().get_data(as_text=True)
    assert "from tab B, edited" in html
