"""Pages of the API: a user's own tokens (``/account/tokens``) and the webhook deliveries (``/admin/webhooks``)."""

from flask import abort, current_app, flash, g, redirect, render_template, request, url_for

from ...auth.accounts import AccountError, proxy_user
from ...auth.tokens import MAX_TOKEN_NAME_CHARS, create_token, revoke_token, user_tokens
from ...webhooks import recent_deliveries
from ..identity import LOCAL_USER, current_user_is_admin
from . import pages_bp

# The deliveries' list is a partial the audit page includes too; it fetches them itself when not given.
pages_bp.add_app_template_global(recent_deliveries, "recent_webhook_deliveries")


def page_user():
    """The user of this page: the signed-in one; with AUTH_MODE=none, the local user (a row made on first use)."""
    if current_app.config["AUTH_MODE"] == "none":
        return proxy_user(LOCAL_USER, actor=LOCAL_USER)
    return g.user


def require_admin() -> None:
    """403 unless an admin asks (with AUTH_MODE=none everyone is the local admin)."""
    if not current_user_is_admin():
        abort(403, "Only an admin can see this page. Ask an admin (`flask users set-admin EMAIL`).")


def tokens_page(new_token=None, error=None, status=200):
    user = page_user()
    return render_template(
        "api/tokens.html",
        tokens=user_tokens(user),
        new_token=new_token,
        error=error,
        typed_name=request.form.get("name", "") if error else "",
        max_name_chars=MAX_TOKEN_NAME_CHARS,
    ), status


@pages_bp.get("/account/tokens")
def tokens():
    return tokens_page()


@pages_bp.post("/account/tokens")
def create():
    """Create a token and show it, once: it is not kept anywhere (only its SHA-256 is)."""
    try:
        new = create_token(page_user(), request.form.get("name", ""))
    except AccountError as error:
        return tokens_page(error=str(error), status=422)
    return tokens_page(new_token=new)


@pages_bp.post("/account/tokens/<int:token_id>/revoke")
def revoke(token_id: int):
    try:
        record = revoke_token(token_id, user=page_user())
    except AccountError as error:
        abort(404, str(error))
    flash(f"Token {record.name!r} revoked: requests with it are refused from now on.", "info")
    return redirect(url_for(".tokens"), 303)


@pages_bp.get("/admin/webhooks")
def webhooks():
    require_admin()
    return render_template("api/webhooks.html", deliveries=recent_deliveries(100))
