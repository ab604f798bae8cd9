"""Local stand-ins for the OpenAI and Anthropic HTTP APIs, speaking their real streaming wire formats.

Each server is a stdlib ``ThreadingHTTPServer`` on a free 127.0.0.1 port, in a background thread.
A test scripts it (reply text, an error status, delays, a malformed stream) through ``server.script``
and reads back what the client sent from ``server.requests``. The ``fake_openai`` and
``fake_anthropic`` fixtures start one per test and point the provider's environment variables at it;
each on the same port for the whole run, so that the workers and web servers shared between tests
(whose environment names that port) reach the server of the test running.

Run one by hand (say, to point a dev worker at it): ``python -m tests.fake_llm_servers openai``.
"""

import contextlib
import json
import select
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

OPENAI_KEY = "sk-test-openai-0123456789abcdef"
ANTHROPIC_KEY = "sk-ant-test-0123456789abcdef"


@dataclass
class Script:
    """What the fake server answers to the next requests; tests change it freely."""

    reply: str = "Hello there, this is the fake model speaking."
    status: int = 200  # anything else: that status with the API's JSON error body
    delay_before: float = 0.0  # seconds before the status line (a slow server, for timeouts)
    chunk_delay: float = 0.0  # seconds between streamed chunks (slow streams, Stop)
    malformed: bool = False  # stream a little, then a line that is not JSON, then end
    drop_after: int | None = None  # hang up after this many frames, mid-stream (a crashed server)
    end_after: int | None = None  # end the body cleanly after this many frames (no finish, no [DONE])
    error_mid_stream: bool = False  # after the first delta, an error inside the 200 stream (overloaded)
    usage: bool = True  # OpenAI: send the usage chunk when asked for it (some servers never do)
    input_tokens: int = 21
    output_tokens: int = 9
    cached_tokens: int = 0  # of input_tokens, read from the provider's prompt cache
    thinking: str = ""  # Anthropic: an extended-thinking block streamed before the text (no text deltas meanwhile)
    models: list | None = None  # GET …/models answers {"object": "list", "data": models}; None: 404
    models_delay: float = 0.0  # seconds before that answer
    # Tool calls the reply makes ({"name", "arguments": JSON text}), after its text (if any): OpenAI
    # streams their arguments in small pieces, the calls interleaved; Anthropic as tool_use blocks.
    tool_calls: list | None = None
    reject_tools: bool = False  # answer 400 to a request with tools, as a model without tool support does


@dataclass
class RecordedRequest:
    """One request the fake server received."""

    method: str
    path: str
    headers: dict  # lower-cased names
    body: dict | None

    def sent_key(self) -> str:
        """The API key the client sent: ``x-api-key``, or the ``Authorization: Bearer`` token (SDK 2.x sends that)."""
        return self.headers.get("x-api-key") or self.headers.get("authorization", "").removeprefix("Bearer ")


@dataclass
class _Progress:
    chunks_sent: int = 0
    chunks_planned: int = 0
    disconnected: threading.Event = field(default_factory=threading.Event)
    # time.time() when the client closed a stream before its end (seen at once, between chunks too)
    closed_at: float | None = None


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client hanging up (a timeout, Stop, a closed keep-alive connection) is what tests do on purpose.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


def reply_pieces(text: str) -> list[str]:
    """Split a reply into word-sized deltas that join back to the same text."""
    words = text.split(" ")
    return [word if index == 0 else " " + word for index, word in enumerate(words)]


class FakeLLMServer:
    """Base class: the HTTP plumbing, the script, the request log; subclasses speak one API."""

    path = ""

    def __init__(self, listener: socket.socket | None = None):
        """A server on a free port, or on ``listener`` (a listening socket kept open by the caller)."""
        self.script = Script()
        self.requests: list[RecordedRequest] = []
        self.model_list_requests = 0  # GET …/models (kept apart: the provider asks for it in the background)
        self.progress = _Progress()
        self._stopping = threading.Event()
        self._listener = listener
        self._connections: set[socket.socket] = set()
        if listener is None:
            self._httpd = _HTTPServer(("127.0.0.1", 0), self._handler_class())
        else:
            self._httpd = _HTTPServer(listener.getsockname(), self._handler_class(), bind_and_activate=False)
            self._httpd.socket.close()  # the unbound one it made
            self._httpd.socket = listener
        self._thread = None

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        """The server's root URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "FakeLLMServer":
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; requests still sleeping in a delay give up at once, and kept-alive connections
        are closed (a later request on one would reach this server, not the next one on the port)."""
        self._stopping.set()
        self._httpd.shutdown()
        if self._listener is None:
            self._httpd.server_close()
        for connection in list(self._connections):
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self._thread.join(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def wait_for_disconnect(self, timeout: float = 5.0) -> bool:
        """True once the client dropped the connection in the middle of a stream."""
        return self.progress.disconnected.wait(timeout)

    def stream_requests(self) -> int:
        """How many streamed completions were asked for (provider calls)."""
        return sum(1 for request in self.requests if request.path == self.path)

    # --- what subclasses provide ---------------------------------------------------------------

    def error_body(self, status: int) -> dict:
        raise NotImplementedError

    def events(self, body: dict) -> list[bytes]:
        """The streamed body for one request, as a list of SSE frames."""
        raise NotImplementedError

    def tools_refused(self, body: dict) -> dict:
        raise NotImplementedError

    # --- plumbing --------------------------------------------------------------------------------

    def _sleep(self, seconds: float) -> None:
        if seconds:
            self._stopping.wait(seconds)

    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                server._connections.add(self.connection)
                if server._stopping.is_set():  # accepted while stopping: the next test's request
                    self.close_connection = True

            def finish(self):
                server._connections.discard(self.connection)
                super().finish()

            def log_message(self, format, *args):  # keep test output clean
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                server.requests.append(
                    RecordedRequest(
                        "POST",
                        self.path,
                        {name.lower(): value for name, value in self.headers.items()},
                        body,
                    )
                )
                script = server.script
                server._sleep(script.delay_before)
                if server._stopping.is_set():
                    return
                if self.path != server.path:
                    return self._json(404, server.error_body(404))
                if script.status != 200:
                    return self._json(script.status, server.error_body(script.status))
                if not (body or {}).get("stream"):
                    return self._json(400, server.error_body(400))
                if script.reject_tools and body.get("tools"):
                    return self._json(400, server.tools_refused(body))
                frames = server.events(body)
                cut = script.drop_after if script.drop_after is not None else script.end_after
                self._stream(frames[:cut], script.chunk_delay, complete=script.drop_after is None)

            def do_GET(self):
                server.model_list_requests += 1
                server._sleep(server.script.models_delay)
                if server._stopping.is_set():
                    return
                if not self.path.endswith("/models") or server.script.models is None:
                    return self._json(404, server.error_body(404))
                self._json(200, {"object": "list", "data": server.script.models})

            def _json(self, status, payload):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, frames, chunk_delay, complete=True):
                progress = server.progress
                progress.chunks_planned = len(frames)
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream; charset=utf-8")
                    self.send_header("Cache-Control", "no-cache")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for index, frame in enumerate(frames):
                        if index and self._client_closed_within(chunk_delay):
                            raise ConnectionResetError("the client closed the stream")
                        if server._stopping.is_set():
                            return
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(frame), frame))
                        self.wfile.flush()
                        progress.chunks_sent += 1
                    if not complete:  # no terminating chunk: the client sees the body cut short
                        self.close_connection = True
                        return
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    progress.closed_at = progress.closed_at or time.time()
                    progress.disconnected.set()
                    self.close_connection = True

            def _client_closed_within(self, seconds: float) -> bool:
                """Wait ``seconds`` (or until the server stops); True as soon as the client hangs up."""
                deadline = time.monotonic() + seconds
                while True:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or server._stopping.is_set():
                        return False
                    readable, _, _ = select.select([self.connection], [], [], min(remaining, 0.02))
                    if readable:
                        try:
                            if self.connection.recv(1, socket.MSG_PEEK) == b"":
                                return True
                        except OSError:
                            return True
                        server._sleep(min(remaining, 0.02))  # a pipelined request: not a hang-up

        return Handler


def _sse(data, event: str | None = None) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data)
    return (f"event: {event}\n" if event else "").encode() + f"data: {text}\n\n".encode()


class FakeOpenAI(FakeLLMServer):
    """``POST /v1/chat/completions`` with ``stream: true``, as OpenAI (and Ollama, vLLM...) answer it."""

    path = "/v1/chat/completions"

    @property
    def base_url(self) -> str:
        """What OPENAI_BASE_URL should be."""
        return self.url + "/v1"

    def error_body(self, status: int) -> dict:
        kinds = {
            400: ("invalid_request_error", None, "Unsupported value: 'stream' must be true here."),
            401: (
                "invalid_request_error",
                "invalid_api_key",
                f"Incorrect API key provided: {self._last_key()}. You can find your API key at ...",
            ),
            404: (
                "invalid_request_error",
                "model_not_found",
                "The model does not exist or you do not have access to it.",
            ),
            429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests per min (RPM): Limit 3."),
        }
        kind, code, message = kinds.get(
            status, ("server_error", None, "The server had an error while processing your request. Sorry about that!")
        )
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}

    def tools_refused(self, body: dict) -> dict:
        message = f"registry.fake/{body.get('model')} does not support tools"  # Ollama's words
        return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}

    def _last_key(self) -> str:
        # Echo the key back, as a careless server would: the provider must never show it.
        return self.requests[-1].sent_key() if self.requests else ""

    def events(self, body: dict) -> list[bytes]:
        script = self.script
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        base = {
            "id": "chatcmpl-fake1",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
            "system_fingerprint": "fp_fake",
        }

        def chunk(delta, finish_reason=None):
            payload = {
                **base,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
            }
            if include_usage:
                payload["usage"] = None
            return _sse(payload)

        pieces = reply_pieces(script.reply)
        frames = [chunk({"role": "assistant", "content": "", "refusal": None})]
        if script.error_mid_stream:  # what OpenRouter sends when the upstream model fails mid-reply
            error = {"message": "Upstream model overloaded", "code": 502, "metadata": {}}
            return frames + [chunk({"content": pieces[0]}), _sse({**base, "error": error, "choices": []})]
        if script.malformed:
            frames += [chunk({"content": pieces[0]}), _sse('{"id": "chatcmpl-fake1", "choices": [{"delta": {"cont')]
            return frames
        if script.reply:
            frames += [chunk({"content": piece}) for piece in pieces]
        calls = script.tool_calls or []
        for index, call in enumerate(calls):  # each call's id, type and name first, then its arguments
            head = {"index": index, "id": f"call_fake{index}", "type": "function"}
            frames.append(chunk({"tool_calls": [{**head, "function": {"name": call["name"], "arguments": ""}}]}))
        pieces_of = [[call["arguments"][at : at + 4] for at in range(0, len(call["arguments"]), 4)] for call in calls]
        for step in range(max((len(p) for p in pieces_of), default=0)):  # interleaved, as parallel calls may be
            for index, call_pieces in enumerate(pieces_of):
                if step < len(call_pieces):
                    piece = {"index": index, "function": {"arguments": call_pieces[step]}}
                    frames.append(chunk({"tool_calls": [piece]}))
        frames.append(chunk({}, "tool_calls" if calls else "stop"))
        if include_usage and script.usage:
            frames.append(
                _sse(
                    {
                        **base,
                        "choices": [],
                        "usage": {
                            "prompt_tokens": script.input_tokens,
                            "completion_tokens": script.output_tokens,
                            "total_tokens": script.input_tokens + script.output_tokens,
                            "prompt_tokens_details": {"cached_tokens": script.cached_tokens},
                        },
                    }
                )
            )
        frames.append(_sse("[DONE]"))
        return frames


class FakeAnthropic(FakeLLMServer):
    """``POST /v1/messages`` with ``stream: true``, as the Anthropic Messages API answers it."""

    path = "/v1/messages"

    @property
    def base_url(self) -> str:
        """What ANTHROPIC_BASE_URL should be."""
        return self.url

    def error_body(self, status: int) -> dict:
        kinds = {
            400: ("invalid_request_error", "messages: at least one message is required"),
            401: ("authentication_error", f"invalid x-api-key: {self._last_key()}"),
            403: ("permission_error", "Your API key does not have permission to use the specified resource."),
            404: ("not_found_error", "model: not-a-model"),
            429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit."),
            529: ("overloaded_error", "Overloaded"),
        }
        kind, message = kinds.get(status, ("api_error", "Internal server error"))
        return {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_fake1"}

    def _last_key(self) -> str:
        return self.requests[-1].sent_key() if self.requests else ""

    def tools_refused(self, body: dict) -> dict:
        message = "tools: this model does not support tool use"
        return {"type": "error", "error": {"type": "invalid_request_error", "message": message}}

    def events(self, body: dict) -> list[bytes]:
        script = self.script
        message = {
            "id": "msg_fake1",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "fake"),
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            # Anthropic's input_tokens leaves out what was read from the cache.
            "usage": {
                "input_tokens": script.input_tokens - script.cached_tokens,
                "output_tokens": 1,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": script.cached_tokens,
            },
        }
        frames = [
            _sse({"type": "message_start", "message": message}, "message_start"),
            _sse(
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                "content_block_start",
            ),
            _sse({"type": "ping"}, "ping"),
        ]

        pieces = reply_pieces(script.reply)
        if script.thinking:
            frames[1:2] = self.thinking_frames(script.thinking)
            frames.append(
                _sse(
                    {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
                    "content_block_start",
                )
            )
            text_index = 1
        else:
            text_index = 0

        def delta(text):
            return _sse(
                {"type": "content_block_delta", "index": text_index, "delta": {"type": "text_delta", "text": text}},
                "content_block_delta",
            )

        if script.error_mid_stream:
            error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
            return frames + [delta(pieces[0]), _sse(error, "error")]
        if script.malformed:
            return frames + [
                delta(pieces[0]),
                b'event: content_block_delta\ndata: {"type": "content_block_delta", "ind\n\n',
            ]
        frames += [delta(piece) for piece in pieces]
        frames.append(_sse({"type": "content_block_stop", "index": text_index}, "content_block_stop"))
        for offset, call in enumerate(script.tool_calls or []):
            index = text_index + 1 + offset
            block = {"type": "tool_use", "id": f"toolu_fake{offset}", "name": call["name"], "input": {}}
            frames.append(
                _sse({"type": "content_block_start", "index": index, "content_block": block}, "content_block_start")
            )
            arguments = call["arguments"]
            for at in range(0, len(arguments), 5):
                piece = {"type": "input_json_delta", "partial_json": arguments[at : at + 5]}
                frames.append(
                    _sse({"type": "content_block_delta", "index": index, "delta": piece}, "content_block_delta")
                )
            frames.append(_sse({"type": "content_block_stop", "index": index}, "content_block_stop"))
        frames += [
            _sse(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "tool_use" if script.tool_calls else "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": script.output_tokens},
                },
                "message_delta",
            ),
            _sse({"type": "message_stop"}, "message_stop"),
        ]
        return frames

    @staticmethod
    def thinking_frames(thinking: str) -> list[bytes]:
        """Content block 0 as extended thinking: its start, one ``thinking_delta`` per word, the signature, its stop."""
        frames = [
            _sse(
                {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
                "content_block_start",
            )
        ]
        frames += [
            _sse(
                {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": piece}},
                "content_block_delta",
            )
            for piece in reply_pieces(thinking)
        ]
        frames.append(
            _sse(
                {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "c2ln"}},
                "content_block_delta",
            )
        )
        frames.append(_sse({"type": "content_block_stop", "index": 0}, "content_block_stop"))
        return frames


def _listener():
    """A listening socket on a free loopback port, kept for the run."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=16)
    yield listener
    listener.close()


@pytest.fixture(scope="session")
def openai_listener():
    """The port of every test's fake OpenAI server."""
    yield from _listener()


@pytest.fixture(scope="session")
def anthropic_listener():
    """The port of every test's fake Anthropic server."""
    yield from _listener()


@pytest.fixture
def fake_openai(monkeypatch, openai_listener):
    """A running fake OpenAI server; OPENAI_API_KEY and OPENAI_BASE_URL point the provider at it."""
    with FakeOpenAI(openai_listener) as server:
        monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        yield server


@pytest.fixture
def fake_anthropic(monkeypatch, anthropic_listener):
    """A running fake Anthropic server; ANTHROPIC_API_KEY and ANTHROPIC_BASE_URL point the provider at it."""
    with FakeAnthropic(anthropic_listener) as server:
        monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
        yield server


def main(argv: list[str]) -> None:
    """Serve one fake API until Ctrl-C: ``python -m tests.fake_llm_servers openai|anthropic [chunk_delay]``."""
    kind = argv[0] if argv else "openai"
    server = {"openai": FakeOpenAI, "anthropic": FakeAnthropic}[kind]()
    if len(argv) > 1:
        server.script.chunk_delay = float(argv[1])
    with server:
        variable = "OPENAI_BASE_URL" if kind == "openai" else "ANTHROPIC_BASE_URL"
        print(f"fake {kind} API listening: {variable}={server.base_url}  (Ctrl-C stops it)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main(sys.argv[1:])
