"""/account: who you are, your password (its change ends your other sessions), a link to your API tokens."""

from flask import current_app, flash, g, redirect, render_template, session, url_for

from ...auth.accounts import MIN_PASSWORD_CHARS, AccountError, WrongPassword, change_own_password
from ...extensions import limiter
from ..identity import current_user_is_admin, remember_signed_in
from ..prompts.forms import first_error
from ..rate_limits import user_key
from . import bp
from .forms import PasswordForm


def account_page(form=None, status=200):
    """The account page; ``form`` keeps what was typed (never the passwords: browsers do not refill them)."""
    user = g.get("user")
    return render_template(
        "account/index.html",
        user=user,
        is_admin=current_user_is_admin(),
        can_change_password=bool(user is not None and user.password_hash),
        min_password_chars=MIN_PASSWORD_CHARS,
        form=form or PasswordForm(formdata=None),
    ), status


def wrong_current_password(response) -> bool:
    """Only a wrong current password counts against the limit (as failed sign-ins do)."""
    return response.status_code == 401


@bp.get("")
def index():
    return account_page()


@bp.post("/password")
@limiter.limit(lambda: current_app.config["RATE_LIMIT_LOGINS"], key_func=user_key, deduct_when=wrong_current_password)
def change_password():
    """Change one's own password: every other session of the user ends, this one gets a new id."""
    user = g.get("user")
    form = PasswordForm()
    if user is None or not user.password_hash:
        flash("Your password is not kept here: " + no_password_reason(), "error")
        return account_page(form, 409)
    if not form.validate():
        flash(f"Password not changed: {first_error(form)}", "error")
        return account_page(form, 422)
    before = session.own_store_id  # this browser's session (not the user's workspace)
    try:
        ended = change_own_password(user, form.current_password.data, form.new_password.data, keep_session=before)
    except WrongPassword as problem:
        flash(str(problem), "error")
        return account_page(form, 401)
    except AccountError as problem:
        flash(f"Password not changed: {problem}", "error")
        return account_page(form, 422)
    # A new id for this session too, as at sign-in: a copy of the old cookie stops working.
    current_app.session_interface.regenerate(session)
    remember_signed_in(user, replaces=before)
    others = f"{ended} other session{'s' if ended != 1 else ''}"
    flash(f"Password changed. You stay signed in here; {others} ended.", "info")
    return redirect(url_for(".index"), 303)


def no_password_reason() -> str:
    mode = current_app.config["AUTH_MODE"]
    if mode == "none":
        return "sign-in is off (AUTH_MODE=none)."
    return "the reverse proxy signs you in (AUTH_MODE=header)."
