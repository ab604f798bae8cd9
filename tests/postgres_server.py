"""A throwaway PostgreSQL server on a free port, for integration tests (never the machine's own).

initdb into a temporary directory with the system's binaries (Debian: /usr/lib/postgresql/<v>/bin);
as root, the server runs as the ``postgres`` user (PostgreSQL refuses to run as root).
"""

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time

import psutil
import psycopg

from .processes import run_flask
from .redis_server import free_port


def postgres_bin_dir() -> str:
    """The directory of the newest installed PostgreSQL server binaries."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda path: int(path.split("/")[4]))
    if candidates:
        return os.path.dirname(candidates[-1])
    found = shutil.which("postgres")
    if found:
        return os.path.dirname(found)
    raise RuntimeError("PostgreSQL server binaries not found: install Debian's `postgresql` package (make test does).")


class PostgresServer:
    """Start and stop a private PostgreSQL server; hand out URLs of fresh databases."""

    def __init__(self):
        self.bin = postgres_bin_dir()
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="pt-postgres-")
        self.data = os.path.join(self.dir, "data")
        self.process = None
        self.as_postgres = os.geteuid() == 0
        self.databases = 0
        self.migrated_template = None  # its URL, once made

    def _command(self, *args: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *args] if self.as_postgres else list(args)

    def start(self) -> "PostgresServer":
        """initdb, run the server (unix socket in the temp dir, TCP on 127.0.0.1) and wait for it."""
        if self.as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        subprocess.run(
            self._command(
                os.path.join(self.bin, "initdb"),
                "-D",
                self.data,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        log = open(os.path.join(self.dir, "postgres.log"), "wb")
        self.process = subprocess.Popen(
            self._command(
                os.path.join(self.bin, "postgres"),
                "-D",
                self.data,
                "-p",
                str(self.port),
                "-k",
                self.dir,
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=100",
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(self.dsn("postgres"), connect_timeout=1).close()
                return self
            except psycopg.OperationalError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"PostgreSQL did not start on port {self.port}: {self.log()}") from None
                time.sleep(0.1)

    def log(self) -> str:
        """What the server wrote to its log."""
        try:
            with open(os.path.join(self.dir, "postgres.log"), errors="replace") as log:
                return log.read()[-4000:]
        except OSError:
            return ""

    def dsn(self, database: str) -> str:
        """A libpq connection string for ``database``."""
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={database}"

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL of ``database`` (psycopg 3)."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, migrated: bool = False) -> str:
        """Create a new database, empty or (``migrated``) at the migrations' head; return its SQLAlchemy URL.

        A migrated one is a copy of a template that `flask db upgrade` migrated once for the server: the
        command costs a process and seconds, a copy milliseconds (tests of the migrations run it themselves).
        """
        if migrated and not self.migrated_template:
            url = self.url(self._create("migrated_template"))
            env = {**os.environ, "PROMPT_TRACKER_ENV": "development", "DATABASE_URL": url}
            upgrade = run_flask(["--app", "wsgi", "db", "upgrade"], env)
            if upgrade.returncode != 0:
                raise RuntimeError(f"`flask db upgrade` of the template failed:\n{upgrade.stderr}")
            self.migrated_template = url  # only once migrated: a failed template is never copied
        self.databases += 1
        return self.url(self._create(f"test_{self.databases}", "migrated_template" if migrated else None))

    def _create(self, name: str, template: str | None = None) -> str:
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return name

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete its directory."""
        if self.process and self.process.poll() is None:
            # SIGINT is PostgreSQL's fast shutdown; SIGTERM (smart) waits until every client has gone,
            # and connections kept in a pool of this process never go. As root, the server is runuser's child.
            server = psutil.Process(self.process.pid)
            server = next(iter(server.children()), server) if self.as_postgres else server
            server.send_signal(signal.SIGINT)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None
        shutil.rmtree(self.dir, ignore_errors=True)
