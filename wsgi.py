"""WSGI entry point: ``flask --app wsgi ...`` and ``gunicorn wsgi:app``."""

from flask.cli import load_dotenv

from prompt_tracker import create_app

# gunicorn does not read .env the way the flask command does: local keys live there.
load_dotenv()
app = create_app()
