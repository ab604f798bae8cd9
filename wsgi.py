"""WSGI entry point: ``flask --app wsgi ...`` and ``gunicorn wsgi:app``."""

from prompt_tracker import create_app

app = create_app()
