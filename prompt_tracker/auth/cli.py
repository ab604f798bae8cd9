"""``flask users``: create, list, disable and enable the accounts that may sign in; passwords and admins.

Every change is an audit event whose actor is ``cli:`` and the operating-system user.
"""

import sys

import click
from flask.cli import AppGroup

from ..audit import cli_actor
from .accounts import AccountError, create_user, existing_user, list_users, set_admin, set_disabled, set_password

users_cli = AppGroup("users", help="Manage the users who may sign in (AUTH_MODE=accounts).")


def read_password(password_stdin: bool) -> str:
    """The password from standard input (one line), or asked twice on the terminal."""
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' if count != 1 else ''}"


@users_cli.command("create")
@click.argument("email")
@click.option("--admin", is_flag=True, help="The user may move protected labels and manage users.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input instead of asking.")
def create_command(email: str, admin: bool, password_stdin: bool) -> None:
    """Create a user who signs in with EMAIL and a password."""
    password = read_password(password_stdin)
    try:
        user = create_user(email, password, admin=admin, actor=cli_actor())
    except AccountError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Created {'admin ' if user.is_admin else ''}user {user.email}.")


@users_cli.command("list")
def list_command() -> None:
    """List every user, with role, state and last sign-in."""
    users = list_users()
    for user in users:
        state = "disabled" if user.disabled else "active"
        last = user.last_login_at.strftime("%Y-%m-%d %H:%M") if user.last_login_at else "never"
        click.echo(f"{user.email}\t{'admin' if user.is_admin else 'user'}\t{state}\tlast sign-in {last}")
    click.echo(f"{plural(len(users), 'user')}.")


@users_cli.command("disable")
@click.argument("email")
@click.option("--enable", is_flag=True, help="Enable the user again instead (as `flask users enable`).")
def disable_command(email: str, enable: bool) -> None:
    """Disable a user: every session of theirs ends at once and they cannot sign in again."""
    try:
        user, ended = set_disabled(email, disabled=not enable, actor=cli_actor())
    except AccountError as error:
        raise click.ClickException(str(error)) from None
    if enable:
        click.echo(f"Enabled {user.email}: they can sign in again.")
    else:
        click.echo(f"Disabled {user.email}: signed out of {plural(ended, 'session')}.")


@users_cli.command("enable")
@click.argument("email")
def enable_command(email: str) -> None:
    """Enable a disabled user again: they can sign in."""
    try:
        user, _ = set_disabled(email, disabled=False, actor=cli_actor())
    except AccountError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Enabled {user.email}: they can sign in again.")


@users_cli.command("set-admin")
@click.argument("email")
@click.option("--admin/--no-admin", default=True, help="Make the user an admin (default), or no longer one.")
def set_admin_command(email: str, admin: bool) -> None:
    """Make a user an admin (moves protected labels, manages users, reads the audit log), or not."""
    try:
        user = set_admin(email, admin, actor=cli_actor())
    except AccountError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"{user.email} is {'now an admin' if user.is_admin else 'no longer an admin'}.")


@users_cli.command("set-password")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input instead of asking.")
def set_password_command(email: str, password_stdin: bool) -> None:
    """Set a user's password; every session of theirs ends (they sign in with the new one)."""
    try:
        user = existing_user(email)
        ended = set_password(user, read_password(password_stdin), actor=cli_actor())
    except AccountError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Changed the password of {user.email}: signed out of {plural(ended, 'session')}.")
