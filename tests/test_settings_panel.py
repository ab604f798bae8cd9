"""The playground's settings form is rendered once per distinct saved settings (and URL), its CSRF
token a marker: a page view joins it like the message fragments. A form with errors is rendered
each time, with what was typed."""

import re

from flask import template_rendered

PANEL = "playground/_settings_panel.html"


def panel_renders(app):
    rendered = []
    template_rendered.connect(
        lambda sender, template, context, **extra: rendered.append(template.name), app, weak=False
    )
    return rendered


def system_prompt(html: str) -> str:
    return re.search(r'<textarea id="system_prompt"[^>]*>\n(.*?)</textarea>', html, re.S).group(1)


def test_the_settings_form_is_rendered_once_per_saved_settings(app, playground):
    rendered = panel_renders(app)
    first = playground.page().get_data(as_text=True)
    second = playground.page().get_data(as_text=True)
    assert rendered.count(PANEL) == 1  # the second page joined the stored panel
    assert 'id="settings-form"' in second and first.count('id="settings-form"') == 1

    assert playground.save_settings(system_prompt="Be brief & <kind>.").status_code == 303
    page = playground.page().get_data(as_text=True)
    assert rendered.count(PANEL) == 2  # new settings, a new panel
    assert system_prompt(page) == "Be brief &amp; &lt;kind&gt;."
    playground.page()
    assert rendered.count(PANEL) == 2


def test_the_stored_panel_carries_each_sessions_own_csrf_token(app, client):
    from .conftest import Playground

    tokens = []
    for browser in (client, app.test_client()):
        html = Playground(browser).page().get_data(as_text=True)
        form = re.search(r'<form [^>]*id="settings-form".*?</form>', html, re.S).group(0)
        tokens.append(re.search(r'name="csrf_token" value="([^"]+)"', form).group(1))
        assert "<~csrf-token~>" not in html
    assert tokens[0] != tokens[1]


def test_a_form_with_errors_is_rendered_with_what_was_typed(app, playground):
    rendered = panel_renders(app)
    playground.page()
    answer = playground.save_settings(temperature="9", system_prompt="typed, not saved")
    assert answer.status_code == 422
    assert system_prompt(answer.get_data(as_text=True)) == "typed, not saved"
    assert rendered.count(PANEL) == 1  # the form with errors was rendered in the page, not stored
    assert system_prompt(playground.page().get_data(as_text=True)) == ""  # the saved settings, as saved
