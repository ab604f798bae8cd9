"""``flask evals``: the command group of test cases and runs; here the cases' commands (import, export-cases).

``flask evals run`` is the runs' (``replies/eval_cli.py``), added to this group in the app factory.
"""

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy.exc import SQLAlchemyError

from ..audit import cli_actor
from ..domain.refusals import Refused
from ..prompts.cli import database_problem
from ..prompts.library import find_prompt
from .case_transfer import FORMATS, export_csv, export_jsonl, format_of, import_cases, import_summary

evals_cli = AppGroup("evals", help="Test cases of prompts and the runs that prove a version over them.")


def prompt_or_fail(slug: str):
    """The prompt with ``slug``, or a ClickException (exit 1) saying there is none."""
    prompt = find_prompt(slug)
    if prompt is None:
        raise click.ClickException(f"There is no prompt with the slug {slug!r}.")
    return prompt


@evals_cli.command("import")
@click.argument("slug")
@click.argument("file", type=click.File("rb"))
@click.option("--format", "file_format", type=click.Choice(FORMATS), help="jsonl or csv (default: by the extension).")
def import_command(slug, file, file_format):
    """Import test cases into a prompt from a JSONL or CSV file; cases with a name already there are updated."""
    try:
        prompt = prompt_or_fail(slug)
        data = file.read(current_app.config["MAX_IMPORT_BYTES"] + 1)  # one byte past the limit: refused as too large
        file_format = file_format or format_of(file.name, data)
        counts = import_cases(prompt, data, file_format, actor=cli_actor())
    except Refused as refusal:
        raise click.ClickException(f"{file.name}: {refusal.sentence}") from None
    except SQLAlchemyError as error:
        raise click.ClickException(database_problem(error) + " Nothing was imported.") from None
    click.echo(f"Imported {file.name} into {slug} ({file_format}): {import_summary(counts)}.")


@evals_cli.command("export-cases")
@click.argument("slug")
@click.option("--format", "file_format", type=click.Choice(FORMATS), default="jsonl", show_default=True)
@click.option("--tag", help="Only the cases with this tag.")
def export_cases_command(slug, file_format, tag):
    """Write a prompt's test cases to standard output as JSONL or CSV."""
    try:
        prompt = prompt_or_fail(slug)
        click.echo((export_jsonl if file_format == "jsonl" else export_csv)(prompt, tag), nl=False)
    except SQLAlchemyError as error:
        raise click.ClickException(database_problem(error)) from None
