"""CPU-heavy work of a request, kept off the web process's event loop.

Under gunicorn's gevent worker every request and socket of the process shares one thread: a
request that computes for seconds (an import rendering its replies' Markdown) would stop all of
them, ``/healthz`` included. Such work runs in gevent's pool of real threads, so the event loop
keeps its share of the interpreter while it runs. Under threads (``flask run``, the tests) each
request has a thread of its own already, and the work runs in it.
"""

from collections.abc import Callable
from typing import TypeVar

Result = TypeVar("Result")


def event_loop_patched() -> bool:
    """True when gevent has patched this process (gunicorn's gevent worker does it before loading the app)."""
    try:
        from gevent import monkey  # gevent is optional: only the production web server has it
    except ImportError:
        return False
    return monkey.is_module_patched("socket")


def off_the_event_loop(function: Callable[..., Result], *args) -> Result:
    """``function(*args)``, in a real thread when this process serves with gevent; its exception, if any, is raised here."""
    if not event_loop_patched():
        return function(*args)
    from gevent import get_hub

    return get_hub().threadpool.apply(function, args)
