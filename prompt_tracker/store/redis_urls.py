"""Redis clients from URLs: plain, Sentinel and Cluster, each with short timeouts.

One URL per use (sessions, jobs, Socket.IO). The Sentinel form is python-socketio's own,
``redis+sentinel://[:password@]host:port[,host:port]/<db>/<service>``, so one URL serves all
three uses. ``redis+cluster://host:port[,host:port]`` is accepted for sessions only: RQ and
Socket.IO do not support Redis Cluster upstream.
"""

import time
from urllib.parse import unquote, urlsplit

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.sentinel import MasterNotFoundError, Sentinel, SentinelConnectionPool

# About a second to connect and to answer: a stalled Redis becomes a 503, never a hang.
TIMEOUTS = {"socket_connect_timeout": 1.0, "socket_timeout": 1.0}
USES = {"sessions": "SESSION_REDIS_URL", "jobs": "RQ_REDIS_URL", "socketio": "SOCKETIO_MESSAGE_QUEUE"}


class RedisURLError(ValueError):
    """A Redis URL the app cannot use for what it was given for."""


def check_url(url: str, use: str) -> str:
    """Return the URL's scheme, or refuse a URL that cannot serve ``use`` with a sentence."""
    scheme = urlsplit(url).scheme
    if scheme == "redis+cluster" and use != "sessions":
        raise RedisURLError(
            f"{USES.get(use, use)} cannot be a Redis Cluster URL: RQ and Socket.IO need a single Redis "
            "or Sentinel (redis:// or redis+sentinel://); only sessions can live on a Cluster."
        )
    if scheme not in ("redis", "rediss", "unix", "redis+sentinel", "rediss+sentinel", "redis+cluster", "fakeredis"):
        raise RedisURLError(f"{USES.get(use, use)}: unknown Redis URL scheme {scheme!r} in {display(url)}.")
    return scheme


def connect(url: str, use: str = "sessions"):
    """Open a client for ``url``, used for ``use`` (sessions, jobs or socketio)."""
    scheme = check_url(url, use)
    if scheme == "fakeredis":
        import fakeredis

        # A server of its own, not one of fakeredis's registry (FakeRedis() keeps every server it makes
        # for the life of the process, and with it each test's app).
        return fakeredis.FakeRedis(server=fakeredis.FakeServer())
    if scheme.endswith("+sentinel"):
        return sentinel_master(url)
    if scheme == "redis+cluster":
        return cluster_client(url)
    return redis.Redis.from_url(url, health_check_interval=30, retry=one_reconnect(), **TIMEOUTS)


def one_reconnect():
    """Retry a command once on a broken connection (a restarted Redis), never on a timeout.

    redis-py's default retries 10 times with backoff on timeouts too: a paused Redis then
    held a page for seconds instead of the one-second timeout.
    """
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,))


def socketio_manager(url: str):
    """python-socketio's Redis manager for ``url`` (plain or Sentinel), channel ``flask-socketio``."""
    import socketio

    check_url(url, "socketio")
    # No read timeout: the manager's listener blocks on its subscription between events.
    return socketio.RedisManager(
        url, channel="flask-socketio", redis_options={"socket_connect_timeout": TIMEOUTS["socket_connect_timeout"]}
    )


def sentinel_master(url: str) -> redis.Redis:
    """A client that follows the master of a Sentinel-monitored service across failovers."""
    from socketio.redis_manager import parse_redis_sentinel_url

    try:
        sentinels, service, kwargs = parse_redis_sentinel_url(url.replace("rediss+", "redis+", 1))
    except ValueError as error:
        raise RedisURLError(
            f"Not a Sentinel URL ({error}): {display(url)}; use "
            "redis+sentinel://[:password@]host:port[,host:port]/<db>/<service>."
        ) from None
    if not service:
        raise RedisURLError(f"The Sentinel URL {display(url)} names no service: add /<db>/<service>.")
    if url.startswith("rediss+"):
        kwargs["ssl"] = True
    sentinel = EpochSentinel(sentinels, sentinel_kwargs=dict(TIMEOUTS), **TIMEOUTS, **kwargs)
    return sentinel.master_for(service, connection_pool_class=FailoverAwarePool, **TIMEOUTS, **kwargs)


class EpochSentinel(Sentinel):
    """Sentinels asked together: the master is the one named under the newest configuration epoch.

    redis-py takes the first sentinel's answer; right after a failover a sentinel that has not yet
    heard of it still names the old master, and writes would go to a server about to be demoted.
    """

    def discover_master(self, service_name):
        """The (host, port) of the master in the newest configuration any sentinel reports."""
        newest = None
        for sentinel in self.sentinels:
            try:
                state = sentinel.sentinel_masters().get(service_name)
            except (redis.ConnectionError, redis.TimeoutError):
                continue
            if state and self.check_master_state(state, service_name):
                if newest is None or state["config-epoch"] > newest["config-epoch"]:
                    newest = state
        if newest is None:
            raise MasterNotFoundError(f"No master found for {service_name!r}")
        return newest["ip"], newest["port"]


class FailoverAwarePool(SentinelConnectionPool):
    """A Sentinel pool that asks who the master is at most once a second.

    redis-py's pool learns of a failover only when it opens a connection or a write meets READONLY;
    meanwhile its pooled connections to the demoted master serve stale reads. Asking the
    sentinels once a second drops them within a second (a write right after the failover is
    read back, not missed).
    """

    CHECK_EVERY = 1.0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._checked_at = 0.0

    def get_connection(self, *args, **kwargs):
        """A connection to the current master (idle ones to a former master are dropped first)."""
        now = time.monotonic()
        if now - self._checked_at > self.CHECK_EVERY:
            self._checked_at = now
            try:
                self.get_master_address()  # disconnects idle connections when the master moved
            except MasterNotFoundError:
                pass  # no master right now: the command below fails as it would have anyway
        return super().get_connection(*args, **kwargs)


def cluster_client(url: str) -> RedisCluster:
    """A Redis Cluster client seeded with every node the URL lists."""
    parts = urlsplit(url)
    hosts = parts.netloc.rsplit("@", 1)[-1]
    try:
        nodes = [ClusterNode(host, int(port)) for host, port in (item.rsplit(":", 1) for item in hosts.split(","))]
    except ValueError:
        raise RedisURLError(f"Not a Cluster URL: {display(url)}; use redis+cluster://host:port[,host:port].") from None
    if parts.path.strip("/") not in ("", "0"):
        raise RedisURLError(f"Redis Cluster has only database 0: {display(url)}.")
    password = unquote(parts.password) if parts.password else None
    username = unquote(parts.username) if parts.username else None
    return RedisCluster(startup_nodes=nodes, password=password, username=username, **TIMEOUTS)


def display(url: str) -> str:
    """The URL with its password hidden, for messages and logs."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)
