"""The web app on a uvicorn server: alone (``campaign web``) or in another service's event loop (``campaign serve``).

:class:`WebServer` binds its socket when it is made, before anything is served: a port in use or an address that is
not this machine's is a one-line :class:`WebServerError` naming the setting, before the scheduler sends anything,
and with port 0 the port taken is known at once (:attr:`WebServer.url`). uvicorn is driven programmatically
(``uvicorn.Config`` and ``Server.serve`` on that socket), with its own signal handling turned off: the process's
SIGTERM and SIGINT belong to whoever runs the server, which calls :meth:`WebServer.request_stop` (``campaign web``:
:meth:`WebServer.run`; ``campaign serve``: the scheduler service). A graceful stop closes the socket, lets the
requests in progress finish (at most :data:`GRACE_SECONDS`) and returns; a stop ``at_once`` does not wait.

uvicorn's parser is httptools and its loop uvloop where installed (``campaign web`` runs on uvloop; in
``campaign serve`` the server shares the scheduler's loop). No access log: a line per pixel request would cost
more than the request, and tracking records its own hits. No ``Server:`` header: the server advertises nothing.
No ``X-Forwarded-For``: uvicorn would take the client's address from it on a connection from 127.0.0.1 (a
reverse proxy's, or anyone's on the machine); the client is the connection's peer, as README says.

Speed (``bench/tracking.py``, server CPU time a request, the pixel without writes): uvicorn writes a response's
head when the app starts it and its body when the app sends it, two system calls and two TCP segments for the
pixel's 43 bytes; :class:`_CoalescingTransport` sends what one turn of the event loop wrote in one (44 → 35 µs
a request). Start-up's objects are frozen out of the garbage collector's full collections (see :meth:`run`).
The open pixel, the busiest route, is answered by the protocol itself, without the app: a keep-alive HTTP/1.1
GET or HEAD of its path, when no earlier request of the connection is unanswered, has its open recorded as soon
as its head is parsed (:meth:`~campaign.web.tracking.TrackingEndpoints.pixel_now`, the app's own endpoints,
``app.state.tracking``) and gets the bytes uvicorn would have written (status line, date, the pixel's headers, the
GIF), built once a second. No task, ASGI messages, Starlette or middleware a request: 66 → 49 µs of server CPU a
pixel request, writes included (interleaved runs on a loaded machine). Anything else (a query string, a
percent-encoded path, HTTP/1.0, ``Connection: close``, pipelined behind a slower request) goes to the app, which
answers it the same way. That answer is written at once (:meth:`_CoalescingTransport.write_now`: no callback at the
end of the turn, 1.5 µs), and the keep-alive timeout (uvicorn's 5 s from a connection's last answer) is one timer
a connection, armed again for the rest when it finds the connection was busy meanwhile, not one timer set and
cancelled a request (2.7 µs in uvloop).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import signal
import socket
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, cast

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from campaign.exceptions import CampaignError
from campaign.services.context import AppContext
from campaign.web.app import create_app
from campaign.web.tracking import PIXEL, RawHeaders, TrackingEndpoints

MAX_HEAD_BYTES = 32 * 1024
"""The longest request line and headers taken (nginx's default buffers hold as much); longer is a 431."""
LINGER_SECONDS = 2.0
"""After refusing a head, how long what the client still sends is read and dropped before the connection closes."""
_HEAD_TOO_LARGE_BODY = b"431 Request Header Fields Too Large\n"
_HEAD_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_HEAD_TOO_LARGE_BODY), _HEAD_TOO_LARGE_BODY)
)
GRACE_SECONDS = 10
"""On a graceful stop, how long requests in progress may take to finish."""
_PIXEL_METHODS = (b"GET", b"HEAD")
_BACKLOG = 2048  # connections the kernel queues before accept (uvicorn's default)


class WebServerError(CampaignError):
    """The web server cannot start: its address cannot be listened on, or the app failed to start."""


class _Server(uvicorn.Server):
    """uvicorn's server without its signal handling (see the module doc)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Nothing: uvicorn's own handlers would take the signals from the service running it, and re-raise them
        after the stop (so the process would die of SIGTERM instead of exiting 0)."""
        yield


class _CoalescingTransport:
    """A connection's transport whose writes of one turn of the event loop leave together, in one system call (see
    the module doc): each write is held until the end of the turn (``call_soon``), or until the transport is
    closed. Everything else is the transport's own."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Hold ``data`` until the end of this turn of the loop."""
        if not self._held:
            self._loop.call_soon(self._flush)
        self._held.append(bytes(data))

    def writelines(self, lines: Iterable[bytes | bytearray | memoryview]) -> None:
        """:meth:`write` each of ``lines``."""
        for data in lines:
            self.write(data)

    def write_now(self, data: bytes) -> None:
        """Send what is held and ``data`` now: a whole answer, nothing else to wait for (no callback a turn)."""
        self._flush()
        if not self._transport.is_closing():
            self._transport.write(data)

    def get_write_buffer_size(self) -> int:
        """What the transport holds, and what this one does."""
        return self._transport.get_write_buffer_size() + sum(len(data) for data in self._held)

    def write_eof(self) -> None:
        """Send what is held, then end the writing side."""
        self._flush()
        self._transport.write_eof()

    def close(self) -> None:
        """Send what is held, then close (the transport sends what it has buffered first)."""
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        """Close at once; what is held is lost, as the transport's own buffer is."""
        self._held.clear()
        self._transport.abort()

    def _flush(self) -> None:
        if not self._held:
            return
        data = self._held[0] if len(self._held) == 1 else b"".join(self._held)
        self._held.clear()
        if not self._transport.is_closing():  # the peer went away meanwhile: nobody to send it to
            self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol writing through a :class:`_CoalescingTransport`, and refusing a request head
    (request line and headers) longer than :data:`MAX_HEAD_BYTES` with a 431.

    httptools puts no bound on a head: it gathers each header whole before handing it on, so one client sending
    an endless header would hold as much memory as it sends. The bytes are counted as they arrive, before the
    parser sees them.
    """

    _head_bytes = 0
    _in_head = True
    _heads = 0  # heads received whole on this connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """The connection, its writes held to the end of each turn of the loop."""
        self._coalescing = _CoalescingTransport(transport, self.loop)
        # The pixel is answered here only when uvicorn hands requests to the app as they are: not when it wraps the
        # app (trusted proxies' forwarded addresses, trace logging), which must see them.
        config = self.config
        self._tracking: TrackingEndpoints | None = (
            getattr(getattr(config.app, "state", None), "tracking", None) if config.loaded_app is config.app else None
        )
        super().connection_made(cast(asyncio.Transport, self._coalescing))

    def data_received(self, data: bytes) -> None:
        """Feed the parser, unless the head being received has grown past the limit."""
        if not self._in_head:
            super().data_received(data)
            return
        room = MAX_HEAD_BYTES - self._head_bytes
        if room < 0:
            return  # refused: what the client still sends is dropped, unparsed, until the connection closes
        if len(data) <= room:
            self._head_bytes += len(data)
            super().data_received(data)
            return
        # The bytes up to the limit first: a head ending among them is whole (what follows is body, or the next
        # request, counted afresh); otherwise the head is too long.
        heads = self._heads
        self._head_bytes = MAX_HEAD_BYTES
        super().data_received(data[:room])
        if self._heads != heads:
            self.data_received(data[room:])
        elif not self.transport.is_closing():
            self._head_bytes = MAX_HEAD_BYTES + 1
            self._refuse_head()

    def _refuse_head(self) -> None:
        # A lingering close, as nginx does: answer, stop writing, and drop what still arrives for a moment
        # before closing. Closing at once, with the client's bytes unread, would make the kernel reset the
        # connection, and the client would lose the answer.
        self.transport.write(_HEAD_TOO_LARGE)
        self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def on_headers_complete(self) -> None:
        """The head is whole: what follows is the body, which the app bounds itself."""
        self._in_head = False
        self._heads += 1
        if not self._take_pixel():
            super().on_headers_complete()

    # The open pixel, answered here (see the module doc): the answer of the request being received, sent when it
    # is whole; and the answers built (for GET and for HEAD) with the server's default headers of the moment.
    _pixel: bytes | None = None
    _pixel_built: tuple[object, object, bytes, bytes] | None = None

    def _take_pixel(self) -> bool:
        """Whether the request is the open pixel's, taken here: a keep-alive HTTP/1.1 GET or HEAD of a plain path
        (no query, nothing percent-encoded), no earlier request unanswered on the connection. The open is recorded
        now, and the answer sent by :meth:`on_message_complete`. Anything else goes to the app."""
        tracking = self._tracking
        parser = self.parser
        method = parser.get_method()
        url: bytes = self.url
        if (
            tracking is None
            or method not in _PIXEL_METHODS
            or not url.startswith(b"/")
            or b"?" in url
            or b"%" in url
            or b"#" in url
            or not url.isascii()
            or self.root_path
            or self.limit_concurrency is not None
            or parser.get_http_version() != "1.1"
            or not parser.should_keep_alive()
            or parser.should_upgrade()
            or (self.cycle is not None and not self.cycle.response_complete)
            or self.flow.write_paused  # a client not reading its answers: the app's way waits for it
        ):
            return False
        self.scope["method"] = method.decode("ascii")
        headers = tracking.pixel_now(url.decode("ascii"), cast(dict[str, Any], self.scope))
        if headers is None:
            return False
        self._pixel = self._pixel_answer(headers, head=method == b"HEAD")
        return True

    def _pixel_answer(self, headers: RawHeaders, *, head: bool) -> bytes:
        """The bytes uvicorn would write for the pixel's answer: its status line, the server's default headers (the
        date: rebuilt when uvicorn renews them, each second), ``headers`` and, but for HEAD, the GIF."""
        defaults = self.server_state.default_headers
        built = self._pixel_built
        if built is None or built[0] is not defaults or built[1] is not headers:
            lines = b"".join(name + b": " + value + b"\r\n" for name, value in [*defaults, *headers])
            answer = b"HTTP/1.1 200 OK\r\n" + lines + b"\r\n"
            built = self._pixel_built = (defaults, headers, answer + PIXEL, answer)
        return built[3] if head else built[2]

    # The keep-alive timeout (uvicorn's: a connection idle that long after an answer is closed), kept with one timer
    # a connection, not one a request (see the module doc): when the connection went idle, None while busy.
    _idle_since: float | None = None

    def _unset_keepalive_if_required(self) -> None:
        """Data arrived: the connection is busy (its timer, if armed, finds it so and lapses)."""
        self._idle_since = None

    def on_response_complete(self) -> None:
        """uvicorn's, but for the keep-alive timer: the connection is idle from now, and a timer armed if none is."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        self._idle_since = self.loop.time()
        if self.timeout_keep_alive_task is None:
            self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self._keep_alive_due)

    def _keep_alive_due(self) -> None:
        # Busy: the next answer arms the timer again. Idle, but not for the whole timeout: wait for the rest.
        self.timeout_keep_alive_task = None
        if self._idle_since is None:
            return
        rest = self._idle_since + self.timeout_keep_alive - self.loop.time()
        if rest > 0:
            self.timeout_keep_alive_task = self.loop.call_later(rest, self._keep_alive_due)
        else:
            self.timeout_keep_alive_handler()

    def connection_lost(self, exc: Exception | None) -> None:
        """uvicorn's, and the keep-alive timer stopped."""
        super().connection_lost(exc)
        if self.timeout_keep_alive_task is not None:
            self.timeout_keep_alive_task.cancel()
            self.timeout_keep_alive_task = None

    def on_body(self, body: bytes) -> None:
        """A body of a pixel's request is ignored (as the app ignores it); others go to the app."""
        if self._pixel is None:
            super().on_body(body)

    def on_message_complete(self) -> None:
        """The next bytes on the connection are the next request's head."""
        self._in_head = True
        self._head_bytes = 0
        if self._pixel is not None:  # taken by _take_pixel: answered here, as uvicorn ends a response
            answer, self._pixel = self._pixel, None
            self._coalescing.write_now(answer)
            self.on_response_complete()
            return
        super().on_message_complete()


class WebServer:
    """The web app of ``context`` on a uvicorn server listening on ``host``:``port`` (default: ``web.host`` and
    ``web.port``; port 0 takes any free port). Use it as a context manager, or :meth:`close` it, so that the
    socket is closed if :meth:`serve` never runs."""

    def __init__(self, context: AppContext, *, host: str | None = None, port: int | None = None) -> None:
        settings = context.settings.web
        # The database is checked first: a server never listens on one it cannot use.
        self.app = create_app(context)
        """The Starlette app served."""
        self._socket = listen(settings.host if host is None else host, settings.port if port is None else port)
        config = uvicorn.Config(
            self.app,
            lifespan="on",
            ws="none",
            http=_HttpProtocol,
            access_log=False,
            server_header=False,
            # X-Forwarded-For only from the proxies named in web.trusted_proxies: uvicorn's default would believe
            # it from anyone on 127.0.0.1, who could then claim any address.
            proxy_headers=bool(settings.trusted_proxies),
            forwarded_allow_ips=list(settings.trusted_proxies),
            log_config=None,  # the command that runs the server decides where its log lines go
            timeout_graceful_shutdown=GRACE_SECONDS,
        )
        self._server = _Server(config)
        address, bound_port = self._socket.getsockname()[:2]
        shown = f"[{address}]" if self._socket.family == socket.AF_INET6 else address
        self.url = f"http://{shown}:{bound_port}"
        """The URL the server listens on: ``http://127.0.0.1:8080``, ``http://[::1]:41231`` (the port taken)."""

    @property
    def started(self) -> bool:
        """Whether :meth:`serve` has begun answering requests."""
        return self._server.started

    async def serve(self) -> None:
        """Serve until :meth:`request_stop`, then return once the requests in progress are done."""
        try:
            await self._server.serve(sockets=[self._socket])
        except SystemExit:
            # uvicorn's way of saying the app's startup failed (it has logged why).
            raise WebServerError("the web app failed to start (see the log above)") from None
        finally:
            self._socket.close()

    def request_stop(self, *, at_once: bool = False) -> None:
        """Stop serving: gracefully, or ``at_once`` without waiting for the requests in progress. Safe to call more
        than once, and from a signal handler."""
        self._server.should_exit = True
        if at_once:
            self._server.force_exit = True

    def run(self, ready: Callable[[], object] | None = None) -> None:
        """Serve in an event loop of its own (uvloop where installed) until SIGTERM or SIGINT; a second signal
        stops at once. Returns normally either way (``campaign web`` exits 0). ``ready`` is called once the
        signals are handled (a signal before would kill the process): the moment to say the server is up."""
        # What start-up made (modules, the schema, templates: most of the heap) stays for the process's life: frozen,
        # the garbage collector no longer walks it in each full collection, pauses that made the pixel's p99 latency
        # 105 ms instead of 17 (bench/tracking.py).
        gc.collect()
        gc.freeze()
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(self._serve_until_signalled(ready))

    async def _serve_until_signalled(self, ready: Callable[[], object] | None) -> None:
        loop = asyncio.get_running_loop()
        signals = (signal.SIGTERM, signal.SIGINT)
        for signum in signals:
            loop.add_signal_handler(signum, self._signalled)
        try:
            if ready is not None:
                ready()
            await self.serve()
        finally:
            for signum in signals:
                loop.remove_signal_handler(signum)

    def _signalled(self) -> None:
        self.request_stop(at_once=self._server.should_exit)

    def close(self) -> None:
        """Close the socket (when :meth:`serve` never ran; closing twice is harmless)."""
        self._socket.close()

    def __enter__(self) -> WebServer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket listening on ``host``:``port`` (port 0: any free port), or a one-line :class:`WebServerError`
    saying which setting to change."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise WebServerError(f"web.host: cannot listen on {where}: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    try:
        # A restarted server may listen again at once, while the old connections wait out TIME_WAIT (this never
        # lets two servers share the port: that would be SO_REUSEPORT).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(_BACKLOG)
    except OSError as exc:
        sock.close()
        raise WebServerError(f"cannot listen on {where}: {_listen_advice(exc)}") from None
    return sock


def _listen_advice(exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    if exc.errno == errno.EADDRINUSE:
        return f"{reason}; choose another web.port (or --port), or stop what uses it"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{reason}; web.host (or --host) must be an address of this machine"
    if exc.errno == errno.EACCES:
        return f"{reason}; ports below 1024 need privileges: choose web.port (or --port) 1024 or above"
    return reason


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is installed (not on Windows), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
