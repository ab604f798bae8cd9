"""Many open sockets against the production web command: are pages still fast?

    .venv/bin/python bench/sockets.py [--sockets 1000] [--duration 3] [--hold 30] [--output bench/sockets.json]

Starts a private redis-server and the Procfile's ``web:`` command (gunicorn, gevent worker) on it,
measures the page and ``/healthz`` with no socket open, then with ``--sockets`` idle Socket.IO
clients connected (the official python-socketio client, WebSocket transport, each its own session),
held for ``--hold`` seconds so pings go both ways, then after as many refused sockets (no stored
session: the server must close them). The sockets live in a separate process (``hold`` below) so
the measuring process is not slowed by them. See bench/README.md.
"""

import argparse
import asyncio
import http.client
import importlib.util
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(ROOT), str(BENCH)]

import load  # noqa: E402
from subjects import server_env  # noqa: E402

from tests.processes import procfile_command, stop  # noqa: E402
from tests.redis_server import RedisServer, free_port  # noqa: E402

HOST = "127.0.0.1"
COOKIE = "_prompt_tracker_session"
CONNECT_BATCH = 50  # sockets opened at once by the holder
SOCKETS_PER_HOLDER = 2500  # idle sockets per holder process, by default
CONNECT_TIMEOUT = 30.0  # seconds one socket may take to connect
SESSION_CONNECTIONS = 8  # connections creating the sockets' sessions (one page view each)


def raise_file_limit() -> int:
    """Raise this process's open-file limit to its hard limit (children inherit it); return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# --- the socket holder (a separate process) -------------------------------------------------------


async def hold_idle(port: int, cookies: list[str], hold: float) -> dict:
    """Connect one python-socketio client per cookie, keep them all for ``hold`` seconds, then leave."""
    import socketio

    clients = []
    failed = 0
    lost = Counter()  # why connected clients were disconnected before the end (python-socketio's reason)

    async def connect(cookie):
        nonlocal failed
        client = socketio.AsyncClient(reconnection=False)

        @client.event
        async def disconnect(reason=None):
            lost[str(reason)] += 1

        try:
            # Bounded: a server that stops accepting (a full worker) must show as failures, not a hang.
            await asyncio.wait_for(
                client.connect(
                    f"http://{HOST}:{port}",
                    transports=["websocket"],
                    headers={"Cookie": f"{COOKIE}={cookie}"},
                    wait_timeout=20,
                ),
                CONNECT_TIMEOUT,
            )
            clients.append(client)
        except Exception:
            failed += 1

    started = time.monotonic()
    for first in range(0, len(cookies), CONNECT_BATCH):
        await asyncio.gather(*(connect(cookie) for cookie in cookies[first : first + CONNECT_BATCH]))
    connect_seconds = time.monotonic() - started
    connected_at_end_of_connecting = sum(client.connected for client in clients)
    print(json.dumps({"connected": len(clients), "failed": failed}), flush=True)
    await asyncio.sleep(hold)  # the measuring process works meanwhile; clients answer the server's pings
    still = sum(client.connected for client in clients)
    lost_before_the_end = dict(lost)
    await asyncio.gather(*(client.disconnect() for client in clients), return_exceptions=True)
    return {
        "connected": len(clients),
        "failed": failed,
        "connect_seconds": round(connect_seconds, 2),
        "still_connected_after_connecting": connected_at_end_of_connecting,
        "still_connected_after_hold": still,
        "lost": lost_before_the_end,
    }


async def hold_refused(port: int, count: int, hold: float) -> None:
    """Open ``count`` WebSockets without a session, ask each to join, and keep this end open for ``hold`` seconds.

    Prints one JSON line once all are open and refused; this side never closes them before the end,
    so any that is gone meanwhile was closed by the server.
    """
    import aiohttp

    sockets = []

    async def one(session):
        ws = await session.ws_connect(
            f"ws://{HOST}:{port}/socket.io/?EIO=4&transport=websocket",
            headers={"Cookie": f"{COOKIE}={'R' * 43}"},
            autoclose=False,
            autoping=False,
            timeout=aiohttp.ClientWSTimeout(ws_close=1),
        )
        sockets.append(ws)
        await ws.send_str("40")
        while True:  # the Engine.IO open packet, then the refusal
            message = await ws.receive(timeout=20)
            if message.type != aiohttp.WSMsgType.TEXT or message.data.startswith("44"):
                return message.type == aiohttp.WSMsgType.TEXT

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        refused = 0
        started = time.monotonic()
        for first in range(0, count, CONNECT_BATCH):
            answers = await asyncio.gather(
                *(one(session) for _ in range(min(CONNECT_BATCH, count - first))), return_exceptions=True
            )
            refused += sum(answer is True for answer in answers)
        print(
            json.dumps(
                {"opened": len(sockets), "refusals_read": refused, "open_seconds": round(time.monotonic() - started, 2)}
            ),
            flush=True,
        )
        await asyncio.sleep(hold)
        for ws in sockets:
            ws._response.close()  # drop the connection without a close handshake


def hold_main(options) -> None:
    """The holder process: hold sockets, print a JSON line when they are open and one when done."""
    raise_file_limit()
    if options.mode == "idle":
        cookies = Path(options.cookies).read_text().split()
        result = asyncio.run(hold_idle(options.port, cookies, options.hold))
        print(json.dumps(result), flush=True)
    else:
        asyncio.run(hold_refused(options.port, options.count, options.hold))


# --- the measuring process ------------------------------------------------------------------------


def new_sessions(port: int, count: int, connections: int = SESSION_CONNECTIONS) -> list[str]:
    """Create ``count`` sessions by loading the page without a cookie (over ``connections`` at once); return their cookies."""

    def load_pages(share: int) -> list[str]:
        cookies = []
        connection = http.client.HTTPConnection(HOST, port, timeout=30)
        for _ in range(share):
            connection.request("GET", "/playground")
            response = connection.getresponse()
            response.read()
            header = response.getheader("Set-Cookie", "")
            cookies.append(header.split(";")[0].split("=", 1)[1])
        connection.close()
        return cookies

    shares = [count // connections + (index < count % connections) for index in range(connections)]
    with ThreadPoolExecutor(connections) as pool:
        return [cookie for cookies in pool.map(load_pages, shares) for cookie in cookies]


def measure(port: int, cookie: str, duration: float) -> dict:
    """Page (with a session) and /healthz under 2 keep-alive connections for ``duration`` seconds each."""
    headers = {"Cookie": f"{COOKIE}={cookie}"}
    return {
        "page": load.summary(load.run_load(HOST, port, "/playground", headers, 2, duration), duration),
        "healthz": load.summary(load.run_load(HOST, port, "/healthz", {}, 2, duration), duration),
    }


def client_connections(port: int) -> int:
    """Established TCP connections to the web server's ``port`` (its clients; not its Redis connections)."""
    lines = subprocess.run(
        ["ss", "-tnH", "state", "established", f"( sport = :{port} )"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    return len(lines)


def start_holder(args: list[str]) -> subprocess.Popen:
    """Start the holder process with ``args``."""
    return subprocess.Popen([sys.executable, __file__, "hold", *args], stdout=subprocess.PIPE, text=True, cwd=ROOT)


def read_json_line(process: subprocess.Popen) -> dict:
    """The next JSON line the holder prints (it fails loudly if the holder died)."""
    line = process.stdout.readline()
    if not line:
        raise RuntimeError(f"the socket holder exited with {process.wait()}")
    return json.loads(line)


def combined(results: list[dict]) -> dict:
    """The holders' results as one: counts added, the longest time, the reasons merged."""
    total: dict = {}
    for result in results:
        for name, value in result.items():
            if isinstance(value, dict):
                merged = total.setdefault(name, {})
                for reason, count in value.items():
                    merged[reason] = merged.get(reason, 0) + count
            elif name.endswith("_seconds"):
                total[name] = max(total.get(name, 0), value)
            else:
                total[name] = total.get(name, 0) + value
    return total


def run(options) -> dict:
    """Every case, on one private Redis and one production web process."""
    limit = raise_file_limit()
    results = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "sockets": options.sockets,
        "file_limit": limit,
    }
    server = RedisServer().start()
    port = free_port()
    env = server_env(server)
    command = procfile_command("web", port, env)
    results["web_command"] = " ".join(["gunicorn", *command[3:]])
    log = tempfile.NamedTemporaryFile(prefix="bench-sockets-web-", suffix=".log", delete=False)
    web = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                status, _ = load.request(http.client.HTTPConnection(HOST, port, timeout=2), "GET", "/healthz", {})
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or web.poll() is not None:
                raise RuntimeError(f"the web process did not start; see {log.name}")
            time.sleep(0.2)
        print(f"web: {results['web_command']}, log {log.name}", flush=True)

        cookies = new_sessions(port, options.sockets + 1)
        measuring_cookie, socket_cookies = cookies[0], cookies[1:]
        measure(port, measuring_cookie, 1)  # warm up
        results["baseline"] = {
            **measure(port, measuring_cookie, options.duration),
            "server_connections": client_connections(port),
        }
        print("baseline", json.dumps(results["baseline"]), flush=True)

        # Several holder processes, each with its share of the sockets: one asyncio loop with 10,000
        # python-socketio clients lags behind their pings on a busy machine (the clients, not the server).
        holders = []
        for share in range(options.holders):
            with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as cookie_file:
                cookie_file.write("\n".join(socket_cookies[share :: options.holders]))
            holders.append(
                start_holder(
                    ["--port", str(port), "--mode", "idle", "--cookies", cookie_file.name, "--hold", str(options.hold)]
                )
            )
        opened = combined([read_json_line(holder) for holder in holders])
        held_since = time.monotonic()
        idle = {
            **measure(port, measuring_cookie, options.duration),
            "server_connections": client_connections(port),
            **opened,
        }
        holder_result = combined([read_json_line(holder) for holder in holders])
        for holder in holders:
            holder.wait()
        idle.update(holder_result, held_seconds=round(time.monotonic() - held_since, 1), holders=options.holders)
        results["idle"] = idle
        print("idle", json.dumps(idle), flush=True)
        time.sleep(1)

        holder = start_holder(
            [
                "--port",
                str(port),
                "--mode",
                "refused",
                "--count",
                str(options.sockets),
                "--hold",
                str(options.duration * 2 + 4),
            ]
        )
        opened = read_json_line(holder)  # all refused; this end still holds every one of them open
        time.sleep(2)  # the server closes each refused socket about a second after its refusal
        refused = {
            **measure(port, measuring_cookie, options.duration),
            **opened,
            "server_connections_while_held": client_connections(port),
        }
        holder.wait()
        results["refused"] = refused
        print("refused", json.dumps(refused), flush=True)
    finally:
        stop(web)
        server.stop()
    return results


def table(results: dict) -> str:
    """The figures as a plain-text table."""
    rows = [
        ("no socket open", results["baseline"]),
        (f"{results['sockets']:,} idle sockets", results["idle"]),
        (f"{results['sockets']:,} refused sockets", results["refused"]),
    ]
    lines = [
        f"{'case':<24} {'page p50':>9} {'page p95':>9} {'page req/s':>10} {'healthz p50':>11} "
        f"{'healthz p95':>11} {'errors':>6}"
    ]
    for name, case in rows:
        page, health = case["page"], case["healthz"]
        lines.append(
            f"{name:<24} {page['p50_ms']:>7.1f}ms {page['p95_ms']:>7.1f}ms {page['rps']:>10.1f} "
            f"{health['p50_ms']:>9.1f}ms {health['p95_ms']:>9.1f}ms {page['errors'] + health['errors']:>6}"
        )
    idle, refused = results["idle"], results["refused"]
    lines.append(
        f"idle: {idle['connected']:,} connected ({idle['failed']} failed) in {idle['connect_seconds']} s; "
        f"{idle['still_connected_after_hold']:,} still connected after {idle['held_seconds']} s "
        f"({idle['holders']} holder processes; lost before the end: {idle.get('lost') or 'none'}); "
        f"connections to the server {results['baseline']['server_connections']} -> {idle['server_connections']}"
    )
    lines.append(
        f"refused: {refused['opened']:,} opened and {refused['refusals_read']:,} refusals read in "
        f"{refused['open_seconds']} s; 2 s later, with the client still holding all of them, "
        f"{refused['server_connections_while_held']} remain connected to the server"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    hold = sub.add_parser("hold", help="(internal) the socket-holding process")
    hold.add_argument("--port", type=int, required=True)
    hold.add_argument("--mode", choices=["idle", "refused"], required=True)
    hold.add_argument("--cookies")
    hold.add_argument("--count", type=int, default=0)
    hold.add_argument("--hold", type=float, default=30)
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds of load per measurement")
    parser.add_argument("--hold", type=float, default=30.0, help="seconds the idle sockets stay open")
    parser.add_argument("--holders", type=int, default=0, help="processes holding the idle sockets (0: one per 2,500)")
    parser.add_argument("--output", default=str(BENCH / "sockets.json"))
    options = parser.parse_args()
    if importlib.util.find_spec("aiohttp") is None:
        # Only this bench needs it (asyncio sockets by the thousand); kept out of the test venv, where every
        # process python-socketio starts would import it (0.2 s of CPU each).
        sys.exit("bench/sockets.py needs aiohttp: run `make bench-deps` first.")
    if options.command == "hold":
        hold_main(options)
        return
    options.holders = options.holders or -(-options.sockets // SOCKETS_PER_HOLDER)
    results = run(options)
    print(table(results))
    Path(options.output).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
