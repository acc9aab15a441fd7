"""The staff pages of contacts: lists, uploading a CSV into one, a list's contacts, a contact's page.

Every page and action here needs :attr:`~campaign.models.Permission.ACT_ON_CAMPAIGNS` (staff and admins): an
analyst gets the 403 page, and a POST of theirs changes nothing. The numbers and rules are the services' (the
same as the command line's: ``campaign contacts import`` and friends); this module lays them out through the
templates ``contacts.html``, ``contacts_import.html``, ``contacts_list.html`` and ``contact.html``.

* :data:`~campaign.rules.routes.CONTACTS`: the lists with their sizes, and the upload form (a file, the list's
  name, the encoding and delimiter, both "detect" by default as the CLI does). The file input is drawn as a large
  drop zone: a file dropped on it is picked, no script needed.
* ``POST`` :data:`~campaign.rules.routes.CONTACTS_UPLOAD`: the file is streamed to ``<data>/uploads/`` by
  :mod:`campaign.web.uploads` (size limit ``web.max_upload_mb``; the CSRF token checked before the file is
  read, which is why this endpoint makes its own checks rather than :func:`~campaign.web.auth.require`'s), then
  imported in the background (:class:`~campaign.services.import_jobs.ImportJobs`); the answer is a 303 to the
  import's page. A refusal is the form again with one line beside the file field.
* :data:`~campaign.rules.routes.CONTACTS_IMPORT`: a progress bar, the page reloading itself every second (a
  ``<meta http-equiv="refresh">``: no script) until the import ends; then the counts, the flagged contacts (no
  zone), the rejected rows with line and reason, and :data:`~campaign.rules.routes.CONTACTS_REJECTS` to download.
* :data:`~campaign.rules.routes.CONTACTS_LIST`: a list's contacts, ``q`` an address or name prefix, ``after``
  the last id of the previous page (keyset pagination: a "next page" link, never an offset); below them the
  files imported into the list, through these pages or ``campaign contacts import`` (when, by whom, counts: the
  audit log).
* :data:`~campaign.rules.routes.CONTACT_PAGE`: a contact's fields, lists, messages (times in the contact's own
  zone, or UTC when it has none) and tracking history, and the buttons suppressing or lifting the suppression
  (``POST``, CSRF-checked and audited by :mod:`campaign.services.contact_pages`).
* Bad input (an unknown list, contact or import, a field out of its choices) is one line, never a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, RedirectResponse, Response

from campaign.config import Settings
from campaign.exceptions import NotFoundError, ValidationError
from campaign.models import AuditAction, Permission
from campaign.rules.access import may
from campaign.rules.contact_fields import clean_text
from campaign.rules.references import MAX_NAME_LENGTH
from campaign.rules.routes import CONTACT_PAGE, CONTACTS_IMPORT, CONTACTS_LIST
from campaign.services import audit
from campaign.services.contact_pages import contact_history, list_page, suppress_by_hand, unsuppress_by_hand
from campaign.services.contacts import list_lists
from campaign.services.import_jobs import ImportJobs
from campaign.services.sessions import Staff
from campaign.store.engine import Database
from campaign.web.auth import CSRF_HEADER, csrf_refused, require, staff_access, token_matches
from campaign.web.dashboard import problem
from campaign.web.pages import NO_STORE
from campaign.web.uploads import UploadRefused, receive_upload

ENCODINGS = {"detect": None, "utf-8": "utf-8", "cp1252": "cp1252", "latin-1": "latin-1"}
"""The encodings offered: "detect" is UTF-8 (with or without its BOM), as the CLI does without ``--encoding``."""
DELIMITERS = {"detect": None, ",": ",", ";": ";", "tab": "\t"}
"""The delimiters offered: "detect" sniffs it from the header line, as the CLI does without ``--delimiter``."""
UPLOADS_FOLDER = "uploads"
"""Where uploads are saved, in the data folder."""
REFRESH_SECONDS = 1


class ContactsData:
    """What the contacts pages use (``app.state.contacts``): the database, the upload limit, the imports."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.max_upload = settings.web.max_upload_mb * 1_000_000
        self.imports = ImportJobs(db, settings.data_dir / UPLOADS_FOLDER, settings.contacts.import_batch_size)


def contacts_data(request: Request) -> ContactsData:
    """The app's :class:`ContactsData`."""
    data: ContactsData = request.app.state.contacts
    return data


@require(Permission.ACT_ON_CAMPAIGNS)
async def contacts_page(request: Request, staff: Staff) -> Response:
    """The lists and the upload form."""
    return await _lists_page(request, staff)


async def upload(request: Request) -> Response:
    """``POST`` a contacts CSV (see the module doc): login, role, then the CSRF token before the file."""
    access = staff_access(request)
    staff = await access.staff_of(request)
    if staff is None:
        return access.to_login(request)
    # The role before the body: an analyst's upload is refused without reading a byte of it.
    if not may(staff.role, Permission.ACT_ON_CAMPAIGNS):
        return access.pages.page("forbidden.html", staff=staff, status=403, permission=Permission.ACT_ON_CAMPAIGNS)
    header = request.headers.get(CSRF_HEADER)
    if header is not None and not token_matches(header, staff):
        return csrf_refused()
    data = contacts_data(request)
    job_id, path = await run_in_threadpool(data.imports.new_upload_path)
    try:
        sent = await receive_upload(
            request, path, limit=data.max_upload, csrf_token=staff.csrf_token, csrf_in_header=header is not None
        )
    except ClientDisconnect:
        return Response(status_code=400)  # nobody is left to read an answer; the partial file is removed
    except UploadRefused as exc:
        if exc.csrf:
            return csrf_refused()
        return await _lists_page(request, staff, status=exc.status, errors={"file": exc.message})
    fields = sent.fields
    list_name = clean_text(fields.get("list", "")) or ""
    errors: dict[str, str] = {}
    if not list_name:
        errors["list"] = "name the list to import into (a new or an existing one)"
    elif len(list_name) > MAX_NAME_LENGTH:
        errors["list"] = f"at most {MAX_NAME_LENGTH} characters"
    encoding = fields.get("encoding", "detect")
    delimiter = fields.get("delimiter", "detect")
    if encoding not in ENCODINGS:
        errors["encoding"] = "choose one of the encodings offered"
    if delimiter not in DELIMITERS:
        errors["delimiter"] = "choose one of the delimiters offered"
    if errors:
        await run_in_threadpool(path.unlink, missing_ok=True)
        return await _lists_page(request, staff, status=400, errors=errors, values=fields)
    job = await run_in_threadpool(
        lambda: data.imports.start(
            job_id,
            path,
            list_name,
            file_name=Path(sent.file_name).name or "upload.csv",
            encoding=ENCODINGS[encoding],
            delimiter=DELIMITERS[delimiter],
            user_id=staff.user_id,
            address=request.client.host if request.client else None,
        )
    )
    location = access.pages.url(CONTACTS_IMPORT, job=job.id)
    return RedirectResponse(location, status_code=303, headers=NO_STORE)


@require(Permission.ACT_ON_CAMPAIGNS)
async def import_page(request: Request, staff: Staff) -> Response:
    """An import's progress, then its result."""
    job = contacts_data(request).imports.get(request.path_params["job"])
    if job is None:
        return problem(request, staff, 404, "no such import: imports are remembered until the server restarts")
    return staff_access(request).pages.page(
        "contacts_import.html", staff=staff, job=job, refresh_seconds=REFRESH_SECONDS
    )


@require(Permission.ACT_ON_CAMPAIGNS)
async def rejects(request: Request, staff: Staff) -> Response:
    """An import's rejects report, as a CSV download."""
    job = contacts_data(request).imports.get(request.path_params["job"])
    path = job.rejects_path if job is not None else None
    if job is None or path is None or not path.is_file():
        return problem(request, staff, 404, "this import has no rejected rows to download")
    name = Path(job.file_name).stem + ".rejects.csv"
    return FileResponse(path, media_type="text/csv; charset=utf-8", filename=name, headers=NO_STORE)


@require(Permission.ACT_ON_CAMPAIGNS)
async def list_contacts(request: Request, staff: Staff) -> Response:
    """A list's contacts, one keyset page at a time."""
    query = request.query_params
    list_id = _number(request.path_params["list"])
    after = _number(query.get("after", "")) if query.get("after") else None
    prefix = (query.get("q") or "").strip()
    if list_id is None or (query.get("after") and after is None):
        return problem(request, staff, 400, "a list and a page are numbers: follow the links of the pages")
    try:
        page = await run_in_threadpool(
            lambda: list_page(contacts_data(request).db, list_id, prefix=prefix or None, after=after)
        )
    except NotFoundError as exc:
        return problem(request, staff, 404, str(exc))
    # The files imported into the list, by whom (the audit log: its target is the list's name).
    db = contacts_data(request).db
    entries = await run_in_threadpool(audit.recent_actions, db, 20, page.contact_list.name, _IMPORT_ACTIONS)
    base = staff_access(request).pages.url(CONTACTS_LIST, list=str(list_id))
    next_url = None
    if page.next_after is not None:
        next_url = base + "?" + urlencode({k: v for k, v in (("q", prefix), ("after", str(page.next_after))) if v})
    return staff_access(request).pages.page(
        "contacts_list.html",
        staff=staff,
        page=page,
        prefix=prefix,
        next_url=next_url,
        first_url=base,
        after=after,
        entries=entries,
    )


_CONTACT_ACTIONS = frozenset({AuditAction.CONTACT_SUPPRESSED, AuditAction.CONTACT_UNSUPPRESSED})
"""The audit entries a contact's page shows."""
_IMPORT_ACTIONS = frozenset({AuditAction.CONTACTS_IMPORTED})
"""The audit entries a list's page shows."""


@require(Permission.ACT_ON_CAMPAIGNS)
async def contact_page(request: Request, staff: Staff) -> Response:
    """A contact's page."""
    contact_id = _number(request.path_params["contact"])
    if contact_id is None:
        return problem(request, staff, 400, "a contact is a number: follow the links of the pages")
    try:
        history = await run_in_threadpool(contact_history, contacts_data(request).db, contact_id)
    except NotFoundError as exc:
        return problem(request, staff, 404, str(exc))
    done = request.query_params.get("done")
    # What staff did to this address by hand (its target is the address; only those actions, whatever else
    # might share the name).
    db = contacts_data(request).db
    entries = await run_in_threadpool(audit.recent_actions, db, 50, history.contact.email, _CONTACT_ACTIONS)
    return staff_access(request).pages.page(
        "contact.html",
        staff=staff,
        entries=entries,
        history=history,
        zone=history.contact.timezone or "UTC",
        done=done if done in ("suppressed", "unsuppressed", "unchanged") else None,
    )


@require(Permission.ACT_ON_CAMPAIGNS)
async def suppress(request: Request, staff: Staff) -> Response:
    """``POST``: suppress the contact's address by hand."""
    return await _change(request, staff, suppress_by_hand, "suppressed")


@require(Permission.ACT_ON_CAMPAIGNS)
async def unsuppress(request: Request, staff: Staff) -> Response:
    """``POST``: lift the contact's suppression by hand."""
    return await _change(request, staff, unsuppress_by_hand, "unsuppressed")


async def _change(request: Request, staff: Staff, change: Any, done: str) -> Response:
    contact_id = _number(request.path_params["contact"])
    if contact_id is None:
        return problem(request, staff, 400, "a contact is a number: follow the links of the pages")
    address = request.client.host if request.client else None
    db = contacts_data(request).db
    try:
        changed = await run_in_threadpool(lambda: change(db, contact_id, user_id=staff.user_id, address=address))
    except NotFoundError as exc:
        return problem(request, staff, 404, str(exc))
    except ValidationError as exc:
        return problem(request, staff, 409, str(exc))
    location = staff_access(request).pages.url(CONTACT_PAGE, contact=str(contact_id))
    location += "?" + urlencode({"done": done if changed else "unchanged"})
    return RedirectResponse(location, status_code=303, headers=NO_STORE)


async def _lists_page(
    request: Request,
    staff: Staff,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    data = contacts_data(request)
    lists = await run_in_threadpool(list_lists, data.db)
    return staff_access(request).pages.page(
        "contacts.html",
        staff=staff,
        status=status,
        lists=lists,
        errors=errors or {},
        values=values or {},
        encodings=list(ENCODINGS),
        delimiters=list(DELIMITERS),
        max_upload_mb=data.max_upload // 1_000_000,
    )


def _number(text: str) -> int | None:
    """A positive id from the address, or None (``٣`` and ``+1`` are no ids)."""
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        return None
    return int(text)
