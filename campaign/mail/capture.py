"""The built-in capture SMTP server: real SMTP on 127.0.0.1, every message kept as an .eml file.

A new user sees real emails without a mail account: the CLI starts :class:`CaptureServer` in-process on a
free port and delivers to it over SMTP like to any relay. Each message is written to the mailbox
directory atomically (temporary file, then rename), named so that listing the directory sorts by arrival.
A message is known by its file's name without ``.eml`` (:attr:`CapturedMessage.name`, :func:`captured_path`).
"""

from __future__ import annotations

import itertools
import os
import re
import time
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope, Session

_COUNTER = itertools.count()
_NAME = re.compile(r"[0-9]+-[0-9]+-[0-9]{6}")  # what _MailboxHandler names a message, without .eml


class _MailboxHandler:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def handle_EHLO(
        self, server: Any, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        # aiosmtpd reads commands one by one, so pipelined ones work; it just does not say so. Saying it lets
        # the sender pipeline (RFC 2920), as it would with any real relay.
        session.host_name = hostname
        return [responses[0], "250-PIPELINING", *responses[1:]]

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        # Record the envelope like a delivering MTA would, so a captured file shows who it was really for.
        head = f"X-Captured-From: {envelope.mail_from}\r\nX-Captured-To: {', '.join(envelope.rcpt_tos)}\r\n"
        name = f"{time.time_ns()}-{os.getpid()}-{next(_COUNTER):06d}.eml"
        tmp = self.directory / f".{name}.tmp"
        tmp.write_bytes(head.encode() + content)
        tmp.rename(self.directory / name)
        return "250 2.0.0 OK captured"


class _FreePortController(Controller):
    """aiosmtpd's Controller probes the port it was given; with port 0 it must probe the one it got."""

    def _trigger_server(self) -> None:
        server: Any = self.server
        self.port = server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


class CaptureServer:
    """An aiosmtpd server on 127.0.0.1 that stores every message under ``directory``. A context manager."""

    def __init__(self, directory: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self._controller = _FreePortController(
            _MailboxHandler(directory), hostname=host, port=port, server_hostname="capture"
        )

    @property
    def host(self) -> str:
        """Where it listens."""
        return str(self._controller.hostname)

    @property
    def port(self) -> int:
        """The port it listens on (chosen by the system when 0 was asked)."""
        return int(self._controller.port)

    def __enter__(self) -> CaptureServer:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()


@dataclass(frozen=True, slots=True)
class CapturedMessage:
    """A message in the mailbox."""

    path: Path
    to: str
    subject: str
    date: str

    @property
    def name(self) -> str:
        """What the message is known by: its file's name without ``.eml``."""
        return self.path.stem


def mailbox(directory: Path, latest: int | None = None) -> list[CapturedMessage]:
    """The captured messages, oldest first; only the ``latest`` ones when given (only their headers are read)."""
    if not directory.is_dir():
        return []
    parser = BytesHeaderParser(policy=default_policy)
    found = []
    paths = sorted(directory.glob("*.eml"))
    for path in paths if latest is None else paths[max(len(paths) - latest, 0) :]:
        with open(path, "rb") as fh:
            headers = parser.parse(fh)
        found.append(
            CapturedMessage(
                path, str(headers.get("To", "")), str(headers.get("Subject", "")), str(headers.get("Date", ""))
            )
        )
    return found


def mailbox_size(directory: Path) -> int:
    """How many messages the mailbox holds."""
    return sum(1 for _ in directory.glob("*.eml")) if directory.is_dir() else 0


def captured_path(directory: Path, name: str) -> Path | None:
    """The file of the captured message called ``name`` (:attr:`CapturedMessage.name`), or None: a name that is
    not one the server gives (a path, ``..``) is never looked for."""
    if not _NAME.fullmatch(name):
        return None
    path = directory / f"{name}.eml"
    return path if path.is_file() else None
