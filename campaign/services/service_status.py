"""Whether the scheduler service (``campaign serve``: the scheduler and the delivery worker) runs on a database.

Contract: the service holds an exclusive ``fcntl`` lock on a file beside a SQLite database for its whole life
(:class:`scheduler.lock.ServiceLock`); :func:`running_service` probes that lock with a shared one held for an
instant, so asking never stops a service from starting (it tries again, see ``scheduler.lock``). The kernel drops
the lock when the process ends, however it ends, so the answer is never a stale file. For a database that is not
a SQLite file (PostgreSQL) nothing says: the answer is None, "not known". Here rather than in ``scheduler`` so that
every interface (``campaign status``, the settings page) asks the same question the same way.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from campaign.store.engine import Database

LOCK_SUFFIX = ".serve.lock"
"""The lock file's name is the database file's with this added."""


def lock_path(db: Database) -> Path | None:
    """The lock file of ``db`` (``<database file>.serve.lock``); None where no lock is taken (not a SQLite file)."""
    path = db.file
    return None if path is None else path.with_name(path.name + LOCK_SUFFIX)


def running_service(db: Database) -> int | None:
    """The pid of the ``campaign serve`` running on ``db`` (0 if it cannot be told), or None if none is (or the
    database is not a SQLite file, where nothing says): for status displays."""
    path = lock_path(db)
    if path is None or not path.exists():
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        # A shared lock, held for an instant: it conflicts only with a running service's exclusive one (and a
        # service starting in that instant tries again, see scheduler.lock._lock_soon).
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 64).decode("ascii", "replace").strip()
        return int(holder) if holder.isdigit() else 0
    finally:
        os.close(fd)
    return None


def service_known(db: Database) -> bool:
    """Whether :func:`running_service` can tell for ``db`` (a SQLite file); for PostgreSQL it cannot."""
    return lock_path(db) is not None
