"""``flask prompts export`` / ``flask prompts import``: prompts as JSON, for keeping them in git."""

import click
from flask.cli import AppGroup
from sqlalchemy.exc import SQLAlchemyError

from ..audit import cli_actor
from .db_errors import is_missing_table
from .library import PromptInvalid, find_prompt
from .transfer import export_prompts, import_prompts

prompts_cli = AppGroup("prompts", help="Export and import prompts with all their versions (JSON).")


@prompts_cli.command("export")
@click.option("--slug", help="Export only the prompt with this slug.")
@click.option(
    "--output", "-o", type=click.File("wb"), default="-", help="Write to this file (default: standard output)."
)
def export_command(slug, output):
    """Write prompts and all their versions as JSON."""
    try:
        if slug and find_prompt(slug) is None:
            raise click.ClickException(f"There is no prompt with the slug {slug!r}.")
        output.write(export_prompts(slug))
    except SQLAlchemyError as error:
        raise click.ClickException(database_problem(error)) from None


@prompts_cli.command("import")
@click.argument("file", type=click.File("rb"))
def import_command(file):
    """Import prompts from an export file; versions already there are not added again."""
    try:
        counts = import_prompts(file.read(), actor=cli_actor())
    except PromptInvalid as problem:
        raise click.ClickException(f"{file.name}: {problem} Nothing was imported.") from None
    except SQLAlchemyError as error:
        raise click.ClickException(database_problem(error) + " Nothing was imported.") from None
    click.echo(
        f"Imported {file.name}: {counts['prompts_created']} new prompts, {counts['prompts_updated']} updated, "
        f"{counts['versions_added']} new versions, {counts['versions_unchanged']} already there."
    )


def database_problem(error: SQLAlchemyError) -> str:
    """A sentence for a database error met by a command."""
    if is_missing_table(error):
        return "The database has no prompt tables yet: run `flask db upgrade` first."
    return f"The database is not reachable ({error.__class__.__name__}); check DATABASE_URL."
