"""A lean SMTP server for the scale tests: real SMTP on 127.0.0.1, every message answered 250 and kept.

Why not aiosmtpd (tests/test_delivery.py's ``FaultySmtp``): at 20,000 messages its per-command coroutines and
session objects cost ~0.5 s of CPU per 1,000 messages in the test process (measured in the 4-worker test on this
2-core machine), as much as the four workers together; this server costs a fraction of that, so the test measures
the workers, not its own sink.

It still speaks SMTP, not a shortcut: a 220 greeting, EHLO (offering PIPELINING and 8BITMIME) or HELO, then per
transaction MAIL FROM, one or more RCPT TO, DATA (354, the content up to the line holding a lone dot,
dot-unstuffed per RFC 5321 §4.5.2) and a 250 only once the whole content is in; RSET, NOOP and QUIT; commands out
of order get 503, unknown ones 500. Pipelined commands are read from the same buffer and their replies written in
one go. A message counts as delivered only when its final 250 is written.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter

_END = b"\r\n.\r\n"
_MAX_LINE = 4096


class _Session(asyncio.Protocol):
    """One SMTP session; see the module doc."""

    def __init__(self, sink: LeanSmtp) -> None:
        self.sink = sink
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.greeted = False
        self.sender: str | None = None
        self.recipients: list[str] = []
        self.in_data = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(b"220 lean ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        replies: list[bytes] = []
        while self.transport is not None and not self.transport.is_closing():
            if self.in_data:
                # The content ends at CRLF.CRLF; the DATA command's own CRLF counts as the first CRLF (an empty body).
                end = (b"\r\n" + self.buffer).find(_END)
                if end < 0:
                    break
                content = bytes(self.buffer[: max(0, end)])
                del self.buffer[: end + len(_END) - 2]
                replies.append(self._deliver(content))
                continue
            cut = self.buffer.find(b"\r\n")
            if cut < 0:
                if len(self.buffer) > _MAX_LINE:
                    replies.append(b"500 5.5.2 line too long\r\n")
                    self.buffer.clear()
                break
            line = bytes(self.buffer[:cut])
            del self.buffer[: cut + 2]
            reply = self._command(line)
            replies.append(reply)
            if reply.startswith(b"221"):
                assert self.transport is not None
                self.transport.write(b"".join(replies))
                self.transport.close()
                return
        if replies and self.transport is not None:
            self.transport.write(b"".join(replies))

    def _command(self, line: bytes) -> bytes:
        verb, _, argument = line.partition(b" ")
        verb = verb.upper()
        if verb == b"EHLO" and argument:
            self.greeted, self.sender, self.recipients = True, None, []
            return b"250-lean\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 10485760\r\n"
        if verb == b"HELO" and argument:
            self.greeted, self.sender, self.recipients = True, None, []
            return b"250 lean\r\n"
        if verb == b"MAIL":
            if not self.greeted or self.sender is not None:
                return b"503 5.5.1 bad sequence of commands\r\n"
            if not argument.upper().startswith(b"FROM:<") or b">" not in argument:
                return b"501 5.5.4 syntax: MAIL FROM:<address>\r\n"
            self.sender = argument[6 : argument.index(b">")].decode("utf-8", "surrogateescape")
            return b"250 2.1.0 OK\r\n"
        if verb == b"RCPT":
            if self.sender is None:
                return b"503 5.5.1 need MAIL first\r\n"
            if not argument.upper().startswith(b"TO:<") or b">" not in argument[4:]:
                return b"501 5.5.4 syntax: RCPT TO:<address>\r\n"
            self.recipients.append(argument[4 : argument.index(b">")].decode("utf-8", "surrogateescape").lower())
            return b"250 2.1.5 OK\r\n"
        if verb == b"DATA":
            if not self.recipients:
                return b"503 5.5.1 need RCPT first\r\n"
            self.in_data = True
            return b"354 end with <CRLF>.<CRLF>\r\n"
        if verb == b"RSET":
            self.sender, self.recipients = None, []
            return b"250 2.0.0 OK\r\n"
        if verb == b"NOOP":
            return b"250 2.0.0 OK\r\n"
        if verb == b"QUIT":
            return b"221 2.0.0 bye\r\n"
        return b"500 5.5.2 command not recognised\r\n"

    def _deliver(self, content: bytes) -> bytes:
        content = content.replace(b"\r\n..", b"\r\n.")
        if content.startswith(b".."):
            content = content[1:]
        with self.sink.lock:
            self.sink.delivered.extend((rcpt, content) for rcpt in self.recipients)
        self.in_data, self.sender, self.recipients = False, None, []
        return b"250 2.0.0 OK queued\r\n"


class LeanSmtp:
    """The server, running on an event loop in a thread of its own (:meth:`start`, :meth:`stop`)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.delivered: list[tuple[str, bytes]] = []  # (recipient, content) for each message answered 250
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="lean-smtp", daemon=True)
        self._server: asyncio.Server | None = None

    def start(self) -> LeanSmtp:
        """Listen on 127.0.0.1, a port the system chooses (:attr:`port`)."""
        self._thread.start()
        create = self._loop.create_server(lambda: _Session(self), "127.0.0.1", 0)
        self._server = asyncio.run_coroutine_threadsafe(create, self._loop).result(10)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    def stop(self) -> None:
        """Stop listening and the loop."""
        if self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def received(self) -> Counter[str]:
        """How many messages each recipient received."""
        with self.lock:
            return Counter(rcpt for rcpt, _ in self.delivered)
