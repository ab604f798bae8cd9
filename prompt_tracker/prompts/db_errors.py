"""What a database error means for a user: tables missing (a migration not applied) or the database down."""

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, ProgrammingError, SQLAlchemyError


def is_missing_table(error: SQLAlchemyError) -> bool:
    """True when the error says a table does not exist (a migration was not applied)."""
    if not isinstance(error, (OperationalError, ProgrammingError)):
        return False
    text = str(getattr(error, "orig", error)).lower()
    return "no such table" in text or ("relation" in text and "does not exist" in text)


def is_outage(error: SQLAlchemyError) -> bool:
    """True when the error says the database cannot be reached (not a bug in a query)."""
    return isinstance(error, (OperationalError, InterfaceError)) or (
        isinstance(error, DBAPIError) and error.connection_invalidated
    )
