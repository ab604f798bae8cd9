"""What a prompt's playground adds to the playground views: which prompt, its settings, its versions.

The playground blueprint is registered twice: at /playground (the standalone playground) and at
/prompts/<slug>/playground. Its views use ``g.playground``, set here from the URL.
"""

from urllib.parse import quote

from flask import abort, g, redirect, request

from ...domain.settings import STANDALONE, PlaygroundSettings, load_settings, settings_version
from ...prompts.library import prompt_with_latest, renamed_prompt
from ...prompts.settings import playground_name, settings_from_version, settings_to_send
from ...replies import live

PROMPT_PLAYGROUND = "prompt_playground"  # the name of the blueprint's second registration


def open_playground(endpoint, values) -> None:
    """Before a playground view: take the prompt's slug out of the URL (looked up by ``load_prompt``)."""
    g.prompt_slug = values.pop("slug", None) if values else None
    g.prompt = g.latest_version = None
    g.playground = STANDALONE


def load_prompt() -> None:
    """Set ``g.playground`` (and ``g.prompt``, with one query) from the URL's slug.

    A before-request hook of the blueprint, so it runs after the app's sign-in guard: an anonymous
    visitor is sent to sign in whether the prompt exists or not, and learns nothing of it.
    """
    slug = g.get("prompt_slug")
    if slug is None:
        return  # the standalone playground: no database query at all
    found = prompt_with_latest(slug)
    if found is None:
        moved_or_404(slug)
    g.prompt, g.latest_version = found
    g.playground = playground_name(g.prompt.id)


def moved_or_404(slug: str):
    """No prompt has ``slug``: redirect to the same address under the new slug if a prompt was renamed from it, else 404.

    The rest of the path and the query are kept. 301 for a page (GET, HEAD); 308 for a form or a
    script's POST, which keeps the method and body (a 301 would turn it into a GET of a form's action).
    """
    moved = renamed_prompt(slug)
    if moved is None:
        abort(404, f"There is no prompt with the slug {slug!r}.")
    old_prefix = f"/prompts/{slug}"
    rest = request.path[len(old_prefix) :] if request.path.startswith(old_prefix) else ""
    target = f"{request.script_root}/prompts/{moved.slug}{quote(rest)}"
    if request.query_string:
        target += "?" + request.query_string.decode("latin-1")
    abort(redirect(target, 301 if request.method in ("GET", "HEAD") else 308))


def add_slug(endpoint, values) -> None:
    """url_for of a prompt playground's views fills in the slug of the prompt being shown."""
    if endpoint.startswith(PROMPT_PLAYGROUND + ".") and g.get("prompt") is not None:
        values.setdefault("slug", g.prompt.slug)


def current_settings(session) -> PlaygroundSettings:
    """The settings of the playground being shown; a prompt's start from its latest version."""
    latest = g.get("latest_version")
    return load_settings(session, g.playground, settings_from_version(latest) if latest is not None else None)


def settings_to_send_now(session) -> PlaygroundSettings:
    """The settings the playground being shown sends a turn with (template rendered; raises TemplateProblem)."""
    return settings_to_send(current_settings(session), g.get("latest_version"))


def publish_settings_saved(session) -> None:
    """Tell the session's other tabs that this playground's settings changed (their form is now stale)."""
    live.publish(
        session.store_id,
        "settings.saved",
        {"playground": g.playground, "digest": settings_version(current_settings(session))},
    )
