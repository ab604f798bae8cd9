"""``flask tokens``: create, list and revoke the read API's tokens."""

import click
from flask.cli import AppGroup

from ..audit import cli_actor
from .accounts import AccountError
from .tokens import all_tokens, create_token_for, revoke_token

tokens_cli = AppGroup("tokens", help="Manage the read API's tokens (Authorization: Bearer <token>).")


def when(moment) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "never"


@tokens_cli.command("create")
@click.argument("email")
@click.option("--name", required=True, help="What uses the token, e.g. 'billing service'.")
def create_command(email: str, name: str) -> None:
    """Create an API token for the user EMAIL; the token is the last line (shown once)."""
    try:
        new = create_token_for(email, name, actor=cli_actor())
    except AccountError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Created token {new.record.id} {new.record.name!r} for {new.record.user.email}; it is not shown again:")
    click.echo(new.token)


@tokens_cli.command("list")
def list_command() -> None:
    """List every token: id, user, name, created, last used, state (never the token)."""
    tokens = all_tokens()
    for token in tokens:
        state = f"revoked {when(token.revoked_at)}" if token.revoked else "active"
        click.echo(
            f"{token.id}\t{token.user.email}\t{token.name}\tcreated {when(token.created_at)}"
            f"\tlast used {when(token.last_used_at)}\t{state}"
        )
    click.echo(f"{len(tokens)} token{'s' if len(tokens) != 1 else ''}.")


@tokens_cli.command("revoke")
@click.argument("token_id", type=int)
def revoke_command(token_id: int) -> None:
    """Revoke the token with id TOKEN_ID: requests with it are refused from now on."""
    try:
        token = revoke_token(token_id, actor=cli_actor())
    except AccountError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Revoked token {token.id} {token.name!r} of {token.user.email}.")
