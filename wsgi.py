"""WSGI entry point: ``flask --app wsgi ...`` and ``gunicorn wsgi:app``."""

import resource
import sys

from flask.cli import load_dotenv

from config import ConfigError
from prompt_tracker import create_app


def raise_open_file_limit() -> int:
    """Raise this process's open-file limit to its hard limit; return it.

    A gevent web worker holds one file per open socket, and a shell's soft limit (often 1,024) would
    refuse connections long before gunicorn's ``--worker-connections``; a process may raise it itself.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# gunicorn does not read .env the way the flask command does: local keys live there.
load_dotenv()
raise_open_file_limit()
try:
    app = create_app()
except ConfigError as refused:
    # A configuration refused (production without REDIS_URL, say) is its sentence, for `flask ...` as for
    # gunicorn, not a traceback above it. Exit code 3 is gunicorn's for a worker that cannot boot: its
    # master stops, rather than starting the worker again and again.
    print(refused, file=sys.stderr)
    sys.exit(3)
