"""Fixtures: the app on the test config, a client that knows the page's forms, and real services."""

import collections
import contextlib
import os
import re
import time
from pathlib import Path

import pytest

from prompt_tracker import create_app
from prompt_tracker.domain.keys import store_id
from prompt_tracker.domain.settings import STANDALONE

from .fake_llm_servers import (  # noqa: F401  (fixtures for every test module)
    anthropic_listener,
    fake_anthropic,
    fake_openai,
    openai_listener,
)
from .postgres_server import PostgresServer
from .processes import ROOT, WebPool, WorkerPool, wait_for  # noqa: F401  (wait_for: for the tests)
from .redis_server import RedisServer


def compile_each_url_builder_once() -> None:
    """Most tests build an app of their own, and werkzeug compiles two URL builders (Python source, through
    ``ast`` and ``compile``) for each of its rules: 70 of the 86 ms of ``create_app("test")``. A builder is a
    function of the rule's text, parts, defaults and kind only (the rule itself is bound when called), so the
    suite compiles each once and every app binds the same function."""
    from werkzeug.routing.rules import Rule

    compile_builder = Rule._compile_builder
    compiled = {}

    def compiled_once(rule, append_unknown=True):
        defaults = tuple(
            sorted(
                (name, repr(value), type(rule._converters.get(name))) for name, value in (rule.defaults or {}).items()
            )
        )
        key = (rule.rule, tuple(rule._trace), defaults, append_unknown)
        if key not in compiled:
            compiled[key] = compile_builder(rule, append_unknown)
        return compiled[key]

    Rule._compile_builder = compiled_once


compile_each_url_builder_once()

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
COOKIE = "_prompt_tracker_session"


@pytest.fixture
def app():
    """The app on the test config: cachelib sessions, fakeredis, jobs run inline."""
    return create_app("test")


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


class Playground:
    """Actions a person takes on the playground page, through the test client."""

    def __init__(self, client):
        self.client = client

    def page(self, **query):
        return self.client.get("/playground", query_string=query)

    def token(self) -> str:
        return CSRF_RE.search(self.page().get_data(as_text=True)).group(1)

    def send(self, content, **kwargs):
        return self.client.post("/playground/messages", data={"content": content, "csrf_token": self.token()}, **kwargs)

    def save_settings(self, **fields):
        data = {"system_prompt": "", "provider": "echo", "model": "echo-1", "temperature": "0.7", "max_tokens": "1024"}
        data.update({key: str(value) for key, value in fields.items()})
        return self.client.post("/playground/settings", data={**data, "csrf_token": self.token()})

    def reset(self):
        return self.client.post("/playground/reset", data={"csrf_token": self.token()})

    def retry(self, message_id):
        return self.client.post(f"/playground/messages/{message_id}/retry", data={"csrf_token": self.token()})

    def sid(self) -> str:
        cookie = self.client.get_cookie(COOKIE)
        return cookie.value if cookie else None

    def store(self) -> str:
        """The store id the session's Redis keys carry (SHA-256 of the cookie's id)."""
        return store_id(self.sid())

    def messages(self, app):
        with app.app_context():
            from prompt_tracker.extensions import services

            return services.store.all(self.store(), STANDALONE)


@pytest.fixture
def playground(client):
    return Playground(client)


# --- integration: a real redis-server and real workers --------------------------------------


@pytest.fixture(scope="session")
def redis_server():
    """A private redis-server for the whole run, on a free port."""
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def real_redis(redis_server):
    """The private server, emptied before each test."""
    for db in (0, 1, 2):
        redis_server.client(db).flushdb()
    return redis_server


def service_env(server: RedisServer) -> dict:
    """Environment that points the app (and its worker) at ``server``'s DB 0/1/2."""
    env = dict(os.environ)
    env.update(
        PROMPT_TRACKER_ENV="development",
        SESSION_REDIS_URL=server.url(2),
        RQ_REDIS_URL=server.url(0),
        SOCKETIO_MESSAGE_QUEUE=server.url(1),
        PYTHONPATH=str(ROOT),
        # The server's own file (never the checkout's instance/ database, which a parallel test process shares).
        DATABASE_URL=f"sqlite:///{server.dir}/prompts.sqlite3",
        # Load tests keep many replies of one session open at once and send faster than a person;
        # the open-replies cap and the send rate have tests of their own.
        MAX_OPEN_REPLIES="1000",
        RATE_LIMIT_SENDS="100000/minute",
        # Workers import the SDKs when a job needs them, not at start: 1.3 s of CPU each, dozens of workers
        # a run (tests/test_operations.py shows the preload itself).
        PRELOAD_PROVIDER_SDKS="0",
    )
    return env


ENDED = ("finished", "failed", "stopped", "canceled")


def jobs_ended(server: RedisServer) -> dict[str, str] | None:
    """``{job id: status}`` of every RQ job on ``server`` once none waits in the queue or runs; else None.

    What shows that a job which must change nothing did not: it ran, and it is over.
    """
    client = server.client(0)
    if client.llen("rq:queue:prompt_tracker"):
        return None
    statuses = {}
    for key in client.scan_iter("rq:job:*"):
        if client.type(key) == b"hash" and (status := client.hget(key, "status")):
            statuses[key.decode().removeprefix("rq:job:")] = status.decode()
    return statuses if statuses and all(status in ENDED for status in statuses.values()) else None


def job_result(server: RedisServer, job_id: str):
    """What job ``job_id`` returned, once it has finished; else None."""
    from rq.exceptions import NoSuchJobError
    from rq.job import Job
    from rq.serializers import JSONSerializer

    try:
        job = Job.fetch(job_id, connection=server.client(0), serializer=JSONSerializer)
    except NoSuchJobError:
        return None
    return job.return_value() if job.get_status() == "finished" else None


@pytest.fixture
def live_app(real_redis, monkeypatch):
    """The development app on the private Redis (jobs queued for a real worker)."""
    for key, value in service_env(real_redis).items():
        monkeypatch.setenv(key, value)
    return create_app("development", overrides={"DEBUG": False})


@pytest.fixture
def live_client(live_app):
    return live_app.test_client()


@pytest.fixture
def live_playground(live_client):
    return Playground(live_client)


@pytest.fixture(scope="session")
def worker_pool():
    """`flask worker` processes kept for the run, per environment (see WorkerPool)."""
    pool = WorkerPool()
    yield pool
    pool.close()


@pytest.fixture
def start_worker(real_redis, worker_pool, tmp_path):
    """Start real ``flask worker`` processes on the private Redis; all parked (their child killed) after the test.

    A worker of an environment an earlier test used is that test's, continued with a fresh child.
    """
    processes = []

    def start(extra_env=None):
        env = {**service_env(real_redis), **(extra_env or {})}
        registered = real_redis.client(0).scard("rq:workers")
        processes.append(worker_pool.take(env, tmp_path / f"worker-{len(processes)}.log"))
        # Ready once registered: a new one imports the provider SDKs first, slow on a busy machine.
        wait_for(lambda: real_redis.client(0).scard("rq:workers") > registered, timeout=60)
        return processes[-1]

    yield start
    for process in processes:
        worker_pool.park(process)


@pytest.fixture(scope="session")
def postgres_server():
    """A private PostgreSQL server for the whole run (initdb in a temp dir, free port)."""
    server = PostgresServer().start()
    yield server
    server.stop()


# --- browser: the real web server process, a real worker, Debian's Chromium ------------------

SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
FAILURES = ROOT / "test-artifacts" / "failures"


@pytest.fixture(scope="session")
def web_pool(tmp_path_factory):
    """Web servers kept for the run, one per environment (see WebPool)."""
    pool = WebPool(tmp_path_factory.mktemp("web"))
    yield pool
    pool.close()


@pytest.fixture
def live_server(real_redis, web_pool):
    """The web server (`flask run`, Socket.IO in threading mode) on a free port, on the private Redis.

    Shared by the tests with the same environment: Redis, where it keeps everything, is emptied before each.
    """
    return web_pool.url(service_env(real_redis))


LEAVING_SCRIPT = "addEventListener('beforeunload', () => { window.promptTrackerTestLeaving = true; });"


def clicks_that_wait_for_the_next_page() -> None:
    """A click that posts a form or follows a link returns once the next page has loaded, not when it starts
    to: Playwright's own click returns at the new page's first bytes, and a test typing next would type into
    a page whose deferred scripts have not run yet (their listeners missing, the typing unseen by them)."""
    from playwright.sync_api import Locator, Page

    def waiting(click):
        def clicked(self, *args, **kwargs):
            click(self, *args, **kwargs)
            page = self if isinstance(self, Page) else self.page
            if not kwargs.get("no_wait_after") and not page.is_closed():
                page.wait_for_load_state()

        return clicked

    for kind in (Page, Locator):
        for name in ("click", "dblclick"):
            if not getattr(getattr(kind, name), "waits_for_the_next_page", False):
                setattr(kind, name, waiting(getattr(kind, name)))
                getattr(kind, name).waits_for_the_next_page = True


@pytest.fixture(scope="session")
def chromium():
    """Debian's Chromium (its headless shell, as Playwright runs headless tests), driven by Playwright (no
    browser download)."""
    from playwright.sync_api import sync_playwright

    clicks_that_wait_for_the_next_page()

    executable = os.environ.get("CHROMIUM", "/usr/bin/chromium-headless-shell")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        # Every page says when it is being left (a form posted, a link followed): ``press_send`` waits for the
        # next page then, instead of pressing keys into the page on its way out.
        new_context = browser.new_context

        def context_that_says_when_a_page_is_left(**options):
            # Reduced motion, as a person may ask: the blinking caret of an open reply would keep Chromium
            # drawing frames (five times the CPU of a still page) for nothing a test looks at.
            context = new_context(**{"reduced_motion": "reduce", **options})
            context.add_init_script(LEAVING_SCRIPT)
            return context

        browser.new_context = context_that_says_when_a_page_is_left
        yield browser
        browser.close()


# The files that take longest under `make test` (seconds each, measured 2026-12-02), handed out first.
# xdist gives out whole files in collection order (`--no-loadscope-reorder` in the Makefile); by its own
# order (most tests first) these few-test files started last, and the run ended with one of them alone
# on a process (`make run`'s, 74 s). Browser and other files alternate, so four Chromiums never start at once.
LONGEST_FIRST = (
    "test_dev_run.py",  # 74
    "test_browser.py",  # 61
    "test_reply_pipeline.py",  # 52
    "test_browser_tools.py",  # 37
    "test_eval_runs.py",  # 45
    "test_browser_workbench.py",  # 31
    "test_dev_run_topologies.py",  # 36
    "test_browser_compare.py",  # 29
    "test_team_deployment.py",  # 35
    "test_prompts_browser.py",  # 22
    "test_redis_topologies.py",  # 25
    "test_browser_editing.py",  # 22
    "test_send_what_you_see.py",  # 23
    "test_browser_workspaces.py",  # 21
)


def pytest_collection_modifyitems(config, items):
    """The longest files first (``LONGEST_FIRST``), then the rest by number of tests, most first."""
    rank = {name: index for index, name in enumerate(LONGEST_FIRST)}
    tests_in = collections.Counter(item.path.name for item in items)
    items.sort(key=lambda item: (rank.get(item.path.name, len(rank)), -tests_in[item.path.name], item.path.name))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Each phase's report on the test item (``item.report_call``), for fixtures that keep evidence of a failure."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def keep_failure_evidence(request, page, trail: list[str]) -> None:
    """A failed browser test leaves what the page showed and did: a screenshot, its HTML and the trail of its
    console lines and refused or failed requests (test-artifacts/failures/), so a failure seen once in a
    full run can be read afterwards."""
    report = getattr(request.node, "report_call", None)
    if report is None or not report.failed:
        return
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)[-150:]
    FAILURES.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(Exception):  # a page that crashed shows nothing, and the failure is the test's
        page.screenshot(path=str(FAILURES / f"{name}.png"), full_page=True)
        (FAILURES / f"{name}.html").write_text(page.content())
    (FAILURES / f"{name}.trail.txt").write_text("\n".join(trail))


@pytest.fixture
def page(chromium, request):
    """A fresh browser context (its own cookies) and page; console errors fail the test."""
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors = []
    trail = []  # every console line, refused answer and failed request, in order (kept when the test fails)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("console", lambda message: trail.append(f"{time.monotonic():.3f} console.{message.type}: {message.text}"))
    page.on(
        "requestfailed",
        lambda req: trail.append(f"{time.monotonic():.3f} failed {req.method} {req.url}: {req.failure}"),
    )
    page.on(
        "response",
        lambda response: trail.append(
            f"{time.monotonic():.3f} {response.request.method} {response.url} -> {response.status}"
            f" {response.headers.get('prompt-tracker-status', '')}"
        ),
    )

    def watch_socket(socket):
        trail.append(f"{time.monotonic():.3f} websocket {socket.url}")
        socket.on("framereceived", lambda frame: trail.append(f"{time.monotonic():.3f} ws< {str(frame)[:300]}"))
        socket.on("close", lambda _: trail.append(f"{time.monotonic():.3f} websocket closed"))

    page.on("websocket", watch_socket)
    yield page
    keep_failure_evidence(request, page, trail)
    # What the page logged while the test used it: closing the context under the page's own requests
    # in flight (a test that ends right after a navigation) resets their connections, and a server the
    # test already stopped refuses the page's socket; Chromium logs both, and the app caused neither.
    logged = list(errors)
    context.close()
    assert logged == [], f"errors in the browser console: {logged}"


def press_send(page) -> None:
    """Ctrl+Enter in the composer of the page the test is on, once its scripts are wired.

    Playwright's click on a form's button does not wait for the next page, and a wait for text that both pages
    show (or the flash of the next, met while it is still loading) can pass before it: keys pressed into the
    page being left are lost, and pressed before the deferred scripts ran (they run before "load") they do
    nothing, as for a person."""
    page.wait_for_function("() => document.readyState === 'complete' && !window.promptTrackerTestLeaving")
    page.keyboard.press("Control+Enter")


def screenshot(page, name: str) -> Path:
    """Save a screenshot under test-artifacts/screenshots/ and return its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
