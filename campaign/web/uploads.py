"""Receiving a file upload (``multipart/form-data``) straight to disk, size-limited, with its CSRF token checked first.

Contract of :func:`receive_upload`:

* The request body is parsed as it arrives (python-multipart's streaming parser, one chunk at a time, in a worker
  thread so that disk writes never stall the event loop): the file part is written to ``target`` as it comes and
  never held in memory; the small text fields (a few, each at most :data:`MAX_FIELD_BYTES`) are kept.
* **CSRF before the file**: the file part is accepted only once the session's token was seen, in the
  ``X-CSRF-Token`` header or in the ``csrf_token`` field *before* the file (browsers send fields in the form's
  order, so the hidden field comes first). Otherwise :class:`UploadRefused` with ``csrf=True``, and nothing is
  written. This is why the upload's endpoint cannot use :func:`campaign.web.auth.require`'s CSRF check, which
  reads the whole form first (Starlette would spool the file to a temporary file before the check).
* **Size**: a body announced (``Content-Length``) or found larger than ``limit`` bytes plus room for the form's
  other parts is refused with :class:`UploadRefused` (status 413); the partial file is removed. The rest of the
  body is read and thrown away, so that the browser, still sending, gets the page saying why (a server that
  stops reading makes it show a reset connection instead).
* Anything else wrong (not multipart, no file, a second file, a malformed body) is :class:`UploadRefused` with a
  one-line message, and ``target`` does not exist afterwards.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

MAX_FIELD_BYTES = 4096
"""The largest text field kept (a list name, a choice, the token)."""
MAX_FIELDS = 16
FORM_ROOM = 64 * 1024
"""Bytes allowed beyond the file's limit for the other fields and the multipart framing."""
CSRF_FIELD = "csrf_token"


class UploadRefused(Exception):
    """The upload was not accepted: ``status`` and a one-line ``message``; ``csrf`` when the token was missing."""

    def __init__(self, status: int, message: str, *, csrf: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.csrf = csrf


@dataclass
class Upload:
    """What a form with one file sent: its text ``fields``, the file's name as the browser gave it, its size."""

    fields: dict[str, str] = field(default_factory=dict)
    file_name: str = ""
    size: int = 0


async def receive_upload(
    request: Request, target: Path, *, limit: int, csrf_token: str, csrf_in_header: bool
) -> Upload:
    """Stream the form's one file part to ``target`` (see the module doc); ``csrf_token`` is the session's token,
    ``csrf_in_header`` whether the request's header carried it already."""
    media_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if media_type != b"multipart/form-data" or not boundary:
        raise UploadRefused(400, "send the form as multipart/form-data, with its file")
    announced = request.headers.get("content-length", "")
    too_big = f"the file is larger than the limit of {limit // 1_000_000} MB (web.max_upload_mb)"
    receiver = _Receiver(target, limit, csrf_token, trusted=csrf_in_header)
    # One iterator, so that a refusal mid-way can read the rest of the body from where the parser stopped.
    chunks = aiter(request.stream())
    try:
        if announced.isdigit() and int(announced) > limit + FORM_ROOM:
            raise UploadRefused(413, too_big)
        parser = MultipartParser(boundary, receiver.callbacks(), max_size=limit + FORM_ROOM)
        async for chunk in chunks:
            if chunk:
                await run_in_threadpool(_feed, parser, chunk)
            if receiver.refused is not None:
                raise receiver.refused
        parser.finalize()
        receiver.close()
        if receiver.refused is not None:
            raise receiver.refused
        if not receiver.trusted:
            raise UploadRefused(403, "", csrf=True)
        if not receiver.upload.file_name and receiver.upload.size == 0:
            raise UploadRefused(400, "choose a CSV file to upload")
        if receiver.upload.size == 0:
            raise UploadRefused(400, "the file is empty")
        if not receiver.complete:
            raise UploadRefused(400, "the upload was cut short; try again")
        return receiver.upload
    except UploadRefused:
        receiver.discard()
        await _drain(chunks)
        raise
    except MultipartParseError:
        receiver.discard()
        await _drain(chunks)
        if receiver.upload.size > limit:
            raise UploadRefused(413, too_big) from None
        raise UploadRefused(400, "the upload was malformed; try again") from None
    except BaseException:  # the client gone (ClientDisconnect), the server stopping...
        receiver.discard()
        raise


def _feed(parser: MultipartParser, chunk: bytes) -> None:
    parser.write(chunk)


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    """Read what is left of the body, keeping none of it (see the module doc)."""
    with suppress(ClientDisconnect):
        async for _ in chunks:
            pass


class _Receiver:
    """The parser's callbacks: the headers of each part, its data to a field or to the file."""

    def __init__(self, target: Path, limit: int, csrf_token: str, *, trusted: bool) -> None:
        self.target = target
        self.limit = limit
        self.csrf_token = csrf_token
        self.trusted = trusted
        self.upload = Upload()
        self.refused: UploadRefused | None = None
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._name = ""
        self._file_name: str | None = None
        self._value = bytearray()
        self._file: BinaryIO | None = None
        self._files = 0
        self.complete = False
        """Whether the file part ended (its closing boundary came): a body cut short is no file."""

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda data, start, end: self._header_name.extend(data[start:end]),
            "on_header_value": lambda data, start, end: self._header_value.extend(data[start:end]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self._name, self._file_name = "", None
        self._value.clear()

    def _header_end(self) -> None:
        if bytes(self._header_name).lower() == b"content-disposition":
            _, options = parse_options_header(bytes(self._header_value))
            self._name = options.get(b"name", b"").decode("utf-8", "replace")
            if b"filename" in options:
                self._file_name = options[b"filename"].decode("utf-8", "replace")
        self._header_name.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        if self.refused is not None or self._file_name is None:
            return
        self._files += 1
        if self._files > 1:
            self.refused = UploadRefused(400, "send one file at a time")
        elif not self.trusted:
            self.refused = UploadRefused(403, "", csrf=True)
        else:
            self.upload.file_name = self._file_name
            self._file = open(self.target, "xb")  # noqa: SIM115 - closed at the part's end or on discard

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self.refused is not None:
            return
        if self._file_name is None:
            if len(self._value) + end - start > MAX_FIELD_BYTES:
                self.refused = UploadRefused(400, f"the field {self._name!r} is too long")
                return
            self._value.extend(data[start:end])
            return
        if self._file is None:
            return
        self.upload.size += end - start
        if self.upload.size > self.limit:
            self.refused = UploadRefused(
                413, f"the file is larger than the limit of {self.limit // 1_000_000} MB (web.max_upload_mb)"
            )
            self.discard()
            return
        self._file.write(data[start:end])

    def _part_end(self) -> None:
        if self.refused is not None:
            return
        if self._file_name is not None:
            self.close()
            self.complete = True
            return
        if len(self.upload.fields) >= MAX_FIELDS:
            self.refused = UploadRefused(400, "the form has too many fields")
            return
        value = self._value.decode("utf-8", "replace")
        if self._name == CSRF_FIELD:
            self.trusted = self.trusted or (
                bool(self.csrf_token) and hmac.compare_digest(value.encode(), self.csrf_token.encode())
            )
        else:
            self.upload.fields[self._name] = value

    def close(self) -> None:
        """Close the file (complete)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def discard(self) -> None:
        """Close and remove the file: nothing of a refused upload stays."""
        self.close()
        with suppress(OSError):
            self.target.unlink(missing_ok=True)
