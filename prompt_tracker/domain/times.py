"""Times as the database tables store them."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Now in UTC without tzinfo: SQLite keeps no zone, so both databases read back the same."""
    return datetime.now(UTC).replace(tzinfo=None)
