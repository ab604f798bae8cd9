"""The small form of Compare and Replay: a provider and model, and (in a prompt's playground) a version."""

import msgspec

from ..domain.settings import MAX_MODEL_CHARS, PlaygroundSettings
from ..prompts.library import version_of
from ..prompts.models import Prompt, PromptVersion
from ..prompts.settings import settings_from_version, settings_to_send
from ..providers import UnknownProviderError, get_provider
from .send import InvalidMessage


class InvalidChoice(InvalidMessage):
    """The chosen model or version cannot be used; the text says why (a send with it is refused, 422)."""


class Choice(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Which model (and which saved version of the prompt, if any) a companion conversation uses."""

    provider: str
    model: str
    version: int | None = None  # None: the playground's own system prompt and parameters

    def label(self) -> str:
        """How the page names it: "openai / gpt-4o-mini · version 2"."""
        return f"{self.provider} / {self.model}" + (f" · version {self.version}" if self.version else "")


def choice_from_form(form, has_versions: bool) -> Choice:
    """Read the form's provider, model and version (only a prompt's playground ``has_versions``); raise InvalidChoice."""
    provider = (form.get("provider") or "").strip()
    model = (form.get("model") or "").strip()
    try:
        get_provider(provider)
    except UnknownProviderError:
        raise InvalidChoice("Choose one of the providers offered.") from None
    if not model:
        raise InvalidChoice("Name a model.")
    if len(model) > MAX_MODEL_CHARS:
        raise InvalidChoice(f"Model names are limited to {MAX_MODEL_CHARS} characters.")
    version = (form.get("version") or "").strip()
    if version and not version.isdigit():
        raise InvalidChoice("Choose a version from the list.")
    if version and not has_versions:
        raise InvalidChoice("Only a prompt's playground has versions.")
    return Choice(provider=provider, model=model, version=int(version) if version else None)


def load_choice(session, key: str, playground: str) -> Choice | None:
    """The choice stored under ``session[key][playground]``, or None."""
    return as_choice(session.get(key, {}).get(playground))


def as_choice(stored: dict | None) -> Choice | None:
    """A stored choice (a dict in the session blob) as a Choice; None if absent or unreadable."""
    if not stored:
        return None
    try:
        return msgspec.convert(stored, Choice)
    except msgspec.ValidationError:
        return None


def store_choice(session, key: str, playground: str, choice: Choice | None) -> None:
    """Keep (or with None, forget) the choice of one playground in the session."""
    choices = dict(session.get(key, {}))
    if choice is None:
        choices.pop(playground, None)
    else:
        choices[playground] = msgspec.to_builtins(choice)
    session[key] = choices


def settings_for(
    choice: Choice, current: PlaygroundSettings, prompt: Prompt | None, latest: PromptVersion | None
) -> PlaygroundSettings:
    """The settings a companion reply is sent with: the playground's (or the chosen version's), on the chosen model.

    The system prompt is rendered with the playground's variable values; the reply records the
    version when it is exactly that version, else "draft". ``prompt`` and its ``latest`` version are
    the prompt whose playground this is (None for the standalone playground). Raises InvalidChoice or TemplateProblem.
    """
    version = None
    base = current
    if choice.version is not None:
        version = version_of(prompt, choice.version) if prompt is not None else None
        if version is None:
            raise InvalidChoice(f"This prompt has no version {choice.version}.")
        base = msgspec.structs.replace(settings_from_version(version), variables=current.variables)
    chosen = msgspec.structs.replace(base, provider=choice.provider, model=choice.model)
    sent = settings_to_send(chosen, latest)
    if version is not None:
        exact = (chosen.provider, chosen.model) == (version.provider, version.model)
        sent = msgspec.structs.replace(sent, version=version.number if exact else None, draft=not exact)
    return sent
