"""Redis clients from URLs: plain, Sentinel and Cluster, each with short timeouts.

One URL per use (sessions, jobs, Socket.IO). The Sentinel form is python-socketio's own,
``redis+sentinel://[:password@]host:port[,host:port]/<db>/<service>``, so one URL serves all
three uses. ``redis+cluster://host:port[,host:port]`` is accepted for sessions only: RQ and
Socket.IO do not support Redis Cluster upstream.
"""

from urllib.parse import unquote, urlsplit

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.sentinel import Sentinel

# About a second to connect and to answer: a stalled Redis becomes a 503, never a hang.
TIMEOUTS = {"socket_connect_timeout": 1.0, "socket_timeout": 1.0}
USES = {"sessions": "SESSION_REDIS_URL", "jobs": "RQ_REDIS_URL", "socketio": "SOCKETIO_MESSAGE_QUEUE"}


class RedisURLError(ValueError):
    """A Redis URL the app cannot use for what it was given for."""


def connect(url: str, use: str = "sessions"):
    """Open a client for ``url``, used for ``use`` (sessions, jobs or socketio)."""
    scheme = urlsplit(url).scheme
    if scheme == "fakeredis":
        import fakeredis

        return fakeredis.FakeRedis()
    if scheme in ("redis+sentinel", "rediss+sentinel"):
        return sentinel_master(url)
    if scheme == "redis+cluster":
        if use != "sessions":
            raise RedisURLError(
                f"{USES.get(use, use)} cannot be a Redis Cluster URL: RQ and Socket.IO need a single Redis "
                "or Sentinel (redis:// or redis+sentinel://); only sessions can live on a Cluster."
            )
        return cluster_client(url)
    if scheme not in ("redis", "rediss", "unix"):
        raise RedisURLError(f"{USES.get(use, use)}: unknown Redis URL scheme {scheme!r} in {display(url)}.")
    return redis.Redis.from_url(url, health_check_interval=30, **TIMEOUTS)


def sentinel_master(url: str) -> redis.Redis:
    """A client that follows the master of a Sentinel-monitored service across failovers."""
    from socketio.redis_manager import parse_redis_sentinel_url

    try:
        sentinels, service, kwargs = parse_redis_sentinel_url(url.replace("rediss+", "redis+", 1))
    except ValueError as error:
        raise RedisURLError(f"Not a Sentinel URL ({error}): {display(url)}; use "
                            "redis+sentinel://[:password@]host:port[,host:port]/<db>/<service>.") from None
    if not service:
        raise RedisURLError(f"The Sentinel URL {display(url)} names no service: add /<db>/<service>.")
    if url.startswith("rediss+"):
        kwargs["ssl"] = True
    sentinel = Sentinel(sentinels, sentinel_kwargs=dict(TIMEOUTS), **TIMEOUTS, **kwargs)
    return sentinel.master_for(service, **TIMEOUTS, **kwargs)


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
