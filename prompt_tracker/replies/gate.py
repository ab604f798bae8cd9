"""The one gate every provider call passes (DESIGN, "A reply's life", point 8).

Sends, Retry, edit and resend, Compare, every Replay turn: each reply is admitted here, on the
**effective** settings it will be sent with (saved settings, a prompt version, a Compare or Replay
choice), before anything is stored or queued:

- the provider exists and the model is on the allow-list (ALLOWED_MODELS);
- ``max_tokens`` is at most MAX_TOKENS_CEILING: a larger value (a version or settings saved before
  the ceiling was lowered) is **clamped** to it, and the reply records the value sent;
- the rendered system prompt is at most MAX_SYSTEM_PROMPT_CHARS, and the message the reply answers
  at most MAX_MESSAGE_CHARS (an imported message may be longer: its Retry is refused);
- the user's open replies (MAX_OPEN_REPLIES, per user, every session and companion conversation
  together) and the daily budget, checked and reserved in one atomic step (``limits.budget.reserve``).

The admission's hold travels in the reply's ticket; the worker settles it when the reply ends, and
``release`` gives it back when the reply is not queued after all. The send rate (RATE_LIMIT_SENDS)
is Flask-Limiter's, on the views.
"""

from dataclasses import dataclass

import msgspec
from flask import current_app

from ..domain.holds import Hold
from ..domain.refusals import Refused
from ..domain.settings import MAX_TOKENS_RANGE, PlaygroundSettings
from ..extensions import services
from ..limits import budget
from ..limits.models import check_model, max_tokens_ceiling
from ..providers import UnknownProviderError, get_provider
from .context import estimated_tokens, fixed_text, request_tokens


class UnknownProvider(Refused):
    """The settings name a provider that is not registered (providers' ``UnknownProviderError``, refused)."""

    status = 422


class NotSendable(Refused, ValueError):
    """What the reply would send is past a size limit (the system prompt, or the message it answers)."""

    status = 422


@dataclass(frozen=True)
class Admission:
    """A reply let through: the settings it is sent with, and its hold on the user's budget and open replies."""

    settings: PlaygroundSettings
    hold: Hold | None


def check_provider(name: str) -> None:
    """Refuse a turn for an unknown provider (before anything is stored)."""
    try:
        get_provider(name)
    except UnknownProviderError as error:
        raise UnknownProvider(str(error)) from None


def effective_settings(settings: PlaygroundSettings) -> PlaygroundSettings:
    """The settings a reply is sent with: provider and model checked, ``max_tokens`` clamped to the ceiling."""
    check_provider(settings.provider)
    check_model(settings.provider, settings.model)
    limit = current_app.config["MAX_SYSTEM_PROMPT_CHARS"]
    if len(settings.system_prompt) > limit:
        raise NotSendable(
            f"The system prompt is longer than the limit of {limit:,} characters "
            f"({len(settings.system_prompt):,} once rendered)."
        )
    ceiling = max_tokens_ceiling(MAX_TOKENS_RANGE[1])
    if settings.max_tokens > ceiling:
        settings = msgspec.structs.replace(settings, max_tokens=ceiling)
    return settings


def admit(
    user: str | None,
    settings: PlaygroundSettings,
    store_id: str,
    playground: str | None,
    answers: str = "",
    new_text: str = "",
    replacing: int = 0,
) -> Admission:
    """Let one reply through the gate or raise the refusal that says why; nothing is stored or queued here.

    ``answers`` is the text of the message the reply answers (the new message of a send, the
    message before a retried reply); ``new_text`` what the request adds to ``playground``'s
    conversation as it is stored now (a send's message, a replay turn's); ``playground`` None: the
    request has no history yet (a replay's first turn); ``replacing``: open replies the action stops
    (an edit's), which leave room for this one. Raises UnknownProvider,
    ModelNotAllowed, NotSendable, TooManyOpenReplies or BudgetExceeded.
    """
    settings = effective_settings(settings)
    limit = current_app.config["MAX_MESSAGE_CHARS"]
    if len(answers) > limit:
        raise NotSendable(
            f"Messages are limited to {limit:,} characters; the one this reply answers has {len(answers):,}."
        )
    if playground is None:
        estimate = estimated_tokens([], fixed_text(settings), new_text, current_app.config["MAX_HISTORY_CHARS"])
    else:
        estimate = request_tokens(services.conversations, store_id, playground, fixed_text(settings), new_text)
    hold = budget.reserve(
        user,
        settings.provider,
        settings.model,
        estimate,
        settings.max_tokens,
        seconds=current_app.config["JOB_TIMEOUT"] + 3600,  # as long as the reply's ticket
        replacing=replacing,
    )
    return Admission(settings, hold)


def release(admission: Admission | None) -> None:
    """Give back the hold of a reply that was admitted but not queued (nothing was sent)."""
    if admission is not None:
        budget.settle(admission.hold, None, called=False)


def room_for(user: str | None, replies: int) -> bool:
    """Whether ``user`` may open ``replies`` more replies now (a send with Compare on opens two)."""
    return budget.open_replies(user) + replies <= current_app.config["MAX_OPEN_REPLIES"]


def admit_run_call(user: str | None, settings: PlaygroundSettings, input_tokens: int) -> Admission:
    """Let one model call of a test run (a case, a round of its tool calls, a judge) through the gate.

    The same checks as a reply (provider, allow-list, ``max_tokens`` ceiling, system prompt size) and its
    cost reserved against ``user``'s daily budget; not counted among the user's open replies, so a run
    never blocks the playground (a run has its own bound, EVAL_CONCURRENCY). Raises what ``admit`` raises.
    """
    settings = effective_settings(settings)
    hold = budget.reserve(
        user,
        settings.provider,
        settings.model,
        input_tokens,
        settings.max_tokens,
        seconds=current_app.config["JOB_TIMEOUT"] + 3600,
        open_reply=False,
    )
    return Admission(settings, hold)
