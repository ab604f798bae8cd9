"""Context windows the price data cannot know: configured (``MODEL_CONTEXT_WINDOWS``) or reported by a server.

A local OpenAI-compatible server (vLLM, llama.cpp, LM Studio, Ollama) serves models under names of
its own, with a window it was started with. ``MODEL_CONTEXT_WINDOWS=model=tokens,model2=tokens``
says it; failing that, the server's model list (``GET {base}/models``) may: vLLM reports
``max_model_len``, llama.cpp ``meta.n_ctx_train``, OpenRouter and Groq ``context_length`` /
``context_window``; Ollama's OpenAI-compatible list reports none (configure it then).

The list is asked for in the background, with a short timeout, and kept (asked again after a few
minutes, the old answer served meanwhile): a page or a send never waits for a slow server, it only
goes without the window until the answer is in.
"""

import functools
import http.client
import json
import os
import threading
import time
import urllib.request
from dataclasses import dataclass, field

VARIABLE = "MODEL_CONTEXT_WINDOWS"
FETCH_TIMEOUT = 2.0  # seconds to connect and for each read
FRESH_SECONDS = 300.0  # a list answered is asked for again after this long (served meanwhile)
RETRY_SECONDS = 60.0  # a list that could not be read is asked for again after this long
MAX_LIST_BYTES = 8 * 1024 * 1024  # OpenRouter's list of every model is a few MB
# Where a model list's entries say their window, most particular first.
_WINDOW_FIELDS = (("max_model_len",), ("meta", "n_ctx"), ("meta", "n_ctx_train"), ("context_length",))
_WINDOW_FIELDS += (("context_window",), ("max_context_length",))


def parse_context_windows(text: str) -> dict[str, int]:
    """``model=tokens,model2=tokens`` as {model: tokens}; ValueError saying which entry is not one."""
    windows = {}
    for entry in text.split(","):
        if not entry.strip():
            continue
        model, equals, tokens = entry.rpartition("=")  # a model name may hold ":" or "/", not "="
        tokens = tokens.strip().replace("_", "")
        if not equals or not model.strip() or not tokens.isdigit() or int(tokens) == 0:
            raise ValueError(
                f"{VARIABLE} takes model=tokens pairs separated by commas (like llama3.1:8b=131072); "
                f"{entry.strip()!r} is not one."
            )
        windows[model.strip()] = int(tokens)
    return windows


@functools.lru_cache(maxsize=8)
def _configured(text: str) -> dict[str, int]:
    try:
        return parse_context_windows(text)
    except ValueError:
        return {}  # the app refuses to start with it (config.py); a worker started by hand goes without


def configured_window(model: str) -> int | None:
    """The window ``MODEL_CONTEXT_WINDOWS`` gives ``model``, if it names it."""
    return _configured(os.environ.get(VARIABLE, "")).get(model)


def windows_in(model_list: object) -> dict[str, int]:
    """{model id: window} of the models of an OpenAI-style model list (``{"data": [...]}``) that say theirs."""
    windows = {}
    entries = model_list.get("data") if isinstance(model_list, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            continue
        for path in _WINDOW_FIELDS:
            value = entry
            for name in path:
                value = value.get(name) if isinstance(value, dict) else None
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                windows[entry["id"]] = value
                break
    return windows


@dataclass
class _ModelList:
    windows: dict[str, int] = field(default_factory=dict)
    asked_at: float = 0.0  # time.monotonic()
    answered: bool = False


_lists: dict[str, _ModelList] = {}
_asking: dict[str, int] = {}  # base URL -> pid of the process asking (a fork does not inherit the thread)
_lock = threading.Lock()


def fetch_model_list(base_url: str, key: str = "", timeout: float = FETCH_TIMEOUT) -> dict[str, int]:
    """Ask the server at ``base_url`` for its model list now; keep and return the windows it reports."""
    request = urllib.request.Request(base_url.rstrip("/") + "/models", headers={"Accept": "application/json"})
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    previous = _lists.get(base_url)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (the configured server)
            windows, answered = windows_in(json.loads(response.read(MAX_LIST_BYTES))), True
    except (OSError, ValueError, http.client.HTTPException):  # refused, timed out, an error status, cut short, not JSON
        windows, answered = (previous.windows if previous else {}), False
    _lists[base_url] = _ModelList(windows, time.monotonic(), answered)
    return windows


def _ask_in_background(base_url: str, key: str) -> None:
    with _lock:
        if _asking.get(base_url) == os.getpid():
            return
        _asking[base_url] = os.getpid()

    def ask():
        try:
            fetch_model_list(base_url, key)
        finally:
            with _lock:
                _asking.pop(base_url, None)

    threading.Thread(target=ask, name="model-list", daemon=True).start()


def reported_window(base_url: str, key: str, model: str) -> int | None:
    """The window the server's model list gives ``model``, as last heard; never waits (asks in the background)."""
    known = _lists.get(base_url)
    if known is None or time.monotonic() - known.asked_at > (FRESH_SECONDS if known.answered else RETRY_SECONDS):
        _ask_in_background(base_url, key)
    return known.windows.get(model) if known is not None else None


def forget_model_lists() -> None:
    """Drop every model list heard (tests: each test's fake server answers on the same address)."""
    _lists.clear()
