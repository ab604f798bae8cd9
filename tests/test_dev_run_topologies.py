"""``make run`` on Redis topologies it does not start: Sentinel and Cluster URLs (tests/test_dev_run.py's
helpers). A file of its own so that a second test process takes these two tests (half a minute each in a
full run) beside the three of tests/test_dev_run.py, instead of one process running all five in turn."""

import signal
import time

import psutil
import pytest

from . import test_dev_run
from .redis_server import RedisServer
from .redis_topologies import ClusterDeployment, SentinelDeployment
from .test_dev_run import URL_DBS, port_open, running, send_and_wait_for_reply

pytestmark = pytest.mark.integration

dev_run = test_dev_run.dev_run  # the fixture, registered here too


def test_sentinel_urls_are_used_and_ctrl_c_after_a_failover_leaves_no_process(dev_run):
    """Ctrl-C as soon as the sentinels have promoted the replica, the clients still reconnecting.

    (A planned failover under a running app is tests/test_redis_topologies.py's.)
    """
    sentinel = SentinelDeployment().start()
    try:
        run = dev_run(None, {name: sentinel.url(db) for name, db in URL_DBS.items()}, workers=1)
        run.wait_ready()
        assert "using redis+sentinel://" in run.log()
        assert not any("redis-server" in child.name() for child in run.descendants)
        send_and_wait_for_reply(run, "before the failover")

        old = sentinel.master_port_now()
        sentinel.processes[old].kill()
        deadline = time.monotonic() + 30
        while sentinel.master_port_now() == old:
            assert time.monotonic() < deadline, "no failover"
            time.sleep(0.1)
        run.descendants = psutil.Process(run.process.pid).children(recursive=True)

        run.process.send_signal(signal.SIGINT)
        assert run.wait_exit() == 0, run.log()
        assert running(run.descendants) == [], run.log()
        assert not port_open(run.web_port)
    finally:
        sentinel.stop()


def test_a_cluster_url_serves_sessions_and_is_refused_for_jobs(dev_run):
    cluster = ClusterDeployment().start()
    jobs = RedisServer().start()
    try:
        urls = {"SESSION_REDIS_URL": cluster.url(), "RQ_REDIS_URL": jobs.url(0), "SOCKETIO_MESSAGE_QUEUE": jobs.url(1)}
        run = dev_run(None, urls, workers=1)
        run.wait_ready()
        assert "using redis+cluster://" in run.log()
        send_and_wait_for_reply(run, "sessions on a cluster")
        run.process.send_signal(signal.SIGINT)
        assert run.wait_exit() == 0, run.log()
        assert running(run.descendants) == []

        refused = dev_run(None, dict(urls, RQ_REDIS_URL=cluster.url()), workers=1)
        assert refused.wait_exit() == 1
        assert "RQ_REDIS_URL cannot be a Redis Cluster URL" in refused.log()
        assert "Traceback" not in refused.log()
    finally:
        jobs.stop()
        cluster.stop()
