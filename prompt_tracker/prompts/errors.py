"""Database errors as pages: tables missing (run the migration) or the database down (503)."""

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, ProgrammingError, SQLAlchemyError

from ..web.errors import error_response
from . import bp

MIGRATION_MISSING = (
    "The database has no prompt tables yet. Run `flask db upgrade` (make run does it on start), then reload."
)
DATABASE_DOWN = (
    "The prompt database is not reachable right now, so prompts cannot be shown or saved. "
    "Nothing was changed; try again in a moment. The standalone playground keeps working."
)


def is_missing_table(error: SQLAlchemyError) -> bool:
    """True when the error says a table does not exist (a migration was not applied)."""
    if not isinstance(error, (OperationalError, ProgrammingError)):
        return False
    text = str(getattr(error, "orig", error)).lower()
    return "no such table" in text or ("relation" in text and "does not exist" in text)


@bp.app_errorhandler(SQLAlchemyError)
def database_error(error):
    from ..extensions import db

    db.session.rollback()
    if is_missing_table(error):
        return error_response(503, "Database not set up", MIGRATION_MISSING)
    if isinstance(error, (OperationalError, InterfaceError)) or (
        isinstance(error, DBAPIError) and error.connection_invalidated
    ):
        return error_response(503, "Database unavailable", DATABASE_DOWN)
    raise error  # a bug, not an outage: the ordinary 500 page
