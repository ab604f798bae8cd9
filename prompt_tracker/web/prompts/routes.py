"""Views of the prompt library: list, create, show, diff, edit, archive, "Save as version", labels and history."""

import msgspec
from flask import abort, flash, g, redirect, render_template, request, session, url_for

from ...audit import EVENT_KINDS, list_events
from ...domain.settings import STANDALONE, load_settings, store_settings
from ...prompts.diff import diff_versions
from ...prompts.labels import labels_by_version, move_label, prompt_labels, protected_labels, resolve_version
from ...prompts.library import (
    MAX_QUERY_CHARS,
    PromptInvalid,
    create_prompt,
    edit_prompt,
    find_prompt,
    list_prompts,
    save_version,
    search_text,
    set_archived,
    version_of,
)
from ...prompts.settings import (
    playground_name,
    playground_version,
    restored_settings,
    settings_from_version,
    variables_panel,
    version_tool_fields,
)
from ..errors import refusals_shown_by
from ..identity import current_actor, current_user_is_admin
from ..playground.forms import SettingsForm
from ..playground.prompt import (
    PROMPT_PLAYGROUND,
    current_settings,
    load_prompt,
    moved_or_404,
    open_playground,
    publish_settings_saved,
)
from . import bp
from .forms import PromptForm, VersionForm, first_error

# The playground page (its template) asks which variables the system prompt has.
bp.add_app_template_global(variables_panel)


def author() -> str:
    """Who is saving: the signed-in user once there is sign-in; the single local user until then."""
    return g.get("user_name") or "local"


def prompt_or_404(slug: str):
    """The prompt with ``slug``, a redirect if it was renamed from it, or a 404 page that says so."""
    prompt = find_prompt(slug)
    if prompt is None:
        moved_or_404(slug)  # an old slug of a renamed prompt redirects
    return prompt


def list_page(form=None, status=200, search_error=None):
    """The list page: one page of prompts (or, for a search that was stopped, its sentence) and the new-prompt form."""
    typed = request.args.get("q", "")
    archived = request.args.get("archived") == "1"
    page, version_counts = None, {}
    if search_error is None:
        page, version_counts = list_prompts(typed, request.args.get("page", 1, type=int), archived=archived)
    cut = len(typed.strip()) > MAX_QUERY_CHARS
    return render_template(
        "prompts/index.html",
        page=page,
        version_counts=version_counts,
        query=search_text(typed),
        max_query_chars=MAX_QUERY_CHARS,
        search_notice=f"Only the first {MAX_QUERY_CHARS} characters of a search are used." if cut else None,
        search_error=search_error,
        archived=archived,
        form=form or PromptForm(formdata=None),
    ), status


def search_stopped_page(refusal):
    """A search stopped by its timeout: the list page with the sentence in place of the list."""
    return list_page(search_error=refusal.sentence, status=refusal.status)


@bp.get("")
@refusals_shown_by(search_stopped_page)
def index(form=None, status=200):
    return list_page(form, status)


@bp.post("")
def create():
    """Create a prompt with version 1 (also "Save as new prompt" from the standalone playground)."""
    form = PromptForm()
    from_playground = request.form.get("from_playground") == STANDALONE
    settings = load_settings(session, STANDALONE)
    if from_playground:
        # The standalone playground's settings form posts here: provider, model and params come with it.
        settings_form = SettingsForm()
        if not settings_form.validate():
            flash("Not saved: " + (first_error(settings_form) or "check the settings."), "error")
            return redirect(url_for("playground.index"), 303)
        settings = msgspec.structs.replace(settings_form.to_settings(), variables=settings.variables)
    error = first_error(form) if not form.validate() else None
    if error is None:
        try:
            prompt = create_prompt(
                form.name.data,
                form.system_prompt.data if not from_playground else settings.system_prompt,
                slug=form.slug.data,
                description=form.description.data,
                provider=settings.provider,
                model=settings.model,
                params=settings.params(),
                variables=settings.variables if from_playground else None,
                author=author(),
                actor=current_actor(),
            )
        except PromptInvalid as problem:
            error = str(problem)
    if error:
        flash(error, "error")
        if from_playground:
            return redirect(url_for("playground.index"), 303)
        return index(form=form, status=422)  # the typed text stays in the form
    flash(f"Prompt {prompt.name!r} created with version 1.", "info")
    return redirect(url_for(".show", slug=prompt.slug), 303)


def in_playground(prompt, versions) -> int | None:
    """Which version the prompt's playground (this user's) holds: None for unsaved changes (a draft)."""
    latest = versions[0]
    settings = load_settings(session, playground_name(prompt.id), settings_from_version(latest))
    return playground_version(settings, latest)


def show_page(prompt, form=None, status=200):
    """The prompt page: its versions with their labels, which one the playground holds, the label and edit forms."""
    versions = sorted(prompt.versions, key=lambda version: version.number, reverse=True)
    return render_template(
        "prompts/show.html",
        prompt=prompt,
        versions=versions,
        labels=labels_by_version(prompt),
        label_versions=prompt_labels(prompt),
        protected_labels=protected_labels(),
        is_admin=current_user_is_admin(),
        in_playground=in_playground(prompt, versions),
        form=form or PromptForm(formdata=None, obj=prompt),
    ), status


@bp.get("/<slug>")
def show(slug):
    return show_page(prompt_or_404(slug))


def label_refused(refusal):
    """A label move refused (protected, bad name, no such version): the prompt page with the sentence."""
    flash(refusal.sentence, "error")
    return show_page(prompt_or_404(request.view_args["slug"]), status=refusal.status)


@bp.post("/<slug>/labels")
@refusals_shown_by(label_refused)
def labels(slug):
    """Point a label at a version (``label``, ``version``): create it, move it, or move it back (a rollback)."""
    prompt = prompt_or_404(slug)
    label = request.form.get("label", "")
    before, after = move_label(
        prompt, label, request.form.get("version", ""), current_actor(), admin=current_user_is_admin()
    )
    label = label.strip().lower()
    if before == after:
        flash(f"The label {label} already points at version {after}.", "info")
    elif before is None:
        flash(f"The label {label} now points at version {after}.", "info")
    else:
        flash(f"The label {label} moved from version {before} to version {after}.", "info")
    return redirect(url_for(".show", slug=prompt.slug, _anchor=f"v{after}"), 303)


@bp.get("/<slug>/history")
def history(slug):
    """The prompt's audit events, newest first."""
    prompt = prompt_or_404(slug)
    kind = request.args.get("kind") if request.args.get("kind") in EVENT_KINDS else None
    page = list_events(page=request.args.get("page", 1, type=int), prompt_id=prompt.id, kind=kind)
    return render_template("prompts/history.html", prompt=prompt, page=page, kind=kind)


@bp.post("/<slug>/edit")
def edit(slug):
    """Rename (name, slug) or describe a prompt; its versions and open playground follow (keyed by id)."""
    prompt = prompt_or_404(slug)
    form = PromptForm()
    error = first_error(form) if not form.validate() else None
    if error is None:
        try:
            edit_prompt(
                prompt,
                name=form.name.data,
                slug=form.slug.data,
                description=form.description.data,
                actor=current_actor(),
            )
        except PromptInvalid as problem:
            error = str(problem)
    if error:
        flash(error, "error")
        return show_page(prompt, form=form, status=422)
    flash("Prompt saved.", "info")
    return redirect(url_for(".show", slug=prompt.slug), 303)


@bp.post("/<slug>/archive")
def archive(slug):
    prompt = prompt_or_404(slug)
    set_archived(prompt, True, actor=current_actor())
    flash(f"Prompt {prompt.name!r} archived: hidden from the list, restorable from Archived.", "info")
    return redirect(url_for(".show", slug=prompt.slug), 303)


@bp.post("/<slug>/restore")
def restore(slug):
    prompt = prompt_or_404(slug)
    set_archived(prompt, False, actor=current_actor())
    flash(f"Prompt {prompt.name!r} restored.", "info")
    return redirect(url_for(".show", slug=prompt.slug), 303)


@bp.get("/<slug>/diff")
def diff(slug):
    prompt = prompt_or_404(slug)
    numbers = sorted(version.number for version in prompt.versions)
    old_number = request.args.get("from", type=int) or (numbers[-2] if len(numbers) > 1 else numbers[-1])
    new_number = request.args.get("to", type=int) or numbers[-1]
    old, new = version_of(prompt, old_number), version_of(prompt, new_number)
    if old is None or new is None:
        missing = old_number if old is None else new_number
        abort(404, f"Prompt {prompt.slug!r} has no version {missing}; it has versions 1 to {numbers[-1]}.")
    view = "unified" if request.args.get("view") == "unified" else "split"
    return render_template(
        "prompts/diff.html",
        prompt=prompt,
        old=old,
        new=new,
        numbers=numbers,
        view=view,
        fields=diff_versions(old, new),
    )


@bp.post("/<slug>/versions/<int:number>/restore")
def restore_version(slug, number):
    """Make the prompt playground's settings version ``number``'s (no new version is saved).

    "Restore" stays on the prompt page; "Open in playground" (``then=playground``) goes there.
    """
    open_playground(request.endpoint, {"slug": slug})  # g.prompt, g.latest_version, g.playground
    load_prompt()
    version = version_of(g.prompt, number)
    if version is None:
        abort(404, f"Prompt {g.prompt.slug!r} has no version {number}.")
    store_settings(session, g.playground, restored_settings(version, current_settings(session)))
    publish_settings_saved(session)  # other tabs' settings forms are now stale, and say so
    latest = g.latest_version.number
    if request.form.get("then") == "playground":
        than = "" if number == latest else f"; the latest is version {latest}"
        flash(f"Settings of version {number} loaded{than}.", "info")
        return redirect(url_for(f"{PROMPT_PLAYGROUND}.index", slug=g.prompt.slug), 303)
    flash(f"The playground's settings are version {number}'s now (no new version was saved).", "info")
    return redirect(url_for(".show", slug=g.prompt.slug, _anchor=f"v{number}"), 303)


@bp.post("/<slug>/playground/versions")
def save_playground_version(slug):
    """Save the prompt playground's settings as the next version (the settings form may come along)."""
    open_playground(request.endpoint, {"slug": slug})  # as the playground's views do: g.prompt, g.playground
    load_prompt()
    back = redirect(url_for(f"{PROMPT_PLAYGROUND}.index", slug=slug), 303)
    settings = current_settings(session)
    if "model" in request.form:
        # Sent from the settings form (button or Ctrl/Cmd+S): save what is in the editor.
        settings_form = SettingsForm()
        if not settings_form.validate():
            flash("Version not saved: " + (first_error(settings_form) or "check the settings."), "error")
            return back
        settings = msgspec.structs.replace(settings_form.to_settings(), variables=settings.variables)
        store_settings(session, g.playground, settings)
        publish_settings_saved(session)
    form = VersionForm()
    if not form.validate():
        flash("Version not saved: " + first_error(form), "error")
        return back
    try:
        version = save_version(
            g.prompt.id,
            system_prompt=settings.system_prompt,
            provider=settings.provider,
            model=settings.model,
            params=settings.params(),
            variables=settings.variables,
            **version_tool_fields(settings),
            note=form.note.data or "",
            author=author(),
            actor=current_actor(),
        )
    except PromptInvalid as problem:
        flash(f"Version not saved: {problem}", "error")
        return back
    flash(f"Saved as version {version.number}.", "info")
    return back


@bp.post("/<slug>/playground/load")
@refusals_shown_by(label_refused)
def load_into_playground(slug):
    """Load a version, by ``label`` (``production``, ``latest``…) or number, into the prompt's playground.

    The playground's settings become the version's; the values typed for its variables stay.
    """
    open_playground(request.endpoint, {"slug": slug})  # as the playground's views do: g.prompt, g.playground
    load_prompt()
    label = request.form.get("label", "")
    version = resolve_version(g.prompt, label=label or None, version=request.form.get("version") or None)
    # The version's settings, the values typed for its variables kept; replies say "version N" (not "draft").
    store_settings(session, g.playground, restored_settings(version, current_settings(session)))
    publish_settings_saved(session)
    named = f" ({label.strip().lower()})" if label else ""
    flash(f"Loaded version {version.number}{named} into the playground.", "info")
    return redirect(url_for(f"{PROMPT_PLAYGROUND}.index", slug=slug), 303)
