"""``flask sessions`` on a real redis-server (DB 2 sessions), seeded through the page and the store."""

import re
import secrets

import pytest

from prompt_tracker.domain.keys import conversation_key, session_key
from prompt_tracker.domain.messages import encode_message, user_message
from prompt_tracker.domain.settings import STANDALONE
from prompt_tracker.extensions import services
from prompt_tracker.store import admin as session_admin

from .conftest import Playground
from .test_redis_integration import run_queued_replies

pytestmark = pytest.mark.integration
PREFIX = "prompt_tracker:session:"
DAY = 24 * 3600
HOUR = 3600


@pytest.fixture
def runner(live_app):
    return live_app.test_cli_runner()


@pytest.fixture
def db2(real_redis):
    return real_redis.client(2)


@pytest.fixture
def new_session(live_app):
    """Create a session through the page (settings saved, messages sent); return its Playground."""

    def create(messages=("hello",)):
        playground = Playground(live_app.test_client())
        playground.save_settings(system_prompt="Be brief.")
        for content in messages:
            playground.send(content)
        run_queued_replies(live_app)  # no reply left open: a session of a blob and a conversation
        return playground

    return create


def seed_sessions(app, count, messages=1) -> list[str]:
    """Write ``count`` sessions straight into Redis (blob + conversation list), pipelined; return their ids."""
    sids = [secrets.token_hex(32) for _ in range(count)]  # store ids, as the app names keys
    blob = app.session_interface.serializer.encode({"conversations": [STANDALONE]})
    records = [user_message(f"seeded {n}") for n in range(messages)]
    with app.app_context():
        redis = services.session_redis
        with redis.pipeline(transaction=False) as pipe:
            for sid in sids:
                pipe.set(session_key(PREFIX, sid), blob, ex=DAY)
                pipe.rpush(conversation_key(PREFIX, sid, STANDALONE), *map(encode_message, records))
                pipe.expire(conversation_key(PREFIX, sid, STANDALONE), DAY)
            pipe.execute()
    return sids


def make_idle(db2, sid, seconds):
    """Make every key of ``sid`` look unused for ``seconds`` (TTL = lifetime - seconds)."""
    for key in db2.scan_iter(match=f"{PREFIX}{{{sid}}}*"):
        db2.expire(key, DAY - seconds)


def session_keys(db2) -> set[str]:
    return {key.decode() for key in db2.scan_iter(match=PREFIX + "*", count=1000)}


def keys_of(sid) -> set[str]:
    return {session_key(PREFIX, sid), conversation_key(PREFIX, sid, STANDALONE)}


def invoke(runner, *args, **kwargs):
    return runner.invoke(args=["sessions", *args], **kwargs)


def test_purge_all_deletes_only_session_keys_of_db2(runner, new_session, db2, real_redis):
    first, second = new_session(), new_session(["a", "b"])
    db2.set("someone-else:key", "kept")
    db2.set(PREFIX + "not-a-session-key", "kept")  # under the prefix but not shaped like ours
    jobs_before = real_redis.client(0).dbsize()
    assert jobs_before > 0  # the sends queued replies in DB 0
    assert session_keys(db2) == keys_of(first.store()) | keys_of(second.store()) | {PREFIX + "not-a-session-key"}

    result = invoke(runner, "purge", "--yes")

    assert result.exit_code == 0, result.output
    assert re.fullmatch(r"Purged 2 sessions \(4 keys\) in \d+\.\d\d s\.\n", result.output)
    assert session_keys(db2) == {PREFIX + "not-a-session-key"}
    assert db2.get("someone-else:key") == b"kept"
    assert real_redis.client(0).dbsize() == jobs_before
    assert "No messages yet" in first.page().get_data(as_text=True)


def test_purge_idle_for_keeps_active_sessions_and_their_ttls(runner, new_session, db2):
    idle, active = new_session(["old"]), new_session(["new"])
    make_idle(db2, idle.store(), 3 * HOUR)
    ttls_before = {key: db2.ttl(key) for key in keys_of(active.store())}

    result = invoke(runner, "purge", "--idle-for", "2h", "--yes")

    assert result.exit_code == 0, result.output
    assert result.output.startswith("Purged 1 session idle for at least 2h00m (2 keys) ")
    assert session_keys(db2) == keys_of(active.store())
    for key, ttl in ttls_before.items():
        assert ttl - 5 <= db2.ttl(key) <= ttl  # untouched, not refreshed or shortened
    assert [m.content for m in active.messages(active.client.application)][0] == "new"


def test_purge_idle_for_counts_the_longest_lived_key(runner, new_session, db2):
    playground = new_session()
    # The blob looks idle, but the conversation was used a minute ago: the session is active.
    db2.expire(session_key(PREFIX, playground.store()), DAY - 5 * HOUR)
    db2.expire(conversation_key(PREFIX, playground.store(), STANDALONE), DAY - 60)
    result = invoke(runner, "purge", "--idle-for", "1h", "--yes")
    assert result.output == "Nothing to purge: no session idle for at least 1h00m is stored.\n"
    assert session_keys(db2) == keys_of(playground.store())


def test_purge_sid_dry_run_and_prompt(runner, new_session, db2):
    doomed, kept = new_session(), new_session()
    everything = keys_of(doomed.store()) | keys_of(kept.store())

    dry = invoke(runner, "purge", "--sid", doomed.store(), "--dry-run")
    assert dry.exit_code == 0
    assert dry.output.startswith("Would purge 1 session (2 keys)")
    assert session_keys(db2) == everything

    declined = invoke(runner, "purge", "--sid", doomed.store(), input="n\n")
    assert declined.exit_code == 0
    assert declined.output == "Delete 1 session (2 keys)? [y/N]: n\nPurge cancelled; nothing was deleted.\n"
    assert session_keys(db2) == everything

    accepted = invoke(runner, "purge", "--sid", doomed.store()[:12], input="y\n")
    assert accepted.exit_code == 0
    assert "Purged 1 session (2 keys) " in accepted.output
    assert session_keys(db2) == keys_of(kept.store())


def test_purge_spares_a_session_used_after_the_scan(live_app, new_session, db2):
    playground = new_session()
    make_idle(db2, playground.store(), 3 * HOUR)
    with live_app.app_context():
        keyspace = session_admin.open_keyspace()
        plan = session_admin.plan_purge(keyspace, idle_for=2 * HOUR)
        assert [session.store_id for session in plan.sessions] == [playground.store()]
        playground.page()  # the user comes back while the confirmation prompt waits
        result = session_admin.execute_purge(keyspace, plan)
    assert (result.sessions, result.keys, result.kept) == (0, 0, 1)
    assert session_keys(db2) == keys_of(playground.store())


def test_list_show_and_stats(runner, new_session, db2, live_app):
    busy = new_session(["one", "two", "three"])
    quiet = new_session(["only"])
    make_idle(db2, quiet.store(), 90 * 60)
    orphan = seed_sessions(live_app, 1, messages=4)[0]
    db2.delete(session_key(PREFIX, orphan))
    make_idle(db2, orphan, 5 * HOUR)
    sizes = {
        sid: sum(db2.memory_usage(key) for key in db2.scan_iter(match=f"{PREFIX}{{{sid}}}*"))
        for sid in (busy.store(), quiet.store(), orphan)
    }

    listing = invoke(runner, "list")
    assert listing.exit_code == 0, listing.output
    header, *rows, footer = listing.output.splitlines()
    assert header == "ID         KIND     IDLE   EXPIRES IN  MESSAGES  BYTES (MEMORY USAGE)"
    assert {len(row) for row in rows} == {len(header)}  # aligned columns, bytes right-aligned
    cells = [row.split() for row in rows]
    assert re.fullmatch(r"\ds", cells[0][2])  # a few seconds at most since its last request
    cells[0][2] = "0s"
    assert cells == [
        [busy.store()[:8] + "…", "session", "0s", "23h59m", "6", f"{sizes[busy.store()]:,}"],
        [quiet.store()[:8] + "…", "session", "1h30m", "22h29m", "2", f"{sizes[quiet.store()]:,}"],
        [orphan[:8] + "…", "session", "5h00m", "18h59m", "4", f"{sizes[orphan]:,}"],
    ]
    assert footer == "3 sessions, most recently active first."

    shown = invoke(runner, "show", quiet.store()[:8])
    assert shown.exit_code == 0, shown.output
    assert shown.output.splitlines() == [
        f"Session {quiet.store()}",
        f"  idle 1h30m, expires in 22h29m, 2 messages, {sizes[quiet.store()]:,} bytes (MEMORY USAGE)",
        "Settings:",
        "  standalone: system_prompt='Be brief.', provider='echo', model='echo-1', temperature=0.7, max_tokens=1024",
        "Other blob fields (values not shown): _permanent, conversations, csrf_token",
        f"Conversation {conversation_key(PREFIX, quiet.store(), STANDALONE)}: 2 messages, TTL 22h29m",
        "  #1 user done: only",
        "  #2 assistant done: You said: only (system prompt: 9 characters; turn 1)",
    ]

    orphan_shown = invoke(runner, "show", orphan, "--last", "3")
    assert orphan_shown.output.splitlines()[1:] == [
        f"  idle 5h00m, expires in 18h59m, 4 messages, {sizes[orphan]:,} bytes (MEMORY USAGE)",
        "Blob: none (only conversation lists are left)",
        f"Conversation {conversation_key(PREFIX, orphan, STANDALONE)}: 4 messages, TTL 18h59m",
        "  #2 user done: seeded 1",
        "  #3 user done: seeded 2",
        "  #4 user done: seeded 3",
    ]

    stats = invoke(runner, "stats")
    assert stats.exit_code == 0
    largest = max(sizes, key=lambda sid: (sizes[sid], sid))
    messages = {busy.store(): 6, quiet.store(): 2, orphan: 4}[largest]
    assert stats.output.splitlines() == [
        "Sessions: 3 (1 without a blob)",
        "Keys: 5",
        "Messages: 12",
        f"Bytes (MEMORY USAGE): {sum(sizes.values()):,} ({session_admin.format_size(sum(sizes.values()))})",
        f"Largest session: {largest[:8]}… ({sizes[largest]:,} bytes, {messages} messages)",
    ]


def test_show_unknown_sid(runner, new_session):
    new_session()
    result = invoke(runner, "show", "Zz-unknown")
    assert result.exit_code == 1
    assert "No session has an id starting with 'Zz-unknown'; run `flask sessions list`" in result.output


def test_purge_of_3000_sessions_leaves_no_key_and_never_uses_keys(live_app, runner, db2):
    seed_sessions(live_app, 3000, messages=2)
    assert db2.dbsize() == 6000
    db2.config_resetstat()
    advanced = []

    with live_app.app_context():
        keyspace = session_admin.open_keyspace()
        dry = session_admin.plan_purge(keyspace, progress=advanced.append)
    assert (len(dry.sessions), dry.keys) == (3000, 6000)
    assert sum(advanced) == 6000

    result = invoke(runner, "purge", "--yes")

    assert result.exit_code == 0, result.output
    assert result.output.startswith("Purged 3,000 sessions (6,000 keys) ")
    assert db2.dbsize() == 0
    commands = db2.info("commandstats")
    assert "cmdstat_keys" not in commands
    assert commands["cmdstat_scan"]["calls"] >= 12  # two purges' worth of SCAN at COUNT 1000
    # Deleted with one UNLINK per SCAN batch, as the scan goes, never one command per key.
    assert commands["cmdstat_unlink"]["calls"] <= commands["cmdstat_scan"]["calls"]


def test_purge_idle_for_among_3000_sessions_leaves_active_ones_intact(live_app, runner, db2):
    sids = seed_sessions(live_app, 3000)
    idle, active = sids[::2], sids[1::2]
    with db2.pipeline(transaction=False) as pipe:
        for sid in idle:
            for key in keys_of(sid):
                pipe.expire(key, DAY - 3 * HOUR)
        pipe.execute()

    result = invoke(runner, "purge", "--idle-for", "2h", "--yes")

    assert result.exit_code == 0, result.output
    assert result.output.startswith("Purged 1,500 sessions idle for at least 2h00m (3,000 keys) ")
    assert session_keys(db2) == set().union(*(keys_of(sid) for sid in active))
    assert all(ttl > DAY - 60 for ttl in (db2.ttl(key) for sid in active[:50] for key in keys_of(sid)))
