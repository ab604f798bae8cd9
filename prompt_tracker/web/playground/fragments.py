"""A message's HTML, rendered once: when its record is written final, the store keeps the macro's
output on it (``Message.fragment``) and a page joins the fragments of its window.

What differs per page view is not baked in: the session's CSRF token and the URL of the
conversation's messages (``/playground/messages``, ``/prompts/<slug>/playground/messages``, a
companion's) are markers, replaced once in the joined HTML; an open reply (pending, streaming, or
streaming with its worker gone) is rendered when shown, as is a record stored without a fragment.

A stored fragment begins with ``FRAGMENT_MARK``, which names the markup's version: when the message
markup changes (``_message.html``, or the HTML ``domain.rendering`` writes), bump
``FRAGMENT_VERSION``, and fragments stored before are rendered again when shown (never trusted).
"""

from collections.abc import Iterable

import msgspec
from flask import current_app, render_template
from markupsafe import Markup

from ...domain.rendering import without_inline_styles
from ..identity import work_scope
from .forms import SettingsForm

# Characters that no rendered text can hold as they are: every text of a message reaches the
# HTML escaped ("<" as "&lt;"), so only these markers are replaced.
CSRF_MARK = "<~csrf-token~>"
MESSAGES_URL_MARK = "<~messages-url~>"
# The version of the settings the page shows, which a Retry carries (empty where the page's script sets it).
SETTINGS_VERSION_MARK = "<~settings-version~>"
MESSAGE_TEMPLATE = "playground/_message.html"
# 2: cells aligned by class, the message's source for Copy, data-attempt on each message.
# 3: a form under each unanswered tool call, "Tool" on tool results.
# 4: the Retry form carries the page's settings version.
# 5: Save as test case on a finished reply.
FRAGMENT_VERSION = 5
FRAGMENT_MARK = f"<!--fragment {FRAGMENT_VERSION}-->"


def message_macro():
    """The ``message_item`` macro, seeing the markers as the page's token and messages URL."""
    template = current_app.jinja_env.get_template(MESSAGE_TEMPLATE)
    # Kept on the template itself: a reloaded file (development) is a new template with its own, and an
    # app's macro goes with the app (a module-level cache keyed by template held every app's environment).
    macro = getattr(template, "prompt_tracker_message_macro", None)
    if macro is None:
        # Markup: inserted as they are (a string would reach the HTML escaped, and match nothing).
        module = template.make_module(
            {
                "page_csrf_token": Markup(CSRF_MARK),
                "messages_url": Markup(MESSAGES_URL_MARK),
                "page_settings_version": Markup(SETTINGS_VERSION_MARK),
            }
        )
        macro = template.prompt_tracker_message_macro = module.message_item
    return macro


def message_fragment(message) -> str:
    """The HTML stored on a final message's record (with the markers and ``FRAGMENT_MARK``): what the page shows."""
    return FRAGMENT_MARK + str(message_macro()(message, ()))


def message_html(message, stale_ids: Iterable[str] = (), editing=None) -> str:
    """One message's HTML with the markers: its stored fragment, or the macro's when it has none,
    is open, is the message being edited, or was stored by an older version of the markup."""
    fragment = message.fragment
    if fragment is not None and not message.is_open and (editing is None or editing.id != message.id):
        if fragment.startswith(FRAGMENT_MARK):
            return fragment[len(FRAGMENT_MARK) :]
    if message.html and 'style="' in message.html:  # rendered before cells were aligned by class
        message = msgspec.structs.replace(message, html=without_inline_styles(message.html))
    return str(message_macro()(message, stale_ids, editing))


def with_page_values(html: str, csrf_token: str, messages_url: str, settings_version: str = "") -> Markup:
    """HTML with the markers replaced by this page's CSRF token, messages URL and settings version
    (none: a fragment for the page's script, which sends the version its page shows)."""
    html = html.replace(CSRF_MARK, csrf_token).replace(MESSAGES_URL_MARK, messages_url)
    return Markup(html.replace(SETTINGS_VERSION_MARK, settings_version))


def messages_html(
    messages,
    csrf_token: str,
    messages_url: str,
    stale_ids: Iterable[str] = (),
    editing=None,
    indent: str = "",
    settings_version: str = "",
) -> Markup:
    """The HTML of ``messages`` joined, each on its own line after ``indent``, for one page."""
    if indent:
        joined = "".join(f"{indent}{message_html(message, stale_ids, editing)}\n" for message in messages)
    else:
        joined = "".join(message_html(message, stale_ids, editing) for message in messages)
    return with_page_values(joined, csrf_token, messages_url, settings_version)


SETTINGS_PANEL_TEMPLATE = "playground/_settings_panel.html"
MAX_SETTINGS_PANELS = 512  # per process: one per distinct saved settings a page shows, then start over


def settings_panel(context: dict, save_url: str, csrf_token: str) -> Markup:
    """The page's settings form for saved settings, rendered once per distinct settings and URL.

    It depends only on what ``context`` holds (the settings, their digest and version; the providers
    and limits, fixed for a process) and the URL it posts to (``save_url``);
    the CSRF token is a marker, as in a message's fragment. A form with errors or a conflict is not
    cached: the page renders it.
    """
    key = (save_url, work_scope(), context["settings_version"], msgspec.json.encode(context["settings"]))
    panels = current_app.extensions.setdefault("prompt_tracker.settings_panels", {})
    html = panels.get(key)
    if html is None:
        if len(panels) >= MAX_SETTINGS_PANELS:
            panels.clear()
        form = SettingsForm(formdata=None, data=msgspec.to_builtins(context["settings"]))
        html = panels[key] = render_template(
            SETTINGS_PANEL_TEMPLATE, **context, settings_form=form, page_csrf_token=Markup(CSRF_MARK)
        )
    return Markup(html.replace(CSRF_MARK, csrf_token))
