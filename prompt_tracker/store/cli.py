"""``flask sessions``: inspect and purge the sessions stored in Redis.

Thin: each command parses its options, calls ``store.admin`` and echoes the result. A session is
named by its store id (the SHA-256 of the cookie's session id), which ``list`` shows; a signed-in
user's workspace (``ws-…``) is listed, shown and purged the same way, its KIND ``workspace``; the ``--sid``
option and ``show``'s SID argument keep their names for the scripts that use them.
"""

import functools
import sys
from contextlib import contextmanager

import click
from flask.cli import AppGroup
from redis.exceptions import RedisError

from . import admin

sessions_cli = AppGroup("sessions", help="Inspect and purge playground sessions stored in Redis.")

# Below this many keys a run takes well under a second: no progress bar.
PROGRESS_MIN_KEYS = 1000


class Duration(click.ParamType):
    """A duration option such as ``90s``, ``30m``, ``2h``, ``1d`` or ``1h30m``, as seconds."""

    name = "duration"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        try:
            return admin.parse_duration(value)
        except ValueError as error:
            self.fail(str(error), param, ctx)


def user_errors(command):
    """Turn the session tools' errors and an unreachable Redis into a ClickException saying what to do."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except admin.SessionAdminError as error:
            raise click.ClickException(str(error)) from error
        except RedisError as error:
            raise click.ClickException(
                f"The sessions Redis did not answer ({error}); start it or check SESSION_REDIS_URL."
            ) from error

    return wrapper


@contextmanager
def progress_bar(label: str, length: int):
    """Yield a callback that advances a progress bar on stderr, or None for short runs or no terminal."""
    if length <= PROGRESS_MIN_KEYS or not sys.stderr.isatty():
        yield None
        return
    with click.progressbar(length=length, label=label, file=sys.stderr) as bar:
        yield bar.update


@sessions_cli.command("purge")
@click.option(
    "--idle-for",
    type=Duration(),
    metavar="DURATION",
    help="Only sessions idle at least this long: 90s, 30m, 2h, 1d, 1h30m.",
)
@click.option(
    "--sid",
    "store_id_or_sid",
    metavar="STORE_ID",
    help="Only this session: its store id (shown by `list`), a unique prefix of it, or the cookie's session id.",
)
@click.option(
    "--kind",
    type=click.Choice(["session", "workspace"]),
    help="Only browser sessions, or only signed-in users' workspaces (kept USER_WORKSPACE_LIFETIME).",
)
@click.option("--dry-run", is_flag=True, help="Report what would be deleted, delete nothing.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@user_errors
def purge(idle_for, store_id_or_sid, kind, dry_run, yes):
    """Delete sessions: all of them, the idle ones, or one."""
    keyspace = admin.open_keyspace()
    if yes and not dry_run and idle_for is None and store_id_or_sid is None and kind is None:
        # Nothing to choose or confirm: delete as the scan goes, near the speed of a raw SCAN+UNLINK.
        with progress_bar("Deleting sessions", keyspace.estimate_keys()) as advance:
            result = admin.purge_all(keyspace, progress=advance)
        if not result.sessions:
            click.echo("Nothing to purge: no session is stored.")
            return
        click.echo(
            f"Purged {admin.plural(result.sessions, 'session')} ({admin.plural(result.keys, 'key')}) "
            f"in {result.seconds:.2f} s."
        )
        return
    with progress_bar("Scanning sessions", keyspace.estimate_keys()) as advance:
        plan = admin.plan_purge(
            keyspace, idle_for=idle_for, store_id_or_sid=store_id_or_sid, progress=advance, kind=kind
        )
    idle = f" idle for at least {admin.format_duration(idle_for)}" if idle_for is not None else ""
    if not plan.sessions:
        click.echo(f"Nothing to purge: no session{idle} is stored.")
        return
    what = f"{admin.plural(len(plan.sessions), 'session')}{idle}"
    if dry_run:
        click.echo(f"Would purge {what} ({admin.plural(plan.keys, 'key')}); dry run, nothing was deleted.")
        return
    if not yes and not click.confirm(
        f"Delete {admin.plural(len(plan.sessions), 'session')} ({admin.plural(plan.keys, 'key')})?"
    ):
        click.echo("Purge cancelled; nothing was deleted.")
        return
    with progress_bar("Deleting sessions", plan.keys) as advance:
        result = admin.execute_purge(keyspace, plan, progress=advance)
    kept = f" Kept {admin.plural(result.kept, 'session')} used since the scan." if result.kept else ""
    click.echo(
        f"Purged {admin.plural(result.sessions, 'session')}{idle} ({admin.plural(result.keys, 'key')}) "
        f"in {plan.seconds + result.seconds:.2f} s.{kept}"
    )


@sessions_cli.command("list")
@click.option(
    "--limit", default=50, show_default=True, type=click.IntRange(min=1), help="Show at most this many sessions."
)
@user_errors
def list_command(limit):
    """List the stored sessions, most recently active first."""
    keyspace = admin.open_keyspace()
    with progress_bar("Scanning sessions", keyspace.estimate_keys()) as advance:
        sessions, total = admin.list_sessions(keyspace, limit=limit, progress=advance)
    if not sessions:
        click.echo("No sessions are stored.")
        return
    rows = [
        [
            session.short_id,
            session.kind,
            admin.format_duration(session.idle),
            admin.format_duration(session.expires_in),
            f"{session.messages:,}",
            f"{session.size:,}",
        ]
        for session in sessions
    ]
    headers = ["ID", "KIND", "IDLE", "EXPIRES IN", "MESSAGES", f"BYTES ({keyspace.size_label})"]
    for line in admin.format_table(headers, rows, right={4, 5}):
        click.echo(line)
    shown = f"{len(sessions):,} of {total:,} sessions" if len(sessions) < total else admin.plural(total, "session")
    click.echo(f"{shown}, most recently active first.")


# Session ids may start with "-": take an unknown "-..." as the id rather than as a bad option.
@sessions_cli.command(
    "show",
    short_help="Show a session's settings, conversations and latest messages.",
    context_settings={"ignore_unknown_options": True},
)
@click.argument("store_id_or_sid", metavar="STORE_ID")
@click.option(
    "--last",
    default=5,
    show_default=True,
    type=click.IntRange(min=0),
    help="How many of the latest messages of each conversation to show.",
)
@user_errors
def show(store_id_or_sid, last):
    """Show a session's settings, conversations and latest messages; STORE_ID is its store id (shown by
    `list`), a unique prefix of it, or the cookie's session id."""
    keyspace = admin.open_keyspace()
    details = admin.session_details(keyspace, store_id_or_sid, last=last)
    session = details.session
    click.echo(f"{'Workspace' if session.is_workspace else 'Session'} {session.store_id}")
    click.echo(
        f"  idle {admin.format_duration(session.idle)}, expires in {admin.format_duration(session.expires_in)}, "
        f"{admin.plural(session.messages, 'message')}, {session.size:,} bytes ({keyspace.size_label})"
    )
    if details.blob_error:
        click.echo(f"Blob: unreadable ({details.blob_error})")
    elif details.blob is None:
        click.echo("Blob: none (only conversation lists are left)")
    else:
        settings = details.blob.get("settings") or {}
        click.echo("Settings:" if settings else "Settings: defaults (none saved)")
        for playground, values in sorted(settings.items()):
            fields = values.items() if isinstance(values, dict) else [("value", values)]
            click.echo(
                f"  {playground}: " + ", ".join(f"{name}={admin.preview(repr(value))}" for name, value in fields)
            )
        others = sorted(name for name in details.blob if name != "settings")
        if others:
            click.echo("Other blob fields (values not shown): " + ", ".join(others))
    if not details.conversations:
        click.echo("Conversations: none")
    for conversation in details.conversations:
        info = conversation.key
        click.echo(
            f"Conversation {info.key}: {admin.plural(info.messages, 'message')}, TTL {admin.format_duration(info.ttl)}"
        )
        for index, message in enumerate(conversation.latest, start=conversation.first_index + 1):
            if message is None:
                click.echo(f"  #{index} (unreadable record)")
                continue
            text = message.error if message.status == "failed" and message.error else message.content
            click.echo(f"  #{index} {message.role} {message.status}" + (f": {admin.preview(text)}" if text else ""))


@sessions_cli.command("stats")
@user_errors
def stats():
    """Count sessions, keys, messages and bytes; name the largest."""
    keyspace = admin.open_keyspace()
    with progress_bar("Scanning sessions", keyspace.estimate_keys()) as advance:
        totals = admin.session_stats(keyspace, progress=advance)
    orphans = f" ({totals.without_blob:,} without a blob)" if totals.without_blob else ""
    workspaces = f", of which {totals.workspaces:,} users' workspaces" if totals.workspaces else ""
    click.echo(f"Sessions: {totals.sessions:,}{orphans}{workspaces}")
    click.echo(f"Keys: {totals.keys:,}")
    click.echo(f"Messages: {totals.messages:,}")
    click.echo(f"Bytes ({keyspace.size_label}): {totals.size:,} ({admin.format_size(totals.size)})")
    if totals.largest is not None:
        largest = totals.largest
        click.echo(
            f"Largest session: {largest.short_id} ({largest.size:,} bytes, {admin.plural(largest.messages, 'message')})"
        )
