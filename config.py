"""Configuration per environment, picked by PROMPT_TRACKER_ENV (default: development).

Required variables are read in ``init_app`` (not in class bodies) so that importing this
module never fails; the production config refuses to start with a sentence naming what is missing.
"""

import os
import re
from datetime import timedelta


class ConfigError(RuntimeError):
    """The environment does not allow the app to start (a required variable is missing)."""


# Numbers an environment variable of the same name may override (read at start-up, in init_app).
INT_SETTINGS = (
    "JOB_TIMEOUT",
    "HEARTBEAT_TTL",
    "WORKER_TTL",
    "MAX_MESSAGE_CHARS",
    "MAX_SYSTEM_PROMPT_CHARS",
    "TEMPLATE_TIME_LIMIT_MS",
    "SEARCH_TIMEOUT_MS",
    "MAX_CONVERSATION_MESSAGES",
    "MAX_HISTORY_CHARS",
    "PAGE_WINDOW",
    "PAGE_WINDOW_BYTES",
    "MAX_CONTENT_LENGTH",
    "MAX_IMPORT_BYTES",
    "MAX_OPEN_REPLIES",
    "MAX_SOCKETS_PER_USER",
    "MAX_TOKENS_CEILING",
    "DAILY_BUDGET_TOKENS",
    "EVAL_CONCURRENCY",
    "EVAL_MAX_TOOL_ROUNDS",
    "EVAL_MAX_RESULTS",
    "PRELOAD_PROVIDER_SDKS",
)


class Config:
    """Settings shared by every environment."""

    SECRET_KEY = "dev-only-not-secret"

    # Flask-Session: the cookie carries the session id only; the data lives server-side.
    SESSION_TYPE = "redis"
    SESSION_COOKIE_NAME = "_prompt_tracker_session"
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = False
    SESSION_PERMANENT = True
    PERMANENT_SESSION_LIFETIME = timedelta(hours=24)
    # A session holding nothing of the user's (a visitor who never sent, saved or signed in) is kept
    # only this long; its first use gives it the full lifetime.
    SESSION_IDLE_LIFETIME = timedelta(hours=1)
    # Signed in (accounts, header), a user's work lives in their workspace, shared by all their browsers,
    # kept this long after its last use (sliding), instead of the session's PERMANENT_SESSION_LIFETIME.
    USER_WORKSPACE_LIFETIME = timedelta(days=30)
    SESSION_KEY_PREFIX = "prompt_tracker:session:"
    SESSION_SERIALIZATION_FORMAT = "msgpack"

    SESSION_REDIS_URL = "redis://localhost:6379/2"
    RQ_REDIS_URL = "redis://localhost:6379/0"
    SOCKETIO_MESSAGE_QUEUE = "redis://localhost:6379/1"
    RQ_QUEUE = "prompt_tracker"
    RQ_ASYNC = True
    JOB_TIMEOUT = 300
    # Seconds without a worker heartbeat after which a reply being written shows as failed.
    HEARTBEAT_TTL = 20
    # RQ's worker TTL for `flask worker`: it heartbeats every few seconds, idle or busy; /healthz counts
    # a worker as live while its last heartbeat is this recent (a killed one stays in RQ's registry longer).
    WORKER_TTL = 20

    # Limits: the same numbers validate input and show on the page.
    MAX_MESSAGE_CHARS = 20_000
    MAX_SYSTEM_PROMPT_CHARS = 20_000  # also the longest a system prompt may be once its template is rendered
    TEMPLATE_TIME_LIMIT_MS = 100  # the longest a template may take to render (on a page view or a send)
    SEARCH_TIMEOUT_MS = 2_000  # the prompt library's search: a statement timeout, then a sentence on the page
    MAX_CONVERSATION_MESSAGES = 2_000
    # What one request carries of the history: the oldest messages beyond it are left out (and the
    # reply says so), so a long conversation cannot cost without bound per send. 0 = no cap.
    MAX_HISTORY_CHARS = 200_000
    # A page shows the latest PAGE_WINDOW messages, and of those only the newest PAGE_WINDOW_BYTES of
    # stored records (about the page's weight): 200 short messages, or some 60 of 2 KB.
    PAGE_WINDOW = 200
    PAGE_WINDOW_BYTES = 131_072
    MAX_CONTENT_LENGTH = 256 * 1024
    MAX_IMPORT_BYTES = 8 * 1024 * 1024  # a conversation file to import (the one body allowed past the above)
    # Replies one user may have queued or being written at once, all sessions together (a send past it is refused).
    MAX_OPEN_REPLIES = 3
    # Sockets one user (one session without sign-in) may hold open at once: one more closes the oldest.
    MAX_SOCKETS_PER_USER = 20

    WTF_CSRF_TIME_LIMIT = None  # the token lives as long as the session

    # Logs: "text" for a terminal, "json" (one object per line) for a log pipeline.
    LOG_FORMAT = "text"
    HSTS_SECONDS = 0
    # Prompts and versions: DATABASE_URL, else a SQLite file under instance/ (set in init_app,
    # where the instance path is known).
    SQLALCHEMY_DATABASE_URI = None

    # Sign-in: none (one local user, development only), accounts (users in the database) or
    # header (AUTH_HEADER set by a reverse proxy, honoured only from TRUSTED_PROXIES).
    AUTH_MODE = "none"
    AUTH_HEADER = "X-Forwarded-User"
    TRUSTED_PROXIES: list[str] = []
    # Limits per user (Flask-Limiter syntax); the counters live in the jobs Redis (DB 0).
    RATE_LIMIT_SENDS = "20/minute"
    # Failed sign-ins refused per (account, client address) and per client address: failures from one
    # address never lock out another. Past RATE_LIMIT_LOGINS_PER_ACCOUNT failures on an account from
    # anywhere, its sign-ins wait LOGIN_SLOWDOWN_SECONDS: slowed, never refused.
    RATE_LIMIT_LOGINS = "5 per 15 minutes"
    RATE_LIMIT_LOGINS_PER_IP = "20 per 15 minutes"
    RATE_LIMIT_LOGINS_PER_ACCOUNT = "10 per 15 minutes"
    LOGIN_SLOWDOWN_SECONDS = 2.0
    RATELIMIT_STORAGE_URI = ""  # "" = the jobs Redis
    # provider:model patterns a reply may use (empty = any), e.g. "echo:*,openai:gpt-4o-mini,anthropic:claude-*".
    ALLOWED_MODELS: list[str] = []
    MAX_TOKENS_CEILING = 0  # 0 = the form's own maximum
    # Spend per user per UTC day, in USD (priced models) and in tokens (models with no known price).
    DAILY_BUDGET_USD = 0.0  # 0 = no budget
    DAILY_BUDGET_TOKENS = 0

    # Test runs: results of one run in flight at once (the playground's replies never wait behind a run:
    # run jobs go to their own RQ queue, which workers take after the replies' one), rounds of tool calls
    # answered with the version's mocks per case, and model calls of test runs per user (Flask-Limiter syntax).
    # A worker imports the provider SDKs and builds their clients before its first job (1.3 s of CPU), so
    # that a first reply starts at once; 0 leaves that to the first job needing them (the tests, which
    # start dozens of workers mostly for echo).
    PRELOAD_PROVIDER_SDKS = 1

    EVAL_CONCURRENCY = 4
    EVAL_MAX_TOOL_ROUNDS = 3
    EVAL_MAX_RESULTS = 5_000  # cases × repeat in one run: its rows are written at its start
    RATE_LIMIT_EVAL_CALLS = "600 per minute"
    RQ_EVAL_QUEUE = "prompt_tracker_evals"

    # The read API (/api/v1): requests per token (Flask-Limiter syntax).
    RATE_LIMIT_API = "600/minute"
    # Signed webhooks: POSTed to each URL, signed with HMAC-SHA256 under the secret; retried by the workers
    # after each of these intervals (seconds): five tries in all.
    WEBHOOK_URLS: list[str] = []
    WEBHOOK_SECRET = ""
    WEBHOOK_RETRY_INTERVALS = [10, 60, 300, 1800]
    WEBHOOK_TIMEOUT = 10  # seconds an endpoint has to answer an attempt
    # Labels only admins may move (comma-separated in the environment); `latest` is never movable.
    PROTECTED_LABELS: list[str] = ["production"]

    RATELIMIT_HEADERS_ENABLED = True
    # The counters live in the jobs Redis: when it is down the reply cannot be queued anyway, and the
    # send should still keep the user's message (marked failed, with Retry) rather than fail whole.
    RATELIMIT_SWALLOW_ERRORS = True

    @classmethod
    def init_app(cls, app):
        """Apply the environment's overrides (read here, at start-up, not at import)."""
        for name in ("SECRET_KEY", "SESSION_REDIS_URL", "RQ_REDIS_URL", "SOCKETIO_MESSAGE_QUEUE", "LOG_FORMAT"):
            if os.environ.get(name):
                app.config[name] = os.environ[name]
        for name in INT_SETTINGS:
            if os.environ.get(name):
                try:
                    app.config[name] = int(os.environ[name])
                except ValueError:
                    raise ConfigError(f"{name} must be a whole number, not {os.environ[name]!r}.") from None
        if os.environ.get("FLASK_DEBUG"):  # Flask's own switch, honoured under gunicorn too
            app.config["DEBUG"] = os.environ["FLASK_DEBUG"].lower() in ("1", "true", "yes")
        for name in (
            "AUTH_MODE",
            "AUTH_HEADER",
            "RATE_LIMIT_SENDS",
            "RATE_LIMIT_LOGINS",
            "RATE_LIMIT_LOGINS_PER_IP",
            "RATE_LIMIT_LOGINS_PER_ACCOUNT",
            "RATE_LIMIT_API",
            "RATE_LIMIT_EVAL_CALLS",
            "WEBHOOK_SECRET",
        ):
            if os.environ.get(name):
                app.config[name] = os.environ[name]
        if os.environ.get("ALLOWED_MODELS"):
            app.config["ALLOWED_MODELS"] = [
                item.strip() for item in os.environ["ALLOWED_MODELS"].split(",") if item.strip()
            ]
        if os.environ.get("LOGIN_SLOWDOWN_SECONDS"):
            try:
                app.config["LOGIN_SLOWDOWN_SECONDS"] = float(os.environ["LOGIN_SLOWDOWN_SECONDS"])
            except ValueError:
                raise ConfigError(
                    f"LOGIN_SLOWDOWN_SECONDS must be a number of seconds, not {os.environ['LOGIN_SLOWDOWN_SECONDS']!r}."
                ) from None
        if os.environ.get("DAILY_BUDGET_USD"):
            try:
                app.config["DAILY_BUDGET_USD"] = float(os.environ["DAILY_BUDGET_USD"])
            except ValueError:
                raise ConfigError(
                    f"DAILY_BUDGET_USD must be a number of dollars, not {os.environ['DAILY_BUDGET_USD']!r}."
                ) from None
        if os.environ.get("USER_WORKSPACE_LIFETIME"):
            app.config["USER_WORKSPACE_LIFETIME"] = lifetime(
                "USER_WORKSPACE_LIFETIME", os.environ["USER_WORKSPACE_LIFETIME"]
            )
        if os.environ.get("PROTECTED_LABELS") is not None:  # set but empty: no protected label
            app.config["PROTECTED_LABELS"] = [
                item.strip().lower() for item in os.environ["PROTECTED_LABELS"].split(",") if item.strip()
            ]
        if os.environ.get("TRUSTED_PROXIES"):
            app.config["TRUSTED_PROXIES"] = trusted_proxies(os.environ["TRUSTED_PROXIES"])
        read_webhook_settings(app.config)
        if os.environ.get("MODEL_CONTEXT_WINDOWS"):  # read by the providers on each use; checked here, at start
            from prompt_tracker.providers.context_windows import parse_context_windows

            try:
                parse_context_windows(os.environ["MODEL_CONTEXT_WINDOWS"])
            except ValueError as problem:
                raise ConfigError(str(problem)) from None
        check_auth_settings(app.config)
        if os.environ.get("DATABASE_URL"):
            app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["DATABASE_URL"]
        elif not app.config.get("SQLALCHEMY_DATABASE_URI"):
            os.makedirs(app.instance_path, exist_ok=True)
            app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///" + os.path.join(
                app.instance_path, "prompt_tracker.sqlite3"
            )


class DevelopmentConfig(Config):
    """Local development: Redis on localhost (DB 0 jobs, DB 1 Socket.IO, DB 2 sessions)."""

    DEBUG = True


class TestingConfig(Config):
    """Unit tests: sessions in cachelib's SimpleCache, fakeredis for the rest, jobs run inline."""

    TESTING = True
    SECRET_KEY = "test-secret"
    SESSION_TYPE = "cachelib"
    RQ_ASYNC = False
    SOCKETIO_MESSAGE_QUEUE = None
    # Marker the factory turns into fakeredis clients.
    SESSION_REDIS_URL = RQ_REDIS_URL = "fakeredis://"
    SQLALCHEMY_DATABASE_URI = "sqlite://"  # in memory; tests create the tables
    RATELIMIT_STORAGE_URI = "memory://"
    # Tests send faster than a person; the rate has tests of its own that set it.
    RATE_LIMIT_SENDS = "100000/minute"
    # Hashes the unit tests' users cheaply (a scrypt hash costs about 0.1 s, and they make a hundred).
    PASSWORD_HASH_METHOD = "pbkdf2:sha256:1000"

    @classmethod
    def init_app(cls, app):
        """Tests ignore the environment: they pass their overrides to the factory."""


# It signs the CSRF tokens and names the Socket.IO rooms: a short one can be guessed.
MIN_SECRET_KEY_BYTES = 32


class ProductionConfig(Config):
    """Production: REDIS_URL and SECRET_KEY are required; the cookie is Secure."""

    SESSION_COOKIE_SECURE = True
    LOG_FORMAT = "json"
    HSTS_SECONDS = 365 * 24 * 3600

    @classmethod
    def init_app(cls, app):
        missing = [name for name in ("REDIS_URL", "SECRET_KEY", "DATABASE_URL") if not os.environ.get(name)]
        if missing:
            raise ConfigError(
                "Prompt Tracker refuses to start in production: set "
                + " and ".join(missing)
                + " in the environment (REDIS_URL like redis://host:6379/2, SECRET_KEY a long random string,"
                " DATABASE_URL like postgresql://user:password@host/prompt_tracker)."
            )
        if len(os.environ["SECRET_KEY"].encode()) < MIN_SECRET_KEY_BYTES:
            raise ConfigError(
                f"Prompt Tracker refuses to start in production: SECRET_KEY is shorter than {MIN_SECRET_KEY_BYTES} "
                "bytes; set it to a long random string, e.g. the output of "
                "`python -c 'import secrets; print(secrets.token_hex(32))'`."
            )
        Config.init_app(app)
        if app.config["AUTH_MODE"] == "none":
            raise ConfigError(
                "Prompt Tracker refuses to start in production with AUTH_MODE=none (anyone could spend the "
                "API keys): set AUTH_MODE=accounts (users from `flask users create`) or AUTH_MODE=header "
                "(a reverse proxy that signs users in, with TRUSTED_PROXIES)."
            )
        if app.config["AUTH_MODE"] == "accounts" and not os.environ.get("TRUSTED_PROXIES"):
            # Behind a proxy unknown to the app, every client has the proxy's address, and the limits
            # on failed sign-ins per address would let one person lock everyone out.
            raise ConfigError(
                "Prompt Tracker refuses to start in production with AUTH_MODE=accounts without TRUSTED_PROXIES: "
                "set it to the addresses of the reverse proxies in front of the app (comma-separated IPs or "
                "networks), or TRUSTED_PROXIES=none when clients connect to the app directly."
            )
        redis_url = os.environ["REDIS_URL"]
        app.config["SECRET_KEY"] = os.environ["SECRET_KEY"]
        app.config["SESSION_REDIS_URL"] = redis_url
        # Jobs and Socket.IO default to DB 0 and DB 1 of the same server.
        app.config["RQ_REDIS_URL"] = os.environ.get("RQ_REDIS_URL") or with_db(redis_url, 0)
        app.config["SOCKETIO_MESSAGE_QUEUE"] = os.environ.get("SOCKETIO_MESSAGE_QUEUE") or with_db(redis_url, 1)


AUTH_MODES = ("none", "accounts", "header")
NO_PROXIES = "none"  # TRUSTED_PROXIES=none: clients connect directly (said explicitly, for production)


_LIFETIME = re.compile(r"^(\d+)([dhms]?)$")
_LIFETIME_UNITS = {"d": "days", "": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def lifetime(name: str, value: str) -> timedelta:
    """A lifetime from the environment: a whole number of days, or with a unit (``30d``, ``12h``, ``90m``, ``600s``)."""
    match = _LIFETIME.match(value.strip().lower())
    if not match or int(match.group(1)) == 0:
        raise ConfigError(f"{name} must be a positive number of days, or one like 30d, 12h, 90m, not {value!r}.")
    return timedelta(**{_LIFETIME_UNITS[match.group(2)]: int(match.group(1))})


def trusted_proxies(value: str) -> list[str]:
    """The proxy addresses of a TRUSTED_PROXIES value (``none``: no proxy)."""
    if value.strip().lower() == NO_PROXIES:
        return []
    return [item.strip() for item in value.split(",")]


def check_auth_settings(settings) -> None:
    """Refuse an unknown AUTH_MODE, or header mode without a trusted proxy, with a sentence."""
    import ipaddress

    if settings["AUTH_MODE"] not in AUTH_MODES:
        raise ConfigError(f"AUTH_MODE must be one of {', '.join(AUTH_MODES)}, not {settings['AUTH_MODE']!r}.")
    if settings["AUTH_MODE"] == "header" and not settings["TRUSTED_PROXIES"]:
        raise ConfigError(
            "AUTH_MODE=header needs TRUSTED_PROXIES: the addresses of the reverse proxies "
            "(comma-separated IPs or networks) whose user header is believed."
        )
    for proxy in settings["TRUSTED_PROXIES"]:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise ConfigError(f"TRUSTED_PROXIES: {proxy!r} is not an IP address or network.") from None


def read_webhook_settings(settings) -> None:
    """WEBHOOK_URLS, WEBHOOK_RETRY_INTERVALS and WEBHOOK_TIMEOUT from the environment; refuse URLs without a secret."""
    if os.environ.get("WEBHOOK_URLS"):
        settings["WEBHOOK_URLS"] = [url.strip() for url in os.environ["WEBHOOK_URLS"].split(",") if url.strip()]
    if os.environ.get("WEBHOOK_RETRY_INTERVALS"):
        try:
            intervals = [int(item) for item in os.environ["WEBHOOK_RETRY_INTERVALS"].split(",")]
            if not intervals or min(intervals) < 0:
                raise ValueError
        except ValueError:
            raise ConfigError(
                "WEBHOOK_RETRY_INTERVALS must be whole numbers of seconds, comma-separated (e.g. 10,60,300,1800), "
                f"not {os.environ['WEBHOOK_RETRY_INTERVALS']!r}."
            ) from None
        settings["WEBHOOK_RETRY_INTERVALS"] = intervals
    if os.environ.get("WEBHOOK_TIMEOUT"):
        try:
            settings["WEBHOOK_TIMEOUT"] = float(os.environ["WEBHOOK_TIMEOUT"])
        except ValueError:
            raise ConfigError(
                f"WEBHOOK_TIMEOUT must be a number of seconds, not {os.environ['WEBHOOK_TIMEOUT']!r}."
            ) from None
    for url in settings["WEBHOOK_URLS"]:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"WEBHOOK_URLS: {url!r} is not an http:// or https:// URL.")
    if settings["WEBHOOK_URLS"] and not settings["WEBHOOK_SECRET"]:
        raise ConfigError(
            "WEBHOOK_URLS is set but WEBHOOK_SECRET is not: set it to a long random string, which the receivers "
            "use to check each request's X-Prompt-Tracker-Signature."
        )


def database_options(url: str) -> tuple[str, dict]:
    """Return the SQLAlchemy URL for ``url`` (PostgreSQL through psycopg 3) and its engine options."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            url = "postgresql+psycopg://" + url[len(scheme) :]
    if url.startswith("postgresql+psycopg://"):
        # A stopped or unreachable server becomes a 503 page in seconds, not a hung request.
        return url, {"pool_pre_ping": True, "connect_args": {"connect_timeout": 2}}
    return url, {}


def with_db(url, db):
    """Return the Redis URL with its database number replaced by ``db``."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


config = {
    "development": DevelopmentConfig,
    "test": TestingConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}
