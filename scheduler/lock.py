"""One ``campaign serve`` per SQLite database: an exclusive lock on a file beside it.

Exactly once does not depend on it (a wave is fired by a compare-and-set on its status, and messages are sent
under leases), but two services on one SQLite file only take turns for its write lock and double the polling;
refusing the second one, with a line saying which process holds the database, is clearer. The lock is an
``fcntl`` lock: the kernel releases it when the process ends, however it ends, so a crash never leaves a stale
lock behind. On PostgreSQL no file lock is taken: any number of services run, and one leads
(:mod:`campaign.services.leadership`, an advisory lock).
"""

from __future__ import annotations

import fcntl
import os
import time
from types import TracebackType

from campaign.exceptions import CampaignError, StorageError
from campaign.services.service_status import LOCK_SUFFIX, lock_path, running_service
from campaign.store.engine import Database

# Where the lock lives and how a status display probes it are the services' (every interface asks the same way):
# re-exported here for the service and its tests.
__all__ = ["LOCK_SUFFIX", "ServiceLock", "ServiceRunningError", "lock_path", "running_service"]

_ATTEMPTS, _PAUSE_SECONDS = 5, 0.025


class ServiceRunningError(CampaignError):
    """Another ``campaign serve`` holds this database."""


def _lock_soon(fd: int, kind: int) -> None:
    """``flock`` without waiting, tried a few times over a tenth of a second (a status probe holds the lock
    for an instant); BlockingIOError if it is still held."""
    for _ in range(_ATTEMPTS - 1):
        try:
            fcntl.flock(fd, kind | fcntl.LOCK_NB)
        except BlockingIOError:
            time.sleep(_PAUSE_SECONDS)
        else:
            return
    fcntl.flock(fd, kind | fcntl.LOCK_NB)


class ServiceLock:
    """Held for the life of a service (a ``with`` block); entering raises :class:`ServiceRunningError` when
    another process holds it."""

    def __init__(self, db: Database) -> None:
        self.database = db.file
        self.path = lock_path(db)
        self._fd: int | None = None

    def __enter__(self) -> ServiceLock:
        if self.path is None:
            return self
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StorageError(f"cannot open the service's lock file {self.path}: {exc.strerror}") from None
        try:
            _lock_soon(fd, fcntl.LOCK_EX)
        except BlockingIOError:
            holder = os.read(fd, 64).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise ServiceRunningError(
                f"another `campaign serve` (pid {holder}) is running on {self.database}; "
                f"one is enough (its lock: {self.path})"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        # The holder's pid, for the message above; the lock itself is the flock, not the file's content.
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def __exit__(
        self, _type: type[BaseException] | None, _value: BaseException | None, _tb: TracebackType | None
    ) -> None:
        if self._fd is not None:
            # Emptied, then unlocked: a later holder writes its own pid. The file stays (removing it would let
            # a third process lock a new file while a second still waits on the old one).
            os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None
