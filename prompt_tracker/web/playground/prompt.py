"""What a prompt's playground adds to the playground views: which prompt, its settings, its versions.

The playground blueprint is registered twice: at /playground (the standalone playground) and at
/prompts/<slug>/playground. Its views use ``g.playground``, set here from the URL.
"""

import msgspec
from flask import abort, g

from ...domain.settings import STANDALONE, PlaygroundSettings, load_settings
from ...prompts.library import prompt_with_latest
from ...prompts.models import PromptVersion
from ...prompts.variables import TemplateProblem, render, variable_names
from ...providers import PARAM_NAMES

PROMPT_PLAYGROUND = "prompt_playground"  # the name of the blueprint's second registration


def playground_name(prompt_id: int) -> str:
    """The playground of a prompt: keyed by id, so a renamed prompt keeps its conversation."""
    return f"prompt-{prompt_id}"


def open_playground(endpoint, values) -> None:
    """Before a playground view: set ``g.playground`` (and ``g.prompt``, with one query) from the URL."""
    slug = values.pop("slug", None) if values else None
    g.prompt = g.latest_version = None
    g.playground = STANDALONE
    if slug is None:
        return  # the standalone playground: no database query at all
    found = prompt_with_latest(slug)
    if found is None:
        abort(404, f"There is no prompt with the slug {slug!r}.")
    g.prompt, g.latest_version = found
    g.playground = playground_name(g.prompt.id)


def add_slug(endpoint, values) -> None:
    """url_for of a prompt playground's views fills in the slug of the prompt being shown."""
    if endpoint.startswith(PROMPT_PLAYGROUND + ".") and g.get("prompt") is not None:
        values.setdefault("slug", g.prompt.slug)


def settings_from_version(version: PromptVersion) -> PlaygroundSettings:
    """Playground settings that start from a saved version (parameters it does not set keep their defaults)."""
    params = {name: value for name, value in (version.params or {}).items() if name in PARAM_NAMES}
    try:
        return msgspec.convert(
            {
                "system_prompt": version.system_prompt,
                "provider": version.provider,
                "model": version.model,
                "variables": dict(version.variables or {}),
                **params,
            },
            PlaygroundSettings,
        )
    except msgspec.ValidationError:  # a hand-edited import with odd parameter types: the text still loads
        return PlaygroundSettings(
            system_prompt=version.system_prompt,
            provider=version.provider,
            model=version.model,
            variables=dict(version.variables or {}),
        )


def current_settings(session) -> PlaygroundSettings:
    """The settings of the playground being shown; a prompt's start from its latest version."""
    latest = g.get("latest_version")
    return load_settings(session, g.playground, settings_from_version(latest) if latest is not None else None)


def publish_settings_saved(session) -> None:
    """Tell the session's other tabs that this playground's settings changed (their form is now stale)."""
    from ...replies import live

    live.publish(
        session.store_id,
        "settings.saved",
        {"playground": g.playground, "digest": live.settings_digest(current_settings(session))},
    )


def is_saved(settings: PlaygroundSettings, version: PromptVersion) -> bool:
    """True when the settings say what ``version`` says (variable values aside)."""
    return (settings.system_prompt, settings.provider, settings.model, settings.params()) == (
        version.system_prompt,
        version.provider,
        version.model,
        version.params or {},
    )


def settings_to_send(settings: PlaygroundSettings) -> PlaygroundSettings:
    """The settings a turn is sent with: the system prompt rendered, the version (or draft) and values recorded.

    Raises TemplateProblem (before anything is stored) when the template cannot be rendered.
    """
    rendered = render(settings.system_prompt, settings.variables)
    used = {name: settings.variables.get(name, "") for name in variable_names(settings.system_prompt)}
    latest = g.get("latest_version")
    version, draft = None, False
    if latest is not None:
        saved = is_saved(settings, latest)
        version, draft = (latest.number if saved else None), not saved
    return msgspec.structs.replace(settings, system_prompt=rendered, variables=used, version=version, draft=draft)


def variables_panel(settings: PlaygroundSettings) -> tuple[list[str], str | None]:
    """The variable names of the settings' system prompt, or the sentence saying why it does not parse."""
    try:
        return variable_names(settings.system_prompt), None
    except TemplateProblem as problem:
        return [], str(problem)
