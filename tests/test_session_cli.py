"""``flask sessions`` on the test config: blobs in cachelib's SimpleCache, conversation lists in fakeredis."""

import io
import re

import pytest

from prompt_tracker.domain.keys import conversation_key, session_key, store_id
from prompt_tracker.domain.messages import user_message
from prompt_tracker.domain.settings import STANDALONE
from prompt_tracker.extensions import services
from prompt_tracker.store import admin as session_admin
from prompt_tracker.store import cli as session_cli

from .conftest import Playground

PREFIX = "prompt_tracker:session:"
HOUR = 3600


@pytest.fixture
def new_session(app):
    """Create a session through the page: settings saved, ``messages`` sent; return its Playground."""

    def create(messages=("hello",), system_prompt="Be brief."):
        playground = Playground(app.test_client())
        playground.save_settings(system_prompt=system_prompt)
        for content in messages:
            playground.send(content)
        return playground

    return create


def stored_keys(app) -> set[str]:
    """Every session key left: blobs in the cache, lists in fakeredis."""
    with app.app_context():
        lists = {key.decode() for key in services.session_redis.scan_iter(match=PREFIX + "*")}
    cache = app.session_interface.cache
    return lists | {key for key in list(cache._cache) if key.startswith(PREFIX) and cache.has(key)}


def keys_of(sid) -> set[str]:
    return {session_key(PREFIX, sid), conversation_key(PREFIX, sid, STANDALONE)}


def make_idle(app, sid, seconds):
    """Make every key of ``sid`` look unused for ``seconds`` (TTL = lifetime - seconds)."""
    ttl = int(app.permanent_session_lifetime.total_seconds()) - seconds
    cache = app.session_interface.cache
    blob_key = session_key(PREFIX, sid)
    if cache.has(blob_key):
        cache.set(blob_key, cache.get(blob_key), timeout=ttl)
    with app.app_context():
        for key in services.session_redis.scan_iter(match=f"{PREFIX}{{{sid}}}:*"):
            services.session_redis.expire(key, ttl)


def invoke(runner, *args, **kwargs):
    return runner.invoke(args=["sessions", *args], **kwargs)


# --- purge -------------------------------------------------------------------------------------


def test_purge_yes_deletes_every_session_and_the_page_starts_afresh(app, runner, new_session):
    first, second = new_session(["one", "two"]), new_session(["three"])
    assert stored_keys(app) == keys_of(first.store()) | keys_of(second.store())

    result = invoke(runner, "purge", "--yes")

    assert result.exit_code == 0, result.output
    assert re.fullmatch(r"Purged 2 sessions \(4 keys\) in \d+\.\d\d s\.\n", result.output)
    assert stored_keys(app) == set()
    assert "No messages yet" in first.page().get_data(as_text=True)


def test_purge_idle_for_deletes_only_idle_sessions(app, runner, new_session):
    idle, recent, active = new_session(), new_session(), new_session()
    make_idle(app, idle.store(), 3 * HOUR)
    make_idle(app, recent.store(), 30 * 60)

    result = invoke(runner, "purge", "--idle-for", "2h", "--yes")

    assert result.exit_code == 0, result.output
    assert result.output.startswith("Purged 1 session idle for at least 2h00m (2 keys) ")
    assert stored_keys(app) == keys_of(recent.store()) | keys_of(active.store())
    assert [m.content for m in active.messages(app)][0] == "hello"


def test_a_visitors_session_counts_its_idle_time_from_its_short_lifetime(app, runner, new_session):
    """A page view by a visitor stores an hour-long session: just viewed, it is not idle; 40 minutes on, it is."""
    used = new_session()
    visitor = Playground(app.test_client())
    visitor.page()
    assert stored_keys(app) == keys_of(used.store()) | {session_key(PREFIX, visitor.store())}

    result = invoke(runner, "purge", "--idle-for", "30m", "--yes")
    assert result.output == "Nothing to purge: no session idle for at least 30m00s is stored.\n"

    blob_key = session_key(PREFIX, visitor.store())
    cache = app.session_interface.cache
    cache.set(blob_key, cache.get(blob_key), timeout=20 * 60)  # its hour is 40 minutes gone
    result = invoke(runner, "purge", "--idle-for", "30m", "--yes")
    assert result.output.startswith("Purged 1 session idle for at least 30m00s (1 key) ")
    assert stored_keys(app) == keys_of(used.store())


def test_purge_idle_for_with_nothing_idle_says_so(app, runner, new_session):
    playground = new_session()
    result = invoke(runner, "purge", "--idle-for", "1h30m", "--yes")
    assert result.exit_code == 0
    assert result.output == "Nothing to purge: no session idle for at least 1h30m is stored.\n"
    assert stored_keys(app) == keys_of(playground.store())


def test_purge_sid_deletes_that_session_only(app, runner, new_session):
    doomed, kept = new_session(), new_session()
    result = invoke(runner, "purge", "--sid", doomed.store(), "--yes")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Purged 1 session (2 keys) ")
    assert stored_keys(app) == keys_of(kept.store())


def test_purge_sid_accepts_the_prefix_shown_by_list(app, runner, new_session):
    doomed, kept = new_session(), new_session()
    result = invoke(runner, "purge", "--sid", doomed.store()[:8] + "…", "--yes")
    assert result.exit_code == 0, result.output
    assert stored_keys(app) == keys_of(kept.store())


def test_purge_unknown_sid_is_an_error_and_deletes_nothing(app, runner, new_session):
    playground = new_session()
    result = invoke(runner, "purge", "--sid", "nosuchsession", "--yes")
    assert result.exit_code == 1
    assert "No session has an id starting with 'nosuchsession'; run `flask sessions list`" in result.output
    assert stored_keys(app) == keys_of(playground.store())


@pytest.mark.parametrize("sid", ["*", "abc*", "a?c", "[a]", "a b"])
def test_purge_sid_refuses_glob_patterns(app, runner, new_session, sid):
    playground = new_session()
    result = invoke(runner, "purge", "--sid", sid, "--yes")
    assert result.exit_code == 1
    assert "is not a session id" in result.output
    assert stored_keys(app) == keys_of(playground.store())


def test_purge_dry_run_reports_and_deletes_nothing(app, runner, new_session):
    sessions = [new_session(), new_session()]
    before = stored_keys(app)
    result = invoke(runner, "purge", "--dry-run")
    assert result.exit_code == 0
    assert re.fullmatch(r"Would purge 2 sessions \(4 keys\); dry run, nothing was deleted\.\n", result.output)
    assert stored_keys(app) == before == set().union(*(keys_of(s.store()) for s in sessions))


def test_purge_asks_first_and_no_deletes_nothing(app, runner, new_session):
    new_session(), new_session()
    before = stored_keys(app)
    result = invoke(runner, "purge", input="n\n")
    assert result.exit_code == 0
    assert "Delete 2 sessions (4 keys)? [y/N]: n\n" in result.output
    assert result.output.endswith("Purge cancelled; nothing was deleted.\n")
    assert stored_keys(app) == before


def test_purge_asks_first_and_yes_deletes(app, runner, new_session):
    new_session()
    result = invoke(runner, "purge", input="y\n")
    assert result.exit_code == 0
    assert "Delete 1 session (2 keys)? [y/N]: y\n" in result.output
    assert "Purged 1 session (2 keys) " in result.output
    assert stored_keys(app) == set()


def test_purge_counts_conversation_lists_whose_blob_is_gone(app, runner, new_session):
    orphan = new_session()
    new_session()
    app.session_interface.cache.delete(session_key(PREFIX, orphan.store()))
    result = invoke(runner, "purge", "--dry-run")
    assert result.output.startswith("Would purge 2 sessions (3 keys)")
    result = invoke(runner, "purge", "--yes")
    assert result.output.startswith("Purged 2 sessions (3 keys) ")
    assert stored_keys(app) == set()


def test_purge_with_no_sessions(runner):
    result = invoke(runner, "purge", "--yes")
    assert result.exit_code == 0
    assert result.output == "Nothing to purge: no session is stored.\n"


@pytest.mark.parametrize("value", ["", "2", "h", "2x", "-1h", "1.5h", "30m1h", "1 h", "2hours"])
def test_purge_bad_duration_is_a_bad_parameter(app, runner, new_session, value):
    playground = new_session()
    result = invoke(runner, "purge", "--idle-for", value, "--yes")
    assert result.exit_code == 2
    assert "Invalid value for '--idle-for'" in result.output
    assert "like 90s, 30m, 2h, 1d or 1h30m." in result.output
    assert stored_keys(app) == keys_of(playground.store())


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("30m", 1800),
        ("2h", 7200),
        ("1d", 86400),
        ("1h30m", 5400),
        ("1d2h3m4s", 93784),
        ("0s", 0),
        ("2H", 7200),
    ],
)
def test_parse_duration(text, seconds):
    assert session_admin.parse_duration(text) == seconds


# --- list, show, stats -------------------------------------------------------------------------


def test_list_shows_sessions_most_recently_active_first(app, runner, new_session):
    idle = new_session(["a", "b", "c"])
    active = new_session(["x"])
    make_idle(app, idle.store(), 3 * HOUR)

    result = invoke(runner, "list")

    assert result.exit_code == 0, result.output
    header, first, second, footer = result.output.splitlines()
    assert header.split() == ["ID", "KIND", "IDLE", "EXPIRES", "IN", "MESSAGES", "BYTES", "(payload)"]
    active_id, active_kind, active_idle, active_expires, active_messages, active_bytes = first.split()
    idle_id, idle_kind, idle_idle, idle_expires, idle_messages, idle_bytes = second.split()
    assert active_kind == idle_kind == "session"
    assert (active_id, active_messages) == (active.store()[:8] + "…", "2")
    assert re.fullmatch(r"\ds", active_idle)  # a few seconds at most since its last request
    assert active_expires in ("23h59m", "1d00h")
    assert (idle_id, idle_idle, idle_messages) == (idle.store()[:8] + "…", "3h00m", "6")
    assert idle_expires in ("20h59m", "21h00m")
    assert int(idle_bytes.replace(",", "")) > int(active_bytes.replace(",", "")) > 0
    assert footer == "2 sessions, most recently active first."
    assert idle.sid() not in result.output  # only a prefix of the secret id


def test_list_limit(app, runner, new_session):
    sessions = [new_session() for _ in range(3)]
    for age, playground in enumerate(sessions):
        make_idle(app, playground.store(), age * HOUR)
    result = invoke(runner, "list", "--limit", "2")
    lines = result.output.splitlines()
    assert [line.split()[0] for line in lines[1:3]] == [s.store()[:8] + "…" for s in sessions[:2]]
    assert lines[-1] == "2 of 3 sessions, most recently active first."


def test_list_empty(runner):
    assert invoke(runner, "list").output == "No sessions are stored.\n"


def test_show_settings_conversation_and_latest_messages(app, runner, new_session):
    long_message = "second question\nwith a second line " + "x" * 100
    playground = new_session(["first question", long_message], system_prompt="You are terse.")
    sid = playground.store()
    blob = app.session_interface.cache.get(session_key(PREFIX, sid))

    result = invoke(runner, "show", sid[:10], "--last", "3")

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"Session {sid}"
    assert re.fullmatch(r"  idle \ds, expires in (23h59m|1d00h), 4 messages, [\d,]+ bytes \(payload\)", lines[1])
    assert lines[2] == "Settings:"
    assert lines[3].startswith("  standalone: system_prompt='You are terse.', provider='echo', model='echo-1'")
    assert "csrf_token" in lines[4] and blob["csrf_token"] not in result.output  # names only, never values
    assert re.fullmatch(
        rf"Conversation {re.escape(conversation_key(PREFIX, sid, STANDALONE))}: 4 messages, TTL (23h59m|1d00h)",
        lines[5],
    )
    assert len(lines) == 9  # the last 3 of 4 messages
    assert lines[6].startswith("  #2 assistant done: You said: first question")
    assert lines[7] == "  #3 user done: " + " ".join(long_message.split())[:80] + "…"
    assert lines[8].startswith("  #4 assistant done: You said: second question")


def test_show_orphan_lists(app, runner, new_session):
    playground = new_session()
    app.session_interface.cache.delete(session_key(PREFIX, playground.store()))
    result = invoke(runner, "show", playground.sid())
    assert result.exit_code == 0
    assert "Blob: none (only conversation lists are left)" in result.output
    assert "2 messages" in result.output


def test_show_unknown_sid(runner, new_session):
    new_session()
    result = invoke(runner, "show", "unknown")
    assert result.exit_code == 1
    assert result.output == (
        "Error: No session has an id starting with 'unknown'; run `flask sessions list` to see them.\n"
    )


def test_show_ambiguous_prefix(app, runner):
    with app.app_context():
        for store in ("a" * 63 + "1", "a" * 63 + "2"):
            services.store.append(store, STANDALONE, user_message("seeded"))
    result = invoke(runner, "show", "aaaa")
    assert result.exit_code == 1
    assert "2 sessions have an id starting with 'aaaa'; give more characters of the id." in result.output
    assert invoke(runner, "show", "a" * 63 + "2").output.startswith("Session " + "a" * 63 + "2\n")


def test_a_cookie_id_that_starts_with_a_dash_is_an_id_not_an_option(app, runner):
    sid = "-L" + "a" * 41
    with app.app_context():
        services.store.append(store_id(sid), STANDALONE, user_message("dashing"))
    assert invoke(runner, "show", sid).output.startswith(f"Session {store_id(sid)}\n")
    result = invoke(runner, "purge", "--sid", sid, "--yes")
    assert result.output.startswith("Purged 1 session (1 key) ")
    assert stored_keys(app) == set()


def test_stats(app, runner, new_session):
    new_session(["hi"])
    big = new_session(["a" * 3000, "b"])
    new_session([])  # settings only: a blob and no conversation
    result = invoke(runner, "stats")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[:3] == ["Sessions: 3", "Keys: 5", "Messages: 6"]
    assert re.fullmatch(r"Bytes \(payload\): [\d,]+ \([\d.]+ KB\)", lines[3])
    assert lines[4].startswith(f"Largest session: {big.store()[:8]}… (")
    assert lines[4].endswith(" bytes, 4 messages)")


def test_stats_empty(runner):
    assert invoke(runner, "stats").output.splitlines()[:3] == ["Sessions: 0", "Keys: 0", "Messages: 0"]


def test_functions_work_without_the_cli(app, new_session):
    playground = new_session(["one"])
    with app.app_context():
        keyspace = session_admin.open_keyspace()
        sessions, total = session_admin.list_sessions(keyspace)
        assert total == 1 and sessions[0].store_id == playground.store() and sessions[0].messages == 2
        plan = session_admin.plan_purge(keyspace)
        assert plan.keys == 2
        result = session_admin.execute_purge(keyspace, plan)
        assert (result.sessions, result.keys, result.kept) == (1, 2, 0)
    assert stored_keys(app) == set()


def test_help_is_one_sentence_per_command(runner):
    output = invoke(runner, "--help").output
    assert "purge  Delete sessions: all of them, the idle ones, or one." in output
    assert "list   List the stored sessions, most recently active first." in output


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_only_on_a_terminal_and_for_long_runs(monkeypatch):
    terminal = FakeTerminal()
    monkeypatch.setattr(session_cli.sys, "stderr", terminal)
    with session_cli.progress_bar("Deleting sessions", 1000) as advance:
        assert advance is None  # a short run: no bar
    with session_cli.progress_bar("Deleting sessions", 3000) as advance:
        advance(3000)
    assert "Deleting sessions" in terminal.getvalue() and "100%" in terminal.getvalue()
    monkeypatch.setattr(session_cli.sys, "stderr", io.StringIO())
    with session_cli.progress_bar("Deleting sessions", 3000) as advance:
        assert advance is None  # not a terminal: nothing that would end up in a log
