"""Contact imports running in the background, for the staff pages: an upload's import and its progress.

Contract of :class:`ImportJobs`:

* :meth:`~ImportJobs.start` runs :func:`~campaign.services.contact_import.import_contacts` on a file already
  saved in the uploads folder, in a thread of its own, and returns at once with the :class:`ImportJob`, whose
  ``done``/``size`` move as batches are written (a page polls them) and which ends ``finished`` with its
  :class:`~campaign.services.contact_import.ImportReport` or ``failed`` with a one-line reason (the file's path
  in it replaced by the name it was uploaded as: the server's folders are nobody's business).
* The uploaded file is deleted when its import ends (contact data is not kept twice); the rejects report stays
  beside it, for download, until the job is forgotten. Only the newest :data:`KEPT_JOBS` jobs are kept, in this
  process's memory (a restart forgets them; the contacts imported stay, of course); a forgotten job's rejects
  file is deleted with it.
* Each finished import is written to the audit log (who, which list, the counts).
* Imports run one at a time (a lock): two large imports at once would only contend for the database's one
  writer.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections import OrderedDict
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from campaign.exceptions import CampaignError
from campaign.models import AuditAction
from campaign.services import audit
from campaign.services.contact_import import ImportReport, import_contacts, rejects_path_for
from campaign.store.engine import Database

log = logging.getLogger("campaign.imports")

KEPT_JOBS = 50
"""How many imports (the newest) are remembered, with their rejects files."""
UPLOAD_SUFFIX = ".csv"


@dataclass
class ImportJob:
    """One upload's import. ``done`` and ``size`` are bytes of the file read so far and in all."""

    id: str
    list_name: str
    file_name: str
    path: Path
    user_id: int | None
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    size: int = 0
    done: int = 0
    finished: bool = False
    report: ImportReport | None = None
    error: str | None = None

    @property
    def running(self) -> bool:
        """Whether the import is still going."""
        return not self.finished

    @property
    def percent(self) -> int:
        """How far the import is, 0 to 100."""
        if self.finished:
            return 100
        return min(99, self.done * 100 // self.size) if self.size else 0

    @property
    def rejects_path(self) -> Path | None:
        """The rejects report, when the import wrote one."""
        return self.report.rejects_path if self.report is not None else None


class ImportJobs:
    """The background imports of one web app (``app.state``): into ``db``, from files in ``folder``."""

    def __init__(self, db: Database, folder: Path, batch_size: int) -> None:
        self.db = db
        self.folder = folder
        self.batch_size = batch_size
        self._jobs: OrderedDict[str, ImportJob] = OrderedDict()
        self._guard = threading.Lock()  # the job table
        self.one_at_a_time = threading.Lock()
        """Held while an import runs: the next one waits for it."""

    def new_upload_path(self) -> tuple[str, Path]:
        """A new job id and the file its upload is to be saved as (the folder is made if needed)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        job_id = secrets.token_urlsafe(16)
        return job_id, self.folder / f"{job_id}{UPLOAD_SUFFIX}"

    def start(
        self,
        job_id: str,
        path: Path,
        list_name: str,
        *,
        file_name: str,
        encoding: str | None,
        delimiter: str | None,
        user_id: int | None,
        address: str | None,
    ) -> ImportJob:
        """Import the saved upload ``path`` into ``list_name`` in a background thread (see the module doc)."""
        job = ImportJob(job_id, list_name, file_name, path, user_id, size=path.stat().st_size)
        with self._guard:
            self._jobs[job.id] = job
            forgotten = []
            while len(self._jobs) > KEPT_JOBS:
                forgotten.append(self._jobs.popitem(last=False)[1])
        for old in forgotten:
            if old.finished:
                _remove(rejects_path_for(old.path))
        thread = threading.Thread(
            target=self._run, args=(job, encoding, delimiter, address), name=f"import {job.id}", daemon=True
        )
        thread.start()
        return job

    def get(self, job_id: str) -> ImportJob | None:
        """The job with this id, while it is remembered."""
        with self._guard:
            return self._jobs.get(job_id)

    def _run(self, job: ImportJob, encoding: str | None, delimiter: str | None, address: str | None) -> None:
        def advance(read: int, size: int) -> None:
            job.done, job.size = read, size

        try:
            with self.one_at_a_time:
                # In this process: a writer process beside a web server is one more process to manage, and the
                # page is watched, not waited on.
                job.report = import_contacts(
                    self.db,
                    job.path,
                    job.list_name,
                    encoding=encoding,
                    delimiter=delimiter,
                    batch_size=self.batch_size,
                    progress=advance,
                    parallel=False,
                )
            report = job.report
            audit.record(
                self.db,
                AuditAction.CONTACTS_IMPORTED,
                user_id=job.user_id,
                target=job.list_name,
                details={**report.audit_details(job.file_name), "address": address},
            )
        except CampaignError as exc:
            job.error = str(exc).replace(str(job.path), job.file_name)
        except Exception as exc:  # a thread's failure must reach its page, not vanish
            log.exception("import %s failed", job.id)
            job.error = f"the import failed ({type(exc).__name__}); the server's log says more"
        finally:
            _remove(job.path)
            job.finished = True


def _remove(path: Path) -> None:
    with suppress(OSError):
        path.unlink(missing_ok=True)
