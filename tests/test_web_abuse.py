"""Requests nobody well-behaved sends, through real sockets: slow ones that never finish, garbage that is not
HTTP, and oversized headers. The server must answer everyone else at once and keep serving, on each backend (its
``/healthz`` asks the database)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, closing
from pathlib import Path

import pytest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from campaign.config import load_settings
from campaign.services.context import AppContext
from campaign.store.engine import Database
from campaign.web import protocol
from campaign.web.protocol import MAX_HEAD_BYTES
from campaign.web.server import WebServer
from tests.test_web import Running, config_for, running

SLOW_CLIENTS = 50


SLOW_SECONDS = 2.0


@pytest.fixture
def web(db: Database, tmp_path: Path) -> Iterator[Running]:
    """The web app serving on 127.0.0.1, any free port, on each backend; with a route of the test's own, ``/slow``,
    answered after :data:`SLOW_SECONDS`."""
    config = config_for(tmp_path, db.url.render_as_string(hide_password=False))
    server = WebServer(AppContext(settings_given=load_settings(config, environ={})), host="127.0.0.1", port=0)

    async def slow(request: Request) -> Response:
        await asyncio.sleep(SLOW_SECONDS)
        return PlainTextResponse("slow\n")

    server.app.router.routes.append(Route("/slow", slow))
    with running(config, server) as web:
        yield web


def connect(web: Running) -> socket.socket:
    return socket.create_connection((web.host, web.port), timeout=5)


def read_reply(sock: socket.socket) -> bytes:
    """What the server sends until it closes the connection or goes quiet for a second."""
    sock.settimeout(1)
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except TimeoutError:
        pass
    return b"".join(chunks)


@pytest.fixture
def slow_clients(web: Running) -> Iterator[list[socket.socket]]:
    """Connections that each started a request and then stopped sending (a slowloris)."""
    with ExitStack() as stack:
        socks = []
        for i in range(SLOW_CLIENTS):
            sock = stack.enter_context(closing(connect(web)))
            # Half send part of a request line, half the whole line and part of the headers.
            sock.sendall(b"GET /o/" if i % 2 else b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Ag")
            socks.append(sock)
        yield socks


def test_clients_that_never_finish_their_request_do_not_hold_up_anyone_else(
    web: Running, slow_clients: list[socket.socket]
) -> None:
    started = time.monotonic()
    for _ in range(20):
        reply = web.get("/healthz")
        assert reply.status == 200
    # Twenty requests behind fifty stuck connections: each answered as fast as alone (well under a second in all).
    assert time.monotonic() - started < 2
    # The stuck clients were not answered with anything: the server waits for the rest of their requests.
    slow_clients[0].setblocking(False)
    with pytest.raises(BlockingIOError):
        slow_clients[0].recv(1)


def test_a_body_trickled_one_byte_at_a_time_holds_up_nobody(web: Running) -> None:
    with closing(connect(web)) as slow:
        slow.sendall(
            b"POST /u/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 26\r\n\r\nList-"
        )
        started = time.monotonic()
        assert web.get("/").status == 200
        assert time.monotonic() - started < 1
        # The slow request is still answered when its body is complete (a bad token: 404, nothing done).
        for byte in b"Unsubscribe=One-Click":
            slow.sendall(bytes([byte]))
        assert read_reply(slow).startswith(b"HTTP/1.1 404 ")


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x00\xff\xfe GARBAGE \r\n\r\n",
        b"GET /\x00 HTTP/1.1\r\n\r\n",
        b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header Line Without Colon\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello to the plain HTTP port
    ],
)
def test_garbage_is_refused_without_a_traceback_and_the_server_goes_on(web: Running, garbage: bytes) -> None:
    with closing(connect(web)) as sock:
        sock.sendall(garbage)
        reply = read_reply(sock)
    # Refused with a 400 or the connection closed; never a page of ours (a 200) nor a server error.
    assert reply == b"" or reply.startswith(b"HTTP/1.1 400 "), reply[:200]
    assert b"Traceback" not in reply
    assert web.get("/").status == 200


def test_headers_larger_than_the_server_takes_are_refused_and_the_server_goes_on(web: Running) -> None:
    with closing(connect(web)) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Filler: " + b"a" * (1 << 20) + b"\r\n\r\n")
        reply = read_reply(sock)
    # Refused once the head passes the limit, without waiting for (or keeping) the rest of it.
    assert reply.startswith(b"HTTP/1.1 431 "), reply[:200]
    assert web.get("/").status == 200


def test_a_head_just_under_the_limit_is_served(web: Running) -> None:
    with closing(connect(web)) as sock:
        head = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Filler: "
        sock.sendall(head + b"a" * (MAX_HEAD_BYTES - len(head) - 4) + b"\r\n\r\n")
        assert read_reply(sock).startswith(b"HTTP/1.1 200 ")


def test_a_head_after_a_body_in_the_same_packet_is_held_to_the_limit_too(web: Running) -> None:
    # The parser is fed a body's last bytes and what follows them at once: a head there was not counted as it
    # arrived (a review sent 60 KB so and got a 200).
    with closing(connect(web)) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n")
        big = b"GET / HTTP/1.1\r\nHost: x\r\nX-Filler: " + b"a" * MAX_HEAD_BYTES + b"\r\n\r\n"
        sock.sendall(b"abcde" + big)
        reply = read_reply(sock)
    # The second request refused, never served (the first one's answer may or may not precede the refusal, which
    # closes the connection).
    assert b"HTTP/1.1 431 " in reply, reply[:300]
    assert reply.count(b"HTTP/1.1 200 ") <= 1, reply[:300]
    assert web.get("/").status == 200


def test_a_connection_that_sends_nothing_or_a_head_a_byte_at_a_time_is_closed_with_408(
    web: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A slowloris held connections for ever (a review kept 237 of 256 file descriptors so): a head now has
    # HEAD_TIMEOUT_SECONDS (15 s; 1 s here) from its connection's start or its first byte.
    monkeypatch.setattr(protocol, "HEAD_TIMEOUT_SECONDS", 1.0)
    with closing(connect(web)) as silent, closing(connect(web)) as trickling:
        started = time.monotonic()
        trickling.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        trickling.settimeout(0.25)
        reply = b""
        while not reply and time.monotonic() - started < 5:
            trickling.sendall(b"a")
            with contextlib.suppress(TimeoutError):
                reply = trickling.recv(65536)
        assert reply.startswith(b"HTTP/1.1 408 "), reply[:200]
        assert 0.9 < time.monotonic() - started < 4
        assert read_reply(silent).startswith(b"HTTP/1.1 408 ")
        assert silent.recv(1) == b""  # and closed
    # Everyone else is served as before, on connections that keep sending whole requests.
    with closing(connect(web)) as busy:
        for _ in range(3):
            busy.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert busy.recv(65536).startswith(b"HTTP/1.1 200 ")
            time.sleep(0.5)


@pytest.mark.parametrize("path", ["/login/", "/healthz/", "/dashboard/", "/c/x/", "/u/x/"])
def test_a_path_with_a_slash_added_is_not_redirected_to_the_host_the_request_names(web: Running, path: str) -> None:
    # Starlette redirected /login/ to http://{Host}/login: a cache or proxy passing Host on would serve that.
    with closing(connect(web)) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: evil.example.com\r\nConnection: close\r\n\r\n".encode())
        reply = read_reply(sock)
    assert reply.startswith(b"HTTP/1.1 404 "), reply[:200]
    assert b"evil.example.com" not in reply


def test_a_pipelined_head_waiting_behind_a_slow_answer_is_not_timed_out(
    web: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A review's case: a slow request, a whole one and the start of a third in one send, the rest of it just
    # after. The third head waits unread (uvicorn stops reading behind pipelined requests): it is not being
    # received, and its time starts when reading does. The code before answered 408 first and closed.
    monkeypatch.setattr(protocol, "HEAD_TIMEOUT_SECONDS", SLOW_SECONDS / 2)
    with closing(connect(web)) as sock:
        sock.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\n")
        time.sleep(0.2)
        sock.sendall(b"Host: x\r\nConnection: close\r\n\r\n")
        sock.settimeout(SLOW_SECONDS * 5)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert reply.count(b"HTTP/1.1 200 ") == 3, reply[:500]
    assert b"408" not in reply


def test_what_follows_a_refused_head_is_dropped_quietly(web: Running, caplog: pytest.LogCaptureFixture) -> None:
    # A body's end and the start of a head past the limit in one read, its rest in the next ones: refused once
    # (431), the rest dropped. The code before fed the rest to the failed parser: a second refusal written after
    # the end of writing, an ERROR logged by the event loop and the connection reset.
    with caplog.at_level(logging.ERROR), closing(connect(web)) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n")
        # The header whole in that read, so the parser hands it on (and is refused there); more headers after.
        sock.sendall(b"abcde" + b"GET / HTTP/1.1\r\nHost: x\r\nX-Filler: " + b"a" * (MAX_HEAD_BYTES + 100) + b"\r\n")
        for _ in range(5):
            time.sleep(0.05)
            with contextlib.suppress(OSError):
                sock.sendall(b"X-More: " + b"a" * 1_000 + b"\r\n")
        with contextlib.suppress(OSError):
            sock.sendall(b"\r\n\r\n")
        reply = read_reply(sock)
    assert b"HTTP/1.1 431 " in reply, reply[:300]
    assert web.get("/").status == 200
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []


def test_a_head_under_the_limit_of_headers_without_blanks_is_served(web: Running) -> None:
    # "Name:value", no blank after the colon, as HTTP allows: counted as the bytes they are, not one more each.
    head = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    line = b"X-A:" + b"a" * 20 + b"\r\n"
    lines = (MAX_HEAD_BYTES - len(head) - 2) // len(line)
    with closing(connect(web)) as sock:
        sock.sendall(head + line * lines + b"\r\n")
        assert read_reply(sock).startswith(b"HTTP/1.1 200 ")


def test_a_body_that_stops_arriving_is_closed_with_408_but_a_slow_steady_one_is_served(
    web: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A body announced and never sent held its connection until the client went (a review's finding). A body may go
    # BODY_IDLE_SECONDS (30 s; 1 s here) without a byte; one that keeps coming, however slowly, is read whole. The
    # login form reads its body before anything else.
    monkeypatch.setattr(protocol, "HEAD_TIMEOUT_SECONDS", 1.0)
    monkeypatch.setattr(protocol, "BODY_IDLE_SECONDS", 1.0)
    body = b"name=ann&password=not+the+passphrase"
    head = (
        b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    )
    with closing(connect(web)) as stalled, closing(connect(web)) as steady:
        started = time.monotonic()
        stalled.sendall(head + body[:5])
        steady.sendall(head)
        for n in range(0, len(body), 2):
            time.sleep(0.1)  # 1.8 s in all, never a second without a byte
            steady.sendall(body[n : n + 2])
        # Read whole, then answered (the form's token is missing: refused, as any such post is).
        assert read_reply(steady).startswith(b"HTTP/1.1 403 ")
        stalled.settimeout(5)
        assert stalled.recv(65536).startswith(b"HTTP/1.1 408 ")
        assert time.monotonic() - started < 6


def test_a_body_cut_short_by_its_client_logs_no_error(web: Running, caplog: pytest.LogCaptureFixture) -> None:
    # A POST that announces more body than it sends, then closes: each logged an ERROR and a 50-line traceback
    # (an attacker review), which anyone could repeat to flood the log.
    with caplog.at_level(logging.DEBUG):
        for _ in range(3):
            with closing(connect(web)) as sock:
                sock.sendall(
                    b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                    b"Content-Length: 1000\r\n\r\nname=ann&password="
                )
                time.sleep(0.05)
        assert web.get("/").status == 200
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []
