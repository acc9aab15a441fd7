"""The HTTP protocol the web server speaks: uvicorn's httptools protocol, with a bound on request heads and the
open pixel answered without the app.

Speed (``bench/tracking.py``, server CPU time a request, the pixel without writes): uvicorn writes a response's
head when the app starts it and its body when the app sends it, two system calls and two TCP segments for the
pixel's 43 bytes; :class:`CoalescingTransport` sends what one turn of the event loop wrote in one (44 → 35 µs
a request). (Start-up's objects are frozen out of the garbage collector's full collections:
:meth:`campaign.web.server.WebServer.run`.)
The open pixel, the busiest route, is answered by the protocol itself, without the app: a keep-alive HTTP/1.1
GET or HEAD of its path, when no earlier request of the connection is unanswered, has its open recorded as soon
as its head is parsed (:meth:`~campaign.web.tracking.TrackingEndpoints.pixel_now`, the app's own endpoints,
``app.state.tracking``) and gets the bytes uvicorn would have written (status line, date, the pixel's headers, the
GIF), built once a second. No task, ASGI messages, Starlette or middleware a request: 66 → 49 µs of server CPU a
pixel request, writes included (interleaved runs on a loaded machine). A click is taken the same way when its
token names its wave and the wave's destination is in memory
(:meth:`~campaign.web.tracking.TrackingEndpoints.click_now`): the 302's bytes, built once per destination; the
first click on each destination goes to the app, which looks it up. Anything else (a query string, a
percent-encoded path, HTTP/1.0, ``Connection: close``, pipelined behind a slower request) goes to the app, which
answers it the same way. That answer is written at once (:meth:`CoalescingTransport.write_now`: no callback at the
end of the turn, 1.5 µs), and the keep-alive timeout (uvicorn's 5 s from a connection's last answer) is one timer
a connection, armed again for the rest when it finds the connection was busy meanwhile, not one timer set and
cancelled a request (2.7 µs in uvloop).

A request that arrives whole in one read, while the parser is between requests (nothing of the next request fed
to it yet, nothing before it unanswered), and is a plain GET or HEAD of a pixel or a known click (a path of
unreserved characters, HTTP/1.1, headers of token names and values of visible ASCII, blanks and tabs, none of
``Content-Length``, ``Transfer-Encoding``, ``Connection``, ``Upgrade``, ``Expect``) is parsed here by one regular
expression (:data:`_SIMPLE_HEAD`) instead of httptools, whose callbacks call Python for the request, its URL and
each header. It is taken exactly as :meth:`HttpProtocol._take_tracking` takes it from httptools: the same
headers (names in lower case, a value's leading blanks dropped and its trailing ones kept, as httptools does),
the same recording and answer. Anything else (a partial or pipelined read, a body, obs-text or a control
character, HTTP/1.0, a query, a path or token the endpoints do not take) is fed to httptools exactly as before,
which accepts or refuses it as it always did. In-process, 30,000 requests on 50 connections with a transport
that only counts writes (server CPU of the protocol, recording included, without system calls or the writer):
8.7 → 7.7 µs a pixel request, 9.7 → 8.6 µs a click.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from campaign.web.tracking import PIXEL, RawHeaders, TrackingEndpoints

MAX_HEAD_BYTES = 32 * 1024
"""The longest request line and headers taken (nginx's default buffers hold as much); longer is a 431."""
LINGER_SECONDS = 2.0
"""After refusing a head, how long what the client still sends is read and dropped before the connection closes."""
HEAD_TIMEOUT_SECONDS = 15.0
"""How long a request's head (request line and headers) may take to arrive, from its first byte, or from the
connection's start for its first request (nginx's ``client_header_timeout``, whose default is 60 s); then 408 and
the connection closes. A client sends a head in one packet: only a stalled or malicious one (a slowloris) is cut."""
_HEAD_TOO_LARGE_BODY = b"431 Request Header Fields Too Large\n"
_HEAD_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_HEAD_TOO_LARGE_BODY), _HEAD_TOO_LARGE_BODY)
)
BODY_IDLE_SECONDS = 30.0
"""How long a request's body may go without a byte arriving (nginx's ``client_body_timeout``, 60 s by default); then
408, and the connection closes. A slow upload that keeps sending is never cut."""
_TIMED_OUT_BODY = b"408 Request Timeout\n"
_TIMED_OUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_TIMED_OUT_BODY), _TIMED_OUT_BODY)
)
_PIXEL_METHODS = (b"GET", b"HEAD")
# A whole simple head, as a client fetching an image or following a link sends it: GET or HEAD of a plain path (no
# query, nothing percent-encoded: what _take_tracking takes), HTTP/1.1, headers of token names and values of
# visible ASCII, spaces and tabs, which httptools takes as they are (it drops a value's leading blanks, not its
# trailing ones). Anything else (obs-text, control characters, folded lines, a blank before the colon) is left to
# httptools, which accepts or refuses it as it does today.
_SIMPLE_HEAD = re.compile(
    rb"(GET|HEAD) (/[A-Za-z0-9._~!$&'()*+,;=:@/-]*) HTTP/1\.1\r\n"
    rb"((?:[!#$%&'*+.^_`|~0-9A-Za-z-]+:[\t -~]*\r\n)*)\r\n"
)
_SIMPLE_HEADER = re.compile(rb"([^:]+):[ \t]*([^\r]*)\r\n")
# Headers that make a request other than a plain keep-alive fetch (a body, the end of the connection, an upgrade,
# an interim answer): httptools and the usual way handle those.
_UNUSUAL_HEADERS = frozenset((b"content-length", b"transfer-encoding", b"connection", b"upgrade", b"expect"))
_SIMPLE_HEAD_BYTES = 8 * 1024  # longer heads take the usual way (a fetch's head is a few hundred bytes)
_STATUS_LINES = {200: b"HTTP/1.1 200 OK\r\n", 302: b"HTTP/1.1 302 Found\r\n"}


class CoalescingTransport:
    """A connection's transport whose writes of one turn of the event loop leave together, in one system call (see
    the module doc): each write is held until the end of the turn (``call_soon``), or until the transport is
    closed. Everything else is the transport's own."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []
        self._ended = False  # write_eof was called: nothing more may be written

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
        if not self._transport.is_closing() and not self._ended:
            self._transport.write(data)

    def get_write_buffer_size(self) -> int:
        """What the transport holds, and what this one does."""
        return self._transport.get_write_buffer_size() + sum(len(data) for data in self._held)

    def write_eof(self) -> None:
        """Send what is held, then end the writing side: later writes (an answer the app still sends) are dropped."""
        self._flush()
        self._ended = True
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
        if not self._transport.is_closing() and not self._ended:  # the peer went away, or writing ended meanwhile
            self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol writing through a :class:`CoalescingTransport`, and refusing a request head
    (request line and headers) longer than :data:`MAX_HEAD_BYTES` with a 431.

    httptools puts no bound on a head: it gathers each header whole before handing it on, so one client sending
    an endless header would hold as much memory as it sends. The bytes are counted as they arrive, before the
    parser sees them; and a head that begins in the same read as the end of the body before it (which the parser
    is fed whole) is counted as the parser hands its URL and headers on.

    Nor does uvicorn put a bound on the time a head takes: a connection that sends nothing, or a head a byte at a
    time, was held open for ever (a slowloris keeps a server's connections so); nor a body that stops arriving. A
    head has :data:`HEAD_TIMEOUT_SECONDS` to arrive, and a body may go :data:`BODY_IDLE_SECONDS` without a byte;
    then 408, and the connection closes.
    """

    _head_bytes = 0
    _in_head = True
    _heads = 0  # heads received whole on this connection
    _between = True  # the parser is between requests: no byte of the next one fed to it yet
    _simple = False  # whether the pixel and clicks may be answered here at all (see connection_made)
    _refused = False  # a head was refused (431): the connection is closing, what arrives is dropped
    _parsed_head = 0  # bytes of the URL and headers the parser handed on for the head being received
    _head_too_large = False  # the parser's hand-over showed a head past the limit (see send_400_response)
    # When the head being received began (its first byte, or the connection's start for its first request),
    # None when none is: the timer below closes a connection whose head takes too long.
    _head_began: float | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """The connection, its writes held to the end of each turn of the loop."""
        self._coalescing = CoalescingTransport(transport, self.loop)
        self._raw = transport  # asked directly whether it is closing, not through the wrapper's __getattr__
        # The pixel is answered here only when uvicorn hands requests to the app as they are: not when it wraps the
        # app (trusted proxies' forwarded addresses, trace logging), which must see them.
        config = self.config
        self._tracking: TrackingEndpoints | None = (
            getattr(getattr(config.app, "state", None), "tracking", None) if config.loaded_app is config.app else None
        )
        self._simple = self._tracking is not None and not self.root_path and self.limit_concurrency is None
        super().connection_made(cast(asyncio.Transport, self._coalescing))
        # Its first head is due from now: a connection that sends nothing is closed too. The timer is first due as
        # an idle connection's would be: one answered by then is judged as idle (no timer armed again at its first
        # answer); one still waiting for its head has the rest of the head timeout.
        self._head_began = self.loop.time()
        self.timeout_keep_alive_task = self.loop.call_later(
            min(HEAD_TIMEOUT_SECONDS, self.timeout_keep_alive), self._keep_alive_due
        )

    def data_received(self, data: bytes) -> None:
        """Answer a whole simple pixel or click request here (:meth:`_answer_simple`), or feed the parser, unless
        the head being received has grown past the limit."""
        if self._refused:
            return  # what the client still sends after a refused head is dropped, unparsed, until the close
        if (
            self._between
            and self._simple
            and data.endswith(b"\r\n\r\n")
            and len(data) <= _SIMPLE_HEAD_BYTES
            and self._answer_simple(data)
        ):
            return
        if not self._in_head:
            self._body_data_at = self.loop.time()  # the body progresses (see _keep_alive_due)
            super().data_received(data)
            return
        room = MAX_HEAD_BYTES - self._head_bytes
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
            self._refuse_head()

    def _refuse_head(self) -> None:
        # A lingering close, as nginx does: answer, stop writing, and drop what still arrives for a moment
        # before closing. Closing at once, with the client's bytes unread, would make the kernel reset the
        # connection, and the client would lose the answer. Once: what arrives afterwards is dropped unparsed.
        if self._refused:
            return
        self._refused = True
        self._head_began = None
        self.transport.write(_HEAD_TOO_LARGE)
        self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def _answer_simple(self, data: bytes) -> bool:
        """Answer ``data`` here when it is one whole simple head (see :data:`_SIMPLE_HEAD`), nothing before it
        unanswered: the request :meth:`_take_tracking` would take, parsed with a regular expression instead of
        httptools' callbacks a header (see the module doc). False, with nothing done, for anything else: the
        parser then gets ``data`` as it would have."""
        found = _SIMPLE_HEAD.fullmatch(data)
        if (
            found is None
            or (self.cycle is not None and not self.cycle.response_complete)
            or self.pipeline
            or self.flow.write_paused
            or self._raw.is_closing()
        ):
            return False
        method, url, block = found.groups()
        headers = [(name.lower(), value) for name, value in _SIMPLE_HEADER.findall(block)]
        if not _UNUSUAL_HEADERS.isdisjoint([name for name, _ in headers]):
            return False
        tracking = cast(TrackingEndpoints, self._tracking)
        path = url.decode("ascii")
        scope: dict[str, Any] = {"method": method.decode("ascii"), "headers": headers, "client": self.client}
        head = method == b"HEAD"
        if (answer_headers := tracking.pixel_now(path, scope)) is not None:
            answer = self._built_answer(200, answer_headers, PIXEL, head=head)
        elif (answer_headers := tracking.click_now(path, scope)) is not None:
            answer = self._built_answer(302, answer_headers, b"", head=head)
        else:
            return False
        self._heads += 1
        self._head_began = None
        self._coalescing.write_now(answer)
        self.on_response_complete()
        return True

    def on_message_begin(self) -> None:
        """A request's first bytes reached the parser: its head is due within the timeout."""
        self._between = False
        self._parsed_head = 0
        if self._head_began is None:
            self._head_began = self.loop.time()
            if self.timeout_keep_alive_task is None:
                self.timeout_keep_alive_task = self.loop.call_later(HEAD_TIMEOUT_SECONDS, self._keep_alive_due)
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        """A piece of the request target, counted towards the head's limit."""
        self._count_parsed(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        """A header, counted towards the head's limit (with its colon and line end: the least it took)."""
        self._count_parsed(len(name) + len(value) + 3)
        super().on_header(name, value)

    def _count_parsed(self, size: int) -> None:
        # Bytes fed while a body was being read are not counted as they arrive (see data_received): a head in the
        # same read as the end of that body is bounded here. Raised in a parser callback, this ends the parsing,
        # and uvicorn answers what it takes for a malformed request (send_400_response, which says 431 instead).
        self._parsed_head += size
        if self._parsed_head > MAX_HEAD_BYTES:
            self._head_too_large = True
            raise ValueError("request head too large")

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request the parser refused: a 431 for a head past the limit (see
        :meth:`_count_parsed`)."""
        if self._head_too_large:
            self._refuse_head()
            return
        super().send_400_response(msg)

    def on_headers_complete(self) -> None:
        """The head is whole: what follows is the body, which the app bounds itself (its time: see
        :data:`BODY_IDLE_SECONDS`)."""
        self._in_head = False
        self._heads += 1
        self._head_began = None
        self._body_data_at = self.loop.time()
        if not self._take_tracking():
            super().on_headers_complete()

    # The open pixel and known clicks, answered here (see the module doc): the answer of the request being
    # received, sent when it is whole; and the answers built (for GET and for HEAD) with the server's default
    # headers of the moment, by the identity of the endpoint's headers (kept alive with them).
    _answer: bytes | None = None
    _built_defaults: object = None
    _built: dict[int, tuple[RawHeaders, bytes, bytes]] | None = None

    def _take_tracking(self) -> bool:
        """Whether the request is the open pixel's or a known click's, taken here: a keep-alive HTTP/1.1 GET or
        HEAD of a plain path (no query, nothing percent-encoded), no earlier request unanswered on the connection.
        The hit is recorded now, and the answer sent by :meth:`on_message_complete`. Anything else goes to the
        app."""
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
        path = url.decode("ascii")
        scope = cast(dict[str, Any], self.scope)
        head = method == b"HEAD"
        if (headers := tracking.pixel_now(path, scope)) is not None:
            self._answer = self._built_answer(200, headers, PIXEL, head=head)
        elif (headers := tracking.click_now(path, scope)) is not None:
            self._answer = self._built_answer(302, headers, b"", head=head)
        else:
            return False
        return True

    def _built_answer(self, status: int, headers: RawHeaders, body: bytes, *, head: bool) -> bytes:
        """The bytes uvicorn would write for an answer: its status line, the server's default headers (the date:
        rebuilt when uvicorn renews them, each second), ``headers`` and, but for HEAD, ``body``."""
        defaults = self.server_state.default_headers
        if self._built is None or self._built_defaults is not defaults:
            self._built, self._built_defaults = {}, defaults
        built = self._built.get(id(headers))
        if built is None:
            lines = b"".join(name + b": " + value + b"\r\n" for name, value in [*defaults, *headers])
            answer = _STATUS_LINES[status] + lines + b"\r\n"
            built = self._built[id(headers)] = (headers, answer + body, answer)
        return built[2] if head else built[1]

    # The keep-alive timeout (uvicorn's: a connection idle that long after an answer is closed), kept with one timer
    # a connection, not one a request (see the module doc): when the connection went idle, None while busy. The same
    # timer keeps the head timeout (_head_began).
    _idle_since: float | None = None
    _body_data_at = 0.0  # when the body being received last progressed (the loop's time)

    def _unset_keepalive_if_required(self) -> None:
        """Data arrived: the connection is busy (its timer, if armed, finds it so and lapses)."""
        self._idle_since = None

    def on_response_complete(self) -> None:
        """uvicorn's, but for the keep-alive timer: the connection is idle from now, and a timer armed if none is."""
        self.server_state.total_requests += 1
        if self._raw.is_closing():
            return
        if self._head_began is not None:  # a pipelined head waited, unread, while this was answered: from now
            self._head_began = self.loop.time()
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            if self.timeout_keep_alive_task is None:  # for the pipelined request's body (see _keep_alive_due)
                self.timeout_keep_alive_task = self.loop.call_later(BODY_IDLE_SECONDS, self._keep_alive_due)
            return
        self._idle_since = self.loop.time()
        if self.timeout_keep_alive_task is None:
            self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self._keep_alive_due)

    def _keep_alive_due(self) -> None:
        # Closing: nothing. A request being answered: its answer arms the timer again, and while its body is being
        # received the body must keep arriving. A head being received (not one waiting, unread, behind a request
        # being answered): closed once it has taken the head timeout. Idle: closed after the keep-alive timeout.
        # Otherwise the timer waits for the rest.
        self.timeout_keep_alive_task = None
        if self._refused:
            return
        if (cycle := self.cycle) is not None and not cycle.response_complete:
            if cycle.more_body and not self._in_head:
                self._wait_or_time_out(self._body_data_at, BODY_IDLE_SECONDS)
            return
        if self._head_began is not None:
            self._wait_or_time_out(self._head_began, HEAD_TIMEOUT_SECONDS)
            return
        if self._idle_since is None:
            return
        rest = self._idle_since + self.timeout_keep_alive - self.loop.time()
        if rest > 0:
            self.timeout_keep_alive_task = self.loop.call_later(rest, self._keep_alive_due)
        else:
            self.timeout_keep_alive_handler()

    def _wait_or_time_out(self, since: float, seconds: float) -> None:
        """The timer armed for the rest of ``seconds`` from ``since``; past them, 408 and the connection closes."""
        rest = since + seconds - self.loop.time()
        if rest > 0:
            self.timeout_keep_alive_task = self.loop.call_later(rest, self._keep_alive_due)
        elif not self._raw.is_closing():
            self.transport.write(_TIMED_OUT)
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        """uvicorn's, and the keep-alive timer stopped."""
        super().connection_lost(exc)
        if self.timeout_keep_alive_task is not None:
            self.timeout_keep_alive_task.cancel()
            self.timeout_keep_alive_task = None

    def on_body(self, body: bytes) -> None:
        """A body of a request answered here is ignored (as the app ignores it); others go to the app."""
        if self._answer is None:
            super().on_body(body)

    def on_message_complete(self) -> None:
        """The next bytes on the connection are the next request's head."""
        self._in_head = True
        self._between = True
        self._head_bytes = 0
        if self._answer is not None:  # taken by _take_tracking: answered here, as uvicorn ends a response
            answer, self._answer = self._answer, None
            self._coalescing.write_now(answer)
            self.on_response_complete()
            return
        super().on_message_complete()
