"""Requests nobody well-behaved sends, through real sockets: slow ones that never finish, garbage that is not
HTTP, and oversized headers. The server must answer everyone else at once and keep serving, on each backend (its
``/healthz`` asks the database)."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, closing
from pathlib import Path

import pytest

from campaign.store.engine import Database
from campaign.web import protocol
from campaign.web.protocol import MAX_HEAD_BYTES
from tests.test_web import Running, config_for, running

SLOW_CLIENTS = 50


@pytest.fixture
def web(db: Database, tmp_path: Path) -> Iterator[Running]:
    """The web app serving on 127.0.0.1, any free port, on each backend."""
    with running(config_for(tmp_path, db.url.render_as_string(hide_password=False))) as web:
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
