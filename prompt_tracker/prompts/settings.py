"""A prompt version as playground settings, and the settings a turn is sent with (template rendered)."""

import msgspec

from ..domain.settings import PlaygroundSettings
from ..providers import PARAM_NAMES
from .models import TEXT_FORMAT, PromptVersion
from .variables import TemplateProblem, check_renders, render, variable_names


def playground_name(prompt_id: int) -> str:
    """The playground of a prompt: keyed by id, so a renamed prompt keeps its conversation."""
    return f"prompt-{prompt_id}"


def version_tool_fields(settings: PlaygroundSettings) -> dict:
    """What a version keeps of the settings' tools and structured output (``save_version``'s arguments)."""
    response_format = {"type": settings.response_format}
    if settings.response_format == "json_schema":
        response_format.update(
            schema_name=settings.schema_name, json_schema=settings.json_schema, strict=settings.strict
        )
    return {"tools": list(settings.tools), "tool_choice": settings.tool_choice, "response_format": response_format}


def settings_tool_fields(version: PromptVersion) -> dict:
    """The settings' tool and structured-output fields a version's columns say (the inverse of the above)."""
    response_format = dict(version.response_format or TEXT_FORMAT)
    fields = {
        "tools": list(version.tools or []),
        "tool_choice": version.tool_choice or "auto",
        "response_format": response_format.get("type", "text"),
    }
    if fields["response_format"] == "json_schema":
        fields.update(
            schema_name=response_format.get("schema_name") or "",
            json_schema=response_format.get("json_schema"),
            strict=response_format.get("strict", True),
        )
    return fields


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
                **settings_tool_fields(version),
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


def is_saved(settings: PlaygroundSettings, version: PromptVersion) -> bool:
    """True when the settings say what ``version`` says (variable values aside)."""
    saved = version_tool_fields(settings)
    return (settings.system_prompt, settings.provider, settings.model, settings.params(), *saved.values()) == (
        version.system_prompt,
        version.provider,
        version.model,
        version.params or {},
        list(version.tools or []),
        version.tool_choice or "auto",
        dict(version.response_format or TEXT_FORMAT),
    )


def playground_version(settings: PlaygroundSettings, latest: PromptVersion) -> int | None:
    """Which version of the prompt a playground's settings are (None: an unsaved draft).

    The latest if they say what it says; else the version restored into them, until the settings
    form saves over it (versions never change, so a restored version stays true until then).
    """
    return latest.number if is_saved(settings, latest) else settings.version


def restored_settings(version: PromptVersion, current: PlaygroundSettings) -> PlaygroundSettings:
    """A playground's settings made ``version``'s ("Restore", "Open in playground"), keeping the variable values typed."""
    restored = settings_from_version(version)
    # "Answer with mocks" is how this playground is used, not part of a version: it stays.
    return msgspec.structs.replace(
        restored,
        variables={**restored.variables, **current.variables},
        version=version.number,
        auto_mock=current.auto_mock,
    )


def settings_to_send(settings: PlaygroundSettings, latest: PromptVersion | None) -> PlaygroundSettings:
    """The settings a turn is sent with: the system prompt rendered, the version (or draft) and values recorded.

    ``latest`` is the latest version of the prompt whose playground sends (None: the standalone
    playground). Raises TemplateProblem (before anything is stored) when the template cannot be rendered.
    """
    rendered = render(settings.system_prompt, settings.variables)
    used = {name: settings.variables.get(name, "") for name in variable_names(settings.system_prompt)}
    version, draft = None, False
    if latest is not None:
        version = playground_version(settings, latest)
        draft = version is None
    return msgspec.structs.replace(settings, system_prompt=rendered, variables=used, version=version, draft=draft)


def variables_panel(settings: PlaygroundSettings) -> tuple[list[str], str | None]:
    """The variable names of the settings' system prompt, and the sentence saying why it cannot be rendered.

    A template that does not parse has no names; one that parses but cannot be rendered (too costly,
    a filter misused) keeps its names, so a value that causes the problem can be changed. The trial
    render is bounded like a send's, so a page view stays fast whatever the template.
    """
    try:
        names = variable_names(settings.system_prompt)
    except TemplateProblem as problem:
        return [], str(problem)
    try:
        check_renders(settings.system_prompt, settings.variables)
    except TemplateProblem as problem:
        return names, str(problem)
    return names, None
