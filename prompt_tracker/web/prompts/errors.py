"""Database errors as pages: tables missing (run the migration) or the database down (503)."""

from sqlalchemy.exc import SQLAlchemyError

from ...extensions import db
from ...prompts.db_errors import is_missing_table, is_outage
from ..errors import error_response
from . import bp

MIGRATION_MISSING = (
    "The database has no prompt tables yet. Run `flask db upgrade` (make run does it on start), then reload."
)
DATABASE_DOWN = (
    "The prompt database is not reachable right now, so prompts cannot be shown or saved. "
    "Nothing was changed; try again in a moment. The standalone playground keeps working."
)


@bp.app_errorhandler(SQLAlchemyError)
def database_error(error):
    db.session.rollback()
    if is_missing_table(error):
        return error_response(503, "Database not set up", MIGRATION_MISSING)
    if is_outage(error):
        return error_response(503, "Database unavailable", DATABASE_DOWN)
    raise error  # a bug, not an outage: the ordinary 500 page
