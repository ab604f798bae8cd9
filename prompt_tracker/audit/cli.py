"""``flask audit list``: the audit log on the terminal, or as JSON for a script."""

import json
from datetime import UTC, datetime

import click
from flask.cli import AppGroup
from sqlalchemy import column, select, table

from ..extensions import db
from .events import EVENT_KINDS, events_query
from .models import AuditEvent

audit_cli = AppGroup("audit", help="Read the audit log (append-only: nothing here edits or deletes an event).")


def parse_since(value: str | None) -> datetime | None:
    """A time in ISO 8601 (a date, or a date and time; a zone is converted to UTC), as the log stores it."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 date or time, e.g. 2026-12-01 or 2026-12-01T09:30Z."
        ) from None
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


@audit_cli.command("list")
@click.option("--since", help="Only events at or after this time (ISO 8601, UTC unless a zone is given).")
@click.option("--kind", type=click.Choice(EVENT_KINDS), help="Only events of this kind.")
@click.option("--user", "actor", help="Only events by this user (email, `local`, `cli:NAME`).")
@click.option("--prompt", "slug", help="Only events of the prompt with this slug.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of the events instead of lines.")
def list_command(since, kind, actor, slug, as_json):
    """List audit events, oldest first."""
    prompt_id = None
    if slug:
        # The prompts table by name: the audit layer sits below prompts/ and does not import it.
        prompts = table("prompts", column("id"), column("slug"))
        prompt_id = db.session.scalar(select(prompts.c.id).where(prompts.c.slug == slug))
        if prompt_id is None:
            raise click.ClickException(f"There is no prompt with the slug {slug!r}.")
    statement = events_query(prompt_id=prompt_id, actor_name=actor, kind=kind, since=parse_since(since))
    events = list(db.session.scalars(statement.order_by(None).order_by(AuditEvent.id)))
    if as_json:
        click.echo(json.dumps([event.payload() for event in events], indent=2, ensure_ascii=False))
        return
    for event in events:
        detail = json.dumps(event.detail or {}, ensure_ascii=False, sort_keys=True)
        click.echo(f"{event.at:%Y-%m-%d %H:%M:%S}\t{event.actor_name}\t{event.kind}\t{event.subject}\t{detail}")
    click.echo(f"{len(events)} event{'s' if len(events) != 1 else ''}.")
