"""Redis topologies: Sentinel (failover without a restart) and Cluster (sessions only), on real servers."""

import pytest

from prompt_tracker import create_app
from prompt_tracker.store.redis_urls import RedisURLError, check_url, connect

from .conftest import Playground
from .processes import ROOT, kill, spawn_worker, wait_for
from .redis_server import RedisServer
from .redis_topologies import ClusterDeployment, SentinelDeployment


@pytest.mark.parametrize(
    ("url", "use", "sentence"),
    [
        ("redis+cluster://127.0.0.1:7000", "jobs", "RQ_REDIS_URL cannot be a Redis Cluster URL"),
        ("redis+cluster://127.0.0.1:7000", "socketio", "SOCKETIO_MESSAGE_QUEUE cannot be a Redis Cluster URL"),
        ("memcached://127.0.0.1:11211", "sessions", "unknown Redis URL scheme 'memcached'"),
    ],
)
def test_a_url_that_cannot_serve_its_use_is_refused_with_a_sentence(url, use, sentence):
    with pytest.raises(RedisURLError, match=sentence):
        check_url(url, use)


def test_the_app_refuses_a_cluster_url_for_jobs_at_start(monkeypatch):
    monkeypatch.setenv("RQ_REDIS_URL", "redis+cluster://127.0.0.1:7000,127.0.0.1:7001")
    with pytest.raises(RedisURLError, match="only sessions can live on a Cluster"):
        create_app("development")


def test_a_sentinel_url_without_a_service_is_refused():
    with pytest.raises(RedisURLError, match="names no service"):
        connect("redis+sentinel://127.0.0.1:26379/0", "jobs")


def test_a_cluster_url_password_is_hidden_in_messages():
    with pytest.raises(RedisURLError) as raised:
        check_url("redis+cluster://:hunter2@127.0.0.1:7000", "jobs")
    assert "hunter2" not in str(raised.value)


# --- real deployments -------------------------------------------------------------------------


def env_for(monkeypatch, **urls) -> dict:
    """Point this process (the in-process app) and the workers it starts at ``urls``."""
    import os

    env = dict(os.environ, PROMPT_TRACKER_ENV="development", PYTHONPATH=str(ROOT), **urls)
    for key, value in urls.items():
        monkeypatch.setenv(key, value)
    return env


def reply_of(app, playground, content: str) -> str:
    """Send ``content`` (through a few seconds of 503 at most) and wait for its final reply's text."""
    wait_for(lambda: playground.send(content).status_code == 303, timeout=5, interval=0.2)
    reply = wait_for(
        lambda: (last := playground.messages(app)[-1]).status in ("done", "failed", "stopped") and last, timeout=30
    )
    assert reply.status == "done", reply.error
    assert reply.role == "assistant", [(m.role, m.content) for m in playground.messages(app)]
    return reply.content


@pytest.mark.integration
def test_sentinel_serves_all_three_uses_and_a_failover_needs_no_restart(monkeypatch, tmp_path):
    deployment = SentinelDeployment().start()
    worker = None
    try:
        env = env_for(
            monkeypatch,
            SESSION_REDIS_URL=deployment.url(2),
            RQ_REDIS_URL=deployment.url(0),
            SOCKETIO_MESSAGE_QUEUE=deployment.url(1),
        )
        worker = spawn_worker(env, tmp_path / "worker.log")
        app = create_app("development", overrides={"DEBUG": False})
        playground = Playground(app.test_client())
        assert "before the failover" in reply_of(app, playground, "before the failover")

        old_master = deployment.master_port_now()
        new_master = deployment.failover()
        assert new_master != old_master

        # The same app and the same worker carry on: a few 503s at most while clients reconnect.
        assert "after the failover" in reply_of(app, playground, "after the failover")
        contents = [message.content for message in playground.messages(app)]
        assert contents[0] == "before the failover" and contents[2] == "after the failover"
        assert len(contents) == 4, "an acknowledged message was lost in the failover"
        assert app.test_client().get("/healthz").status_code == 200
    finally:
        if worker is not None:
            kill(worker)
        deployment.stop()


@pytest.fixture(scope="module")
def cluster():
    deployment = ClusterDeployment().start()
    yield deployment
    deployment.stop()


@pytest.mark.integration
def test_sessions_on_a_cluster_with_jobs_and_socketio_on_a_plain_redis(cluster, monkeypatch, tmp_path):
    plain = RedisServer().start()
    worker = None
    try:
        env = env_for(
            monkeypatch, SESSION_REDIS_URL=cluster.url(), RQ_REDIS_URL=plain.url(0), SOCKETIO_MESSAGE_QUEUE=plain.url(1)
        )
        worker = spawn_worker(env, tmp_path / "worker.log")
        app = create_app("development", overrides={"DEBUG": False})
        sessions = [Playground(app.test_client()) for _ in range(6)]
        for number, playground in enumerate(sessions):
            assert f"turn {number}" in reply_of(app, playground, f"turn {number}")
        # Each session's keys share one hash slot, and the sessions spread over the masters.
        keys = cluster.keys_per_node()
        assert sum(1 for node_keys in keys.values() if node_keys) >= 2
        for node_keys in keys.values():
            tags = {key.split(b"{")[1].split(b"}")[0] for key in node_keys}
            assert all(sum(tag in key for node in keys.values() for key in node) == 2 for tag in tags)

        runner = app.test_cli_runner()
        listed = runner.invoke(args=["sessions", "list"])
        assert listed.exit_code == 0, listed.output
        assert "6 sessions, most recently active first." in listed.output
        purged = runner.invoke(args=["sessions", "purge", "--yes"])
        assert purged.exit_code == 0, purged.output
        assert all(node_keys == [] for node_keys in cluster.keys_per_node().values())
        assert playground.reset().status_code == 303  # a purged session starts afresh, no error
    finally:
        if worker is not None:
            kill(worker)
        plain.stop()


@pytest.mark.integration
def test_a_login_on_a_cluster_keeps_the_conversation_under_the_new_id(cluster, monkeypatch):
    """regenerate() (what a login does) moves keys from the old store id's slot to the new one's."""
    from prompt_tracker.domain.keys import store_id

    from .conftest import COOKIE

    plain = RedisServer().start()
    try:
        env_for(
            monkeypatch, SESSION_REDIS_URL=cluster.url(), RQ_REDIS_URL=plain.url(0), SOCKETIO_MESSAGE_QUEUE=plain.url(1)
        )
        app = create_app("development", overrides={"DEBUG": False})
        playground = Playground(app.test_client())
        playground.save_settings(system_prompt="kept across the login")
        assert playground.send("kept too").status_code == 303  # no worker: its reply stays open
        old_sid = playground.sid()
        with app.test_request_context(headers={"Cookie": f"{COOKIE}={old_sid}"}) as context:
            app.session_interface.regenerate(context.session)
            response = app.response_class()
            app.session_interface.save_session(app, context.session, response)
        playground.client.set_cookie(COOKIE, context.session.sid)
        assert context.session.sid != old_sid
        assert [m.content for m in playground.messages(app)][0] == "kept too"
        assert "kept across the login" in playground.page().get_data(as_text=True)
        old_store = store_id(old_sid)
        assert not any(old_store.encode() in key for node in cluster.keys_per_node().values() for key in node)
    finally:
        plain.stop()
