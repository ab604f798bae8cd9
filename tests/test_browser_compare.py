"""Compare and Replay in a real Chromium: both columns stream, the replay shows per-turn diffs; laptop and phone."""

import pytest

from .conftest import press_send, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.integration]

SECOND_OPINION = " ".join(["Second", "opinion:", "a", "longer", "reply,", "streamed", "word", "by", "word."] * 4)


def send(page, text):
    page.fill("#content", text)
    press_send(page)


def choose(page, provider, model):
    page.select_option("#choice-provider", provider)
    page.fill("#choice-model", model)


def boxes(page, *selectors):
    """The box of the first element of each selector, all measured at one moment: the page swaps its rows in
    anew after events and on (re)connect, and a row measured just after it was swapped out has no box."""
    script = """(selectors) => selectors.map((selector) => {
      const box = document.querySelector(selector).getBoundingClientRect();
      return box.width && box.height ? box.toJSON() : null;
    })"""
    measured = page.evaluate(script, list(selectors))
    assert None not in measured, f"not visible: {measured}"
    return measured


def test_replay_shows_old_and_new_replies_with_a_diff_per_turn(fake_openai, chromium, live_server, start_worker):
    fake_openai.script.reply = "You said something; here is a **new** answer."
    fake_openai.script.chunk_delay = 0.05
    start_worker()
    page = chromium.new_context(viewport={"width": 1280, "height": 800}).new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(live_server + "/playground")
    for number, text in enumerate(["First question", "Second <b>question</b>", "Third question"], 1):
        send(page, text)
        page.wait_for_selector(f'.message-assistant[data-status="done"] >> nth={number - 1}', timeout=20_000)
    page.click(".workbench-links >> text=Replay")
    page.wait_for_selector("text=No replay yet.")
    assert page.locator(".turn").count() == 3
    choose(page, "openai", "gpt-4o-mini")
    page.click("#replay-form button[type=submit]")
    # the new reply streams in its column (plain text growing, before the rendered HTML replaces it)
    page.wait_for_selector('.replay-new .message[data-status="streaming"] .live:not(:empty)', timeout=20_000)
    assert "Replaying turn" in page.inner_text(".replay-sentence")
    screenshot(page, "40-replay-streaming")
    page.wait_for_selector("text=Replay finished: 3 turns.", timeout=30_000)
    # The last diff comes a moment after its reply (the worker stores it, then message.compared).
    page.wait_for_selector(".word-diff-box >> nth=2", timeout=10_000)
    assert page.locator(".word-diff-box").count() == 3
    assert page.locator(".replay-new .message[data-status='done']").count() == 3
    first = page.locator("#turn-1")
    assert "You said: First question" in first.locator(".replay-old .body").inner_text()
    assert first.locator(".replay-new .body strong").inner_text() == "new"
    assert first.locator(".word-diff ins").count() >= 1 and first.locator(".word-diff del").count() >= 1
    assert page.inner_text("#turn-2 .turn-user") == "Second <b>question</b>"  # escaped, as typed
    assert fake_openai.stream_requests() == 3
    screenshot(page, "41-replay-done")

    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    old, new = page.locator("#turn-1 .replay-old").bounding_box(), page.locator("#turn-1 .replay-new").bounding_box()
    assert new["y"] >= old["y"] + old["height"]  # stacked on a phone
    screenshot(page, "42-replay-phone")

    page.click("text=Delete replay")
    page.wait_for_selector("text=No replay yet.")
    page.goto(live_server + "/playground")
    assert page.locator(".message").count() == 6  # the original is as it was
    assert errors == []


# Flaky in full runs since 2026-12-01 (passes alone): a send's turn sometimes never shows. Open cause,
# see README (Tests); rerun, not hidden: a failure twice in a row still fails the run.
@pytest.mark.flaky(reruns=2)
def test_compare_streams_both_columns_side_by_side(fake_openai, chromium, live_server, start_worker):
    fake_openai.script.reply = SECOND_OPINION
    # Both replies stream for about five seconds, so that each column is seen streaming while the other
    # is checked (shorter ones finished unseen on a loaded machine).
    fake_openai.script.chunk_delay = 0.15
    start_worker({"ECHO_DELAY": "0.25"}), start_worker({"ECHO_DELAY": "0.25"})  # both replies at once
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(live_server + "/playground/compare")
    page.wait_for_selector("text=No messages yet.")
    choose(page, "openai", "gpt-4o-mini")
    page.click("text=Compare with this model")
    page.wait_for_selector("text=Comparing with openai / gpt-4o-mini")
    send(page, "Explain streaming in one paragraph, please, with enough words to watch it arrive in both columns")
    page.wait_for_selector('.compare-left .message[data-status="streaming"] .live:not(:empty)', timeout=20_000)
    page.wait_for_selector('.compare-right .message[data-status="streaming"] .live:not(:empty)', timeout=20_000)
    screenshot(page, "43-compare-streaming")
    page.wait_for_selector('.compare-left .message[data-status="done"]', timeout=30_000)
    page.wait_for_selector('.compare-right .message[data-status="done"]', timeout=30_000)
    assert page.locator(".compare-left").count() == page.locator(".compare-right").count() == 1
    left, right = boxes(page, ".compare-left", ".compare-right")
    assert right["x"] >= left["x"] + left["width"] and abs(right["y"] - left["y"]) < 2  # side by side
    assert "You said: Explain streaming" in page.inner_text(".compare-left .body")
    assert page.inner_text(".compare-right .body").startswith("Second opinion:")
    screenshot(page, "44-compare-done")

    # A second send from the main playground goes to both as well.
    page.goto(live_server + "/playground")
    assert "Compare · on" in page.inner_text(".workbench-links")
    send(page, "And once more")
    page.wait_for_selector('.message-assistant[data-status="done"] >> nth=1', timeout=20_000)
    page.goto(live_server + "/playground/compare")
    page.wait_for_selector('.turn >> nth=1 >> .compare-right .message[data-status="done"]', timeout=30_000)
    assert fake_openai.stream_requests() == 2

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    left, right = boxes(page, ".compare-left", ".compare-right")
    assert right["y"] >= left["y"] + left["height"]  # stacked
    screenshot(page, "45-compare-phone")
    page.click("text=Turn Compare off")
    page.wait_for_selector("text=Compare is off")
    # The playground's own page on a phone: its Compare and Replay links fit, the page does not scroll sideways.
    page.goto(live_server + "/playground")
    assert page.locator(".workbench-links >> text=Replay").is_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "46-playground-links-phone")
    assert errors == []
    context.close()
