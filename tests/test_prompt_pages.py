"""The prompt pages after the walk-through (issue 17): old slugs redirect, versions open and restore in the
playground, the diff marks changed words, and the providers' settings say how to add one and how big a
local model's context window is."""

import pytest

from prompt_tracker import create_app
from prompt_tracker.extensions import db

from .test_prompts import Library


@pytest.fixture
def library():
    app = create_app("test")
    with app.app_context():
        db.create_all()
    yield Library(app, app.test_client())
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def page(response) -> str:
    return response.get_data(as_text=True)


# --- old slugs redirect -----------------------------------------------------------------------------


def test_an_old_slug_redirects_every_address_under_it_to_the_new_one(library):
    library.create("Before", "v1")
    library.save_settings("before", system_prompt="v2")
    library.post("/prompts/before/playground/versions")
    library.send("before", "hello")
    assert library.post("/prompts/before/edit", name="Middle", slug="middle").status_code == 303
    assert library.post("/prompts/middle/edit", name="After", slug="after").status_code == 303
    client = library.client
    for old in ("before", "middle"):  # a chain of renames goes straight to the latest slug
        for path, target in (
            (f"/prompts/{old}", "/prompts/after"),
            (f"/prompts/{old}/playground", "/prompts/after/playground"),
            (f"/prompts/{old}/diff?from=1&to=2&view=unified", "/prompts/after/diff?from=1&to=2&view=unified"),
            (f"/prompts/{old}/playground/export.json", "/prompts/after/playground/export.json"),
        ):
            response = client.get(path)
            assert (response.status_code, response.headers["Location"]) == (301, target), path
    # A form posted from a page loaded before the rename keeps its method and body (308), and lands.
    response = library.post("/prompts/before/playground/messages", content="from an old tab")
    assert (response.status_code, response.headers["Location"]) == (308, "/prompts/after/playground/messages")
    # (The test client resends no body on a 308: post again where a browser would.)
    assert library.post(response.headers["Location"], content="from an old tab").status_code == 303
    # The playground followed the rename (keyed by id): its conversation is there under the new slug.
    shown = page(client.get("/prompts/before/playground", follow_redirects=True))
    assert "hello" in shown and "from an old tab" in shown
    assert client.get("/prompts/never-was").status_code == 404
    assert client.get("/prompts/never-was/playground").status_code == 404


def test_a_new_prompt_or_a_rename_may_take_an_old_slug_and_it_stops_redirecting(library):
    library.create("First", "one")
    library.post("/prompts/first/edit", name="First", slug="first-renamed")
    assert library.client.get("/prompts/first").status_code == 301
    # A new prompt takes the old slug: the address is the new prompt's now.
    assert library.create("First again", "two", slug="first").status_code == 303
    assert "First again" in page(library.client.get("/prompts/first"))
    # Renaming back to an own old slug works too, and the slug left behind redirects instead.
    library.post("/prompts/first/edit", name="First again", slug="second")
    library.post("/prompts/first-renamed/edit", name="First", slug="first")
    assert "one" in page(library.client.get("/prompts/first"))
    assert library.client.get("/prompts/first-renamed").headers["Location"] == "/prompts/first"
    assert library.client.get("/prompts/second").status_code == 200
