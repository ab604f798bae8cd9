"""What a database error means for a user: tables missing (a migration not applied), the database down, a
statement stopped by its timeout."""

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


def is_statement_timeout(error: SQLAlchemyError) -> bool:
    """True when a statement was stopped by its timeout (PostgreSQL's query_canceled, SQLite's interrupt)."""
    if not isinstance(error, OperationalError):
        return False
    original = getattr(error, "orig", None)
    return getattr(original, "sqlstate", None) == "57014" or str(original) == "interrupted"
