"""``flask users``: create, list and disable the accounts that may sign in."""

import sys

import click
from flask.cli import AppGroup

from .accounts import AccountError, create_user, list_users, set_disabled

users_cli = AppGroup("users", help="Manage the users who may sign in (AUTH_MODE=accounts).")


@users_cli.command("create")
@click.argument("email")
@click.option("--admin", is_flag=True, help="The user may disable other users.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input instead of asking.")
def create_command(email: str, admin: bool, password_stdin: bool) -> None:
    """Create a user who signs in with EMAIL and a password."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user = create_user(email, password, admin=admin)
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
    click.echo(f"{len(users)} user{'s' if len(users) != 1 else ''}.")


@users_cli.command("disable")
@click.argument("email")
@click.option("--enable", is_flag=True, help="Enable the user again instead.")
def disable_command(email: str, enable: bool) -> None:
    """Disable a user: every session of theirs ends at once and they cannot sign in again."""
    try:
        user, ended = set_disabled(email, disabled=not enable)
    except AccountError as error:
        raise click.ClickException(str(error)) from None
    if enable:
        click.echo(f"Enabled {user.email}: they can sign in again.")
    else:
        click.echo(f"Disabled {user.email}: signed out of {ended} session{'s' if ended != 1 else ''}.")
