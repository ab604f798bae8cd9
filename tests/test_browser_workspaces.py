"""Signed in (AUTH_MODE=accounts), the work follows the user in a real Chromium: two browser contexts of one
user (a laptop 1280 x 800 and a phone 390 x 844) share one conversation live, their settings, and keep
both after a sign-out."""

import urllib.parse

import pytest

from prompt_tracker.auth.accounts import create_user

from .conftest import press_send, screenshot, service_env, wait_for
from .processes import web_process
from .test_browser import wait_until_live

pytestmark = [pytest.mark.browser, pytest.mark.integration]

EMAIL, PASSWORD = "alice@example.com", "correct horse battery staple"
SENT = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen"


@pytest.fixture
def accounts_env(real_redis, monkeypatch, tmp_path):
    """A deployment with accounts: one user in a SQLite database of the test's own."""
    from prompt_tracker import create_app
    from prompt_tracker.extensions import db

    env = {
        **service_env(real_redis),
        "AUTH_MODE": "accounts",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'users.sqlite3'}",
    }
    with monkeypatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        app = create_app("development", overrides={"DEBUG": False})
    with app.app_context():
        db.create_all()
        create_user(EMAIL, PASSWORD)
        db.engine.dispose()
    return env


def signed_in_page(chromium, url, **context_options):
    context = chromium.new_context(**context_options)
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.goto(url + "/playground")
    sign_in(page, url)
    return page


def sign_in(page, url):
    assert urllib.parse.urlsplit(page.url).path == "/login"
    page.fill("#email", EMAIL)
    page.fill("#password", PASSWORD)
    page.click("button:has-text('Sign in')")
    page.wait_for_url(url + "/playground")
    wait_until_live(page)


def test_a_laptop_and_a_phone_of_one_user_share_the_conversation_live_and_keep_it_after_sign_out(
    chromium, accounts_env, start_worker, tmp_path
):
    # A word every 0.15 s: the reply streams for a couple of seconds, seen in both browsers.
    start_worker({**accounts_env, "ECHO_DELAY": "0.15"})
    with web_process(accounts_env, tmp_path / "web.log") as url:
        laptop = signed_in_page(chromium, url, viewport={"width": 1280, "height": 800})
        phone = signed_in_page(chromium, url, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
        assert laptop.context.cookies() != phone.context.cookies()  # two browsers, two sessions
        for page in (laptop, phone):
            assert page.inner_text(".user-name") == EMAIL
            # The save button says whose the settings are (on the phone, in the settings fold: tap it open).
            if page is phone:
                assert page.is_hidden("#system_prompt")
                page.tap(".settings-fold > summary")
            assert page.is_visible("button:text-is('Save settings (yours)')")
            assert page.locator("text=(this browser)").count() == 0

        # Sent on the laptop: the phone shows the message, and the reply streams in both.
        laptop.fill("#content", SENT)
        press_send(laptop)
        phone.wait_for_selector(f".message-user >> text={SENT}", timeout=20_000)
        streaming = '.message-assistant[data-status="streaming"] .live:not(:empty)'
        for page in (phone, laptop):
            page.wait_for_selector(streaming, timeout=20_000)
        screenshot(phone, "workspaces-01-phone-streams-the-laptops-reply")
        done = '.message-assistant[data-status="done"]'
        for page in (laptop, phone):
            page.wait_for_selector(f"{done} >> text=You said: {SENT}", timeout=30_000)
            assert "2 messages" in page.inner_text("#message-count")
        screenshot(laptop, "workspaces-02-laptop-done")

        # Settings saved on the phone: the laptop is told at once, and shows them when it loads them.
        phone.fill("#system_prompt", "You are terse.")
        phone.tap("button:text-is('Save settings (yours)')")
        phone.wait_for_selector("text=Settings saved")
        laptop.wait_for_selector("#settings-stale:visible", timeout=10_000)
        screenshot(laptop, "workspaces-03-laptop-told-of-the-phones-settings")
        # A Retry on the laptop, which still shows the old settings, is held once; pressed again, it goes
        # ahead with the saved (the phone's) settings.
        laptop.click(".message-assistant .retry-form button")
        laptop.wait_for_selector("#composer-error:has-text('Settings changed in another tab')")
        assert "Press Retry again" in laptop.inner_text("#composer-error")
        laptop.click(".message-assistant .retry-form button")
        retried = f"{done} >> text=system prompt: 14 characters"
        for page in (laptop, phone):
            page.wait_for_selector(retried, timeout=30_000)
        with laptop.expect_navigation():
            laptop.click("#settings-stale >> text=Load the saved settings")
        assert laptop.input_value("#system_prompt") == "You are terse."
        wait_until_live(laptop)

        # A message sent on the phone reaches the laptop live, too.
        phone.fill("#content", "and one from the phone")
        press_send(phone)
        for page in (laptop, phone):
            page.wait_for_selector(f"{done} >> text=You said: and one from the phone", timeout=30_000)
        screenshot(phone, "workspaces-04-phone-after-its-send")

        # Signing out on the laptop ends its session only: the phone keeps the conversation, and the
        # laptop, signed in again, shows it with the settings.
        laptop.click(".signed-in button:has-text('Sign out')")
        laptop.wait_for_url(lambda address: urllib.parse.urlsplit(address).path == "/login")
        phone.reload()
        wait_for(lambda: phone.locator(".message").count() == 4, timeout=10)
        laptop.goto(url + "/playground")
        sign_in(laptop, url)
        assert laptop.locator(".message").count() == 4
        assert f"You said: {SENT}" in laptop.inner_text("#messages")
        assert laptop.input_value("#system_prompt") == "You are terse."
        screenshot(laptop, "workspaces-05-laptop-signed-in-again")
        assert laptop.errors == [] and phone.errors == []
        laptop.context.close()
        phone.context.close()
