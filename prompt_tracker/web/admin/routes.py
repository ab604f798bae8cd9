"""Views for admins only: the users and the audit log. Nothing here edits or deletes an audit event."""

from flask import flash, g, redirect, render_template, request, url_for

from ...audit import EVENT_KINDS, list_events
from ...auth.accounts import AccountError, list_users, set_admin, set_disabled
from ...auth.models import User
from ...domain.refusals import Refused
from ...extensions import db
from ...prompts.library import find_prompt
from ..identity import current_actor, current_user_is_admin
from . import bp

USER_ACTIONS = {"disable", "enable", "make-admin", "remove-admin"}


class AdminsOnly(Refused):
    """A page or action for admins, asked by someone who is not one."""

    status = 403


class NotOnYourself(Refused):
    """An admin disabling themselves or giving up their own admin role (a lock-out waiting to happen)."""

    status = 409


@bp.before_request
def admins_only():
    """Every view of this blueprint is for admins (everyone is the local admin in AUTH_MODE=none)."""
    if not current_user_is_admin():
        raise AdminsOnly("Only an admin can see this page. Ask an admin (`flask users set-admin EMAIL`).")


@bp.get("/admin/users")
def users():
    return render_template("admin/users.html", users=list_users(), me=g.get("user"))


@bp.post("/admin/users/<int:user_id>/<action>")
def user_action(user_id: int, action: str):
    """Disable or enable a user (disabling ends their sessions at once), make or unmake an admin."""
    user = db.get_or_404(User, user_id, description=f"There is no user with the id {user_id}.")
    if action not in USER_ACTIONS:
        raise Refused(f"There is no user action {action[:40]!r}.", status=404)
    me = g.get("user")
    if me is not None and me.id == user.id and action in ("disable", "remove-admin"):
        raise NotOnYourself(
            "You cannot disable yourself or remove your own admin role here: ask another admin, "
            "or use `flask users` on the server."
        )
    try:
        if action in ("disable", "enable"):
            _, ended = set_disabled(user.email, action == "disable", actor=current_actor())
            sessions = f"; {ended} session{'s' if ended != 1 else ''} ended" if action == "disable" else ""
            flash(f"{user.email} is {action}d{sessions}.", "info")
        else:
            set_admin(user.email, action == "make-admin", actor=current_actor())
            flash(f"{user.email} is {'now an admin' if user.is_admin else 'no longer an admin'}.", "info")
    except AccountError as problem:
        flash(str(problem), "error")
    return redirect(url_for(".users", _anchor=f"u{user.id}"), 303)


@bp.get("/audit")
def audit():
    """Every audit event, newest first, filterable by prompt (slug), user (name) and kind."""
    slug = request.args.get("prompt", "").strip()
    user = request.args.get("user", "").strip()
    kind = request.args.get("kind", "")
    kind = kind if kind in EVENT_KINDS else ""
    prompt_id = None
    if slug:
        prompt = find_prompt(slug)
        prompt_id = prompt.id if prompt is not None else -1  # an unknown slug: no events, not all of them
    page = list_events(
        page=request.args.get("page", 1, type=int), prompt_id=prompt_id, actor_name=user or None, kind=kind or None
    )
    return render_template(
        "admin/audit.html", page=page, kinds=EVENT_KINDS, filters={"prompt": slug, "user": user, "kind": kind}
    )
