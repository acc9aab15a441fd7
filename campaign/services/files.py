"""Writing output files safely: inside the directory configured for them, and whole or not at all."""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from campaign.exceptions import OutputFileError
from campaign.rules.paths import file_name


def inside(directory: Path, target: Path, setting: str) -> Path:
    """``target`` resolved (symbolic links followed), after checking it lies inside ``directory``, also resolved.

    Names that reach a path are slugged first (:func:`campaign.rules.paths.slug`); this is the second line:
    whatever a path was made from, or a link planted on the way, nothing is written outside the directory
    the setting ``setting`` names. Raises :class:`OutputFileError`.
    """
    base = directory.resolve()
    resolved = target.resolve()
    if not resolved.is_relative_to(base):
        raise OutputFileError(f"refusing to write {resolved}: it is outside {setting} ({base})")
    return resolved


@contextmanager
def atomic_text_file(path: Path, *, overwrite: bool = False) -> Iterator[TextIO]:
    """A text file (UTF-8, untranslated newlines) that appears at ``path`` complete, or not at all.

    It is written under a temporary name in the same directory, then renamed over ``path`` when the block
    ends without an error; on an error the temporary file is removed and ``path`` is untouched. Without
    ``overwrite`` an existing ``path`` is refused, before anything is written and again at the end (by a
    hard link, which fails if another process created ``path`` meanwhile). Raises :class:`OutputFileError`
    for a missing or unwritable directory.
    """
    if not overwrite and os.path.lexists(path):
        raise OutputFileError(f"{path} already exists (use --force to overwrite it)")
    directory = path.parent
    # Cut by bytes, not characters: a name of 83 CJK characters is already 249 of the 255 bytes allowed.
    tmp = directory / file_name(f".{path.name}", f".{secrets.token_hex(4)}.tmp")
    try:
        # What is written here is personal data (contact exports): readable by its owner only, unless the file
        # it replaces was shared on purpose, whose permissions are kept (never widened to the umask's).
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        if overwrite and (mode := _mode_of(path)) is not None:
            os.fchmod(fd, mode)
    except FileNotFoundError:
        raise OutputFileError(f"cannot write {path}: directory {directory} does not exist") from None
    except OSError as exc:
        raise OutputFileError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with open(fd, "w", encoding="utf-8", newline="") as fh:
            yield fh
        if overwrite:
            os.replace(tmp, path)
        else:
            _link_new(tmp, path)
    except OSError as exc:
        if isinstance(exc, OutputFileError):
            raise
        raise OutputFileError(f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)


def _mode_of(path: Path) -> int | None:
    """The permission bits of the file at ``path``, or None when there is none."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None


def _link_new(tmp: Path, path: Path) -> None:
    """Give ``tmp``'s file the name ``path``, which must not exist yet."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise OutputFileError(f"{path} already exists (use --force to overwrite it)") from None
    except OSError:
        # A file system without hard links (FAT, some network shares): check, then rename (a narrow race).
        if os.path.lexists(path):
            raise OutputFileError(f"{path} already exists (use --force to overwrite it)") from None
        os.replace(tmp, path)
