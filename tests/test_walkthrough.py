"""Fixes from the new-user walk-through: stale settings forms, earlier windows, labels, flashes, skip link."""

import re

from prompt_tracker.domain.messages import user_message
from prompt_tracker.domain.settings import STANDALONE
from prompt_tracker.extensions import services

from .conftest import CSRF_RE

VERSION_RE = re.compile(r'name="settings_version" value="([0-9a-f]+)"')


def settings_form(playground, **fields):
    data = {"system_prompt": "", "provider": "echo", "model": "echo-1", "temperature": "0.7", "max_tokens": "1024"}
    return {**data, **{key: str(value) for key, value in fields.items()}}


def test_a_settings_form_loaded_before_another_tabs_save_is_told_so(client, playground):
    tab_a = playground.page().get_data(as_text=True)
    version_a, token = VERSION_RE.search(tab_a).group(1), CSRF_RE.search(tab_a).group(1)
    # tab B saves first
    assert playground.save_settings(system_prompt="Tab B's prompt").status_code == 303
    # tab A saves the form it loaded earlier: refused, its text kept, the other tab's save intact
    response = client.post(
        "/playground/settings",
        data={
            **settings_form(playground, system_prompt="Tab A's prompt"),
            "settings_version": version_a,
            "csrf_token": token,
        },
    )
    assert response.status_code == 409
    html = response.get_data(as_text=True)
    assert "Not saved: another tab saved different settings after this form was loaded." in html
    assert ">\nTab A&#39;s prompt</textarea>" in html
    assert ">\nTab B&#39;s prompt</textarea>" in playground.page().get_data(as_text=True)
    # the refused form now carries the current version: saving it again replaces them, knowingly
    again = VERSION_RE.search(html).group(1)
    assert again != version_a
    response = client.post(
        "/playground/settings",
        data={
            **settings_form(playground, system_prompt="Tab A's prompt"),
            "settings_version": again,
            "csrf_token": token,
        },
    )
    assert response.status_code == 303
    assert ">\nTab A&#39;s prompt</textarea>" in playground.page().get_data(as_text=True)


def test_saving_variables_elsewhere_does_not_make_the_settings_form_stale(client, playground):
    playground.save_settings(system_prompt="Hello {{ name }}")
    page = playground.page().get_data(as_text=True)
    version, token = VERSION_RE.search(page).group(1), CSRF_RE.search(page).group(1)
    client.post("/playground/variables", data={"name": "Ada", "csrf_token": token})
    response = client.post(
        "/playground/settings",
        data={
            **settings_form(playground, system_prompt="Hi {{ name }}"),
            "settings_version": version,
            "csrf_token": token,
        },
    )
    assert response.status_code == 303


def test_an_earlier_window_has_no_composer_and_a_way_back(app, playground):
    app.config["PAGE_WINDOW"] = 3
    playground.page()
    with playground.client.session_transaction() as session:
        session.add_playground(STANDALONE)
    with app.app_context():
        services.store.append(playground.store(), STANDALONE, *[user_message(f"message {n}") for n in range(8)])
    latest = playground.page().get_data(as_text=True)
    assert 'id="composer"' in latest and "Skip to the message box" in latest
    earlier = playground.page(before=2).get_data(as_text=True)
    assert 'id="composer"' not in earlier and 'name="content"' not in earlier
    assert "You are reading messages 1–2 of 8; messages are sent from the latest ones." in earlier
    assert (
        '<a id="back-to-latest" class="button button-primary" href="/playground">Back to the latest messages</a>'
        in earlier
    )
    assert '<a href="/playground?before=5">Show later messages</a>' in earlier
    assert "Skip to the latest messages" in earlier
    middle = playground.page(before=5).get_data(as_text=True)
    assert '<a href="/playground">Show later messages</a>' in middle  # the next window is the latest


def test_timing_figures_are_labelled_and_flashes_can_be_dismissed(app, playground):
    playground.send("time me")
    with app.app_context():
        reply = services.store.all(playground.store(), STANDALONE)[-1]
    html = playground.page().get_data(as_text=True)
    first, total = reply.first_token_ms / 1000, reply.latency_ms / 1000
    assert f"first token {first:.1f} s · total {total:.1f} s" in html
    playground.reset()
    html = playground.page().get_data(as_text=True)
    assert (
        '<span>Conversation cleared.</span><button type="button" class="flash-close" aria-label="Dismiss this message">'
        in html
    )
