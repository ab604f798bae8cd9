"""``flask usage``: spend per user per day, from the budget counters."""

import click
from flask.cli import with_appcontext

from .budget import usage_by_day


@click.command("usage")
@click.option("--days", default=7, show_default=True, type=click.IntRange(1, 40), help="How many days back.")
@with_appcontext
def usage_command(days: int) -> None:
    """Show each user's spend per day: replies, tokens, USD (and tokens of unpriced models)."""
    rows = usage_by_day(days)
    if rows:
        click.echo(f"{'DAY':<10}  {'USER':<32}  {'REPLIES':>7}  {'TOKENS':>10}  {'USD':>9}  {'UNPRICED TOKENS':>15}")
    for day, user, spend in rows:
        click.echo(
            f"{day:<10}  {user[:32]:<32}  {spend.replies:>7}  {spend.tokens:>10,}  "
            f"{spend.usd:>9.4f}  {spend.unpriced_tokens:>15,}"
        )
    total = sum(spend.usd for _, _, spend in rows)
    click.echo(f"{len(rows)} user-day{'s' if len(rows) != 1 else ''} in the last {days} days, ${total:.4f} in all.")
