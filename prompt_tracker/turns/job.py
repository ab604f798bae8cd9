"""RQ jobs. Each is a plain function of ids and plain data, enqueued by dotted path."""

from flask import current_app, has_app_context

from ..playground_settings import PlaygroundSettings

_worker_app = None


def _app():
    """The app to run a job in: the current one (inline jobs, ``flask worker``) or one built once per process."""
    global _worker_app
    if has_app_context():
        return current_app._get_current_object()
    if _worker_app is None:
        from .. import create_app

        _worker_app = create_app()
    return _worker_app


def run_turn(sid: str, playground: str, message_id: str, settings: dict) -> str:
    """Write one assistant reply (see ``turns.run_turn``)."""
    import msgspec

    from .. import turns

    with _app().app_context():
        return turns.run_turn(sid, playground, message_id, msgspec.convert(settings, PlaygroundSettings))
