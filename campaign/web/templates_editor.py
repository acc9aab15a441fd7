"""The template editor of a campaign's own templates, with its live preview (staff and admins only).

* **The list** (:data:`~campaign.rules.routes.CAMPAIGN_TEMPLATES`): each template the campaign's waves use, its
  files (HTML, text, subject, each locale variant), whose copy serves (the campaign's own or the default), whether
  it may change (:func:`~campaign.services.template_files.change_refusal`); ``?kind=&ext=&locale=`` opens a new
  locale variant (the locale checked by Babel; a bad one is one line beside the field, 400).
* **A file** (:data:`~campaign.rules.routes.CAMPAIGN_TEMPLATE_EDIT`): the text in a textarea (one line for a
  subject), and beside it the draft rendered as a contact of the audience (``email``, a datalist of the first of
  them) and the zones table. POST ``action=preview`` renders the draft without saving (the page without
  JavaScript); ``action=save`` checks and saves it (:func:`~campaign.services.template_drafts.save_template`),
  audited ``campaign-template-saved``, then 303; an error is beside the textarea (400; 409 when the template may
  not change), and nothing is written.
* **The live preview** (:data:`~campaign.rules.routes.CAMPAIGN_TEMPLATE_PREVIEW`, POST): the preview fragment
  alone, which htmx (served from ``/static/``, on this page only) asks for as staff type. The draft's HTML is kept
  in memory for a while (:class:`DraftFrames`) and shown in an ``<iframe sandbox="">`` loading
  :data:`~campaign.rules.routes.CAMPAIGN_TEMPLATE_FRAME` under the capture mailbox's policy (no script, nothing
  fetched): nothing typed is ever part of the staff page itself unescaped.
* **A draft over the limit** (:data:`~campaign.web.auth.MAX_FORM_BODY`, a paste of megabytes): the editor again,
  413, with the saved text and one line saying the sizes; the draft itself is not read, so not shown (see
  :func:`~campaign.web.auth.require`).
* **The draft in the tab** (``static/editor_draft.js``, the page's script): sending the form keeps the draft in
  the tab's ``sessionStorage``; when the editor then opens with another text and nothing was saved (the session
  had ended, so the login led back here), the draft is put back in the field, saying so, with a button to drop
  it. Nothing of it reaches the server until it is sent again.
* **Revert** (:data:`~campaign.rules.routes.CAMPAIGN_TEMPLATE_REVERT`, POST): the campaign's copy removed,
  audited ``campaign-template-reverted``.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from campaign.exceptions import NotFoundError, OutputFileError, ValidationError
from campaign.models import AuditAction, Permission
from campaign.rules.routes import CAMPAIGN_TEMPLATE_EDIT
from campaign.services import audit
from campaign.services.campaign_pages import audience_sample
from campaign.services.campaigns import CampaignDetails, get_campaign
from campaign.services.rendering import MAX_SUBJECT_CHARS, preview_zones
from campaign.services.sessions import Staff
from campaign.services.template_drafts import DraftError, DraftPreview, preview_draft, save_template
from campaign.services.template_files import (
    EXTENSIONS,
    FileName,
    change_refusal,
    list_templates,
    own_directory,
    parse_name,
    read_template,
    revert_template,
    variant_name,
)
from campaign.web.auth import MAX_FORM_BODY, body_size, megabytes, require, staff_access
from campaign.web.campaigns import CampaignsData, campaigns_data
from campaign.web.dashboard import problem
from campaign.web.mailbox import CAPTURED_HTML_POLICY, FRAMING_PAGE_POLICY
from campaign.web.pages import NO_STORE
from campaign.web.unsubscribe import BodyTooLarge

EDITOR_POLICY = "script-src 'self'; connect-src 'self'; " + FRAMING_PAGE_POLICY
"""The editor's policy: the staff pages', with this site's scripts (htmx), requests (its preview) and frames."""
MAX_FRAMES = 200
"""How many drafts' HTML :class:`DraftFrames` keeps (the oldest go first)."""
MAX_FRAME_CHARACTERS = 20_000_000
"""How much drafts' HTML :class:`DraftFrames` keeps in all, in characters (the oldest go first; the newest is
kept whatever its size): 200 drafts of the largest message a template may make would hold 400 MB."""


class DraftFrames:
    """The HTML of recent draft previews, by a random name, for the preview frame to load (in memory: a draft is
    not saved anywhere; one server process serves the staff pages)."""

    def __init__(self) -> None:
        self._frames: OrderedDict[str, tuple[int, int, str]] = OrderedDict()
        self._characters = 0

    def keep(self, staff: Staff, campaign_id: int, html: str) -> str:
        """Keep ``html`` for ``staff``; returns its name. The oldest are forgotten beyond :data:`MAX_FRAMES`
        drafts or :data:`MAX_FRAME_CHARACTERS` in all."""
        name = secrets.token_urlsafe(16)
        self._frames[name] = (staff.user_id, campaign_id, html)
        self._characters += len(html)
        while len(self._frames) > MAX_FRAMES or (self._characters > MAX_FRAME_CHARACTERS and len(self._frames) > 1):
            self._characters -= len(self._frames.popitem(last=False)[1][2])
        return name

    def get(self, staff: Staff, campaign_id: int, name: str) -> str | None:
        """The HTML kept as ``name`` for this staff member and campaign, or None."""
        found = self._frames.get(name)
        if found is None or found[:2] != (staff.user_id, campaign_id):
            return None
        return found[2]


def draft_frames(request: Request) -> DraftFrames:
    """The app's :class:`DraftFrames` (``app.state.draft_frames``)."""
    frames: DraftFrames = request.app.state.draft_frames
    return frames


@require(Permission.ACT_ON_CAMPAIGNS)
async def templates_page(request: Request, staff: Staff) -> Response:
    """The list of the campaign's templates, or (``?kind=``) a new locale variant's editor; see the module doc."""
    data = campaigns_data(request)
    try:
        view = await run_in_threadpool(list_templates, data.db, data.settings, request.path_params["campaign"])
    except NotFoundError as exc:
        return problem(request, staff, 404, str(exc))
    kind = request.query_params.get("kind", "")
    variant_error: str | None = None
    if kind:
        ext, locale = request.query_params.get("ext", ""), request.query_params.get("locale", "")[:100]
        try:
            file = variant_name(view.details, kind, ext, locale)
        except NotFoundError as exc:
            return problem(request, staff, 404, str(exc))
        except ValidationError as exc:
            variant_error = str(exc)
        else:
            return _to_file(request, view.details.campaign.id, file.name)
    return staff_access(request).pages.page(
        "campaign_templates.html",
        staff=staff,
        status=400 if variant_error else 200,
        view=view,
        extensions=EXTENSIONS,
        variant_kind=kind,
        variant_error=variant_error,
        locale=request.query_params.get("locale", "")[:100],
    )


async def _campaign_file(
    request: Request, staff: Staff, data: CampaignsData
) -> tuple[CampaignDetails, FileName] | Response:
    """The campaign and the file (of the allowlist) the address names, or the 404 page saying which is unknown."""
    try:
        details = await run_in_threadpool(get_campaign, data.db, request.path_params["campaign"])
        return details, parse_name(request.path_params["file"], details)
    except NotFoundError as exc:
        return problem(request, staff, 404, str(exc))


async def _draft_too_large(request: Request, staff: Staff, refused: BodyTooLarge) -> Response:
    """A draft sent over the limit: the editor with the saved text and the sizes (413); nothing is read or done."""
    data = campaigns_data(request)
    found = await _campaign_file(request, staff, data)
    if isinstance(found, Response):
        return found
    details, file = found
    opened = await run_in_threadpool(read_template, data.settings, details, file)
    # The size is the form's as sent (the text, percent-encoded, and a few fields): what the limit counts.
    message = (
        f"The template as sent is {body_size(refused)}: at most {megabytes(refused.limit)} can be saved. It was not "
        "read, so it is not shown here: go back (or undo the paste) and shorten it."
    )
    return await _editor(request, staff, details, file.name, opened.text, "", errors=[message], status=413)


@require(Permission.ACT_ON_CAMPAIGNS, too_large=_draft_too_large)
async def edit_page(request: Request, staff: Staff) -> Response:
    """One file's editor (GET), its preview without JavaScript or its save (POST); see the module doc."""
    data = campaigns_data(request)
    found = await _campaign_file(request, staff, data)
    if isinstance(found, Response):
        return found
    details, file = found
    if request.method != "POST":
        opened = await run_in_threadpool(read_template, data.settings, details, file)
        return await _editor(request, staff, details, file.name, opened.text, request.query_params.get("email", ""))
    posted = await request.form()
    text, email = _field(posted.get("text")), _field(posted.get("email")).strip()[:500]
    if posted.get("action") != "save":
        return await _editor(request, staff, details, file.name, text, email)
    ref = str(details.campaign.id)
    try:
        result = await run_in_threadpool(save_template, data.db, data.settings, data.key, ref, file.name, text)
    except DraftError as exc:
        return await _editor(request, staff, details, file.name, text, email, errors=exc.errors, status=400)
    except (ValidationError, OutputFileError) as exc:
        return await _editor(request, staff, details, file.name, text, email, errors=[str(exc)], status=409)
    await _audit(request, staff, AuditAction.CAMPAIGN_TEMPLATE_SAVED, details.campaign.name, {
        "file": file.name, "folder": str(result.directory), "files": result.files,
        "contacts checked": result.contacts, "warnings": result.warnings,
    })  # fmt: skip
    return _to_file(request, details.campaign.id, file.name, done="saved")


@require(Permission.ACT_ON_CAMPAIGNS)
async def preview_fragment(request: Request, staff: Staff) -> Response:
    """``POST`` the draft: the preview fragment alone (htmx swaps it in); see the module doc."""
    data = campaigns_data(request)
    posted = await request.form()
    text, email = _field(posted.get("text")), _field(posted.get("email")).strip()[:500]
    found = await _campaign_file(request, staff, data)  # a file name outside the allowlist: 404, as the page
    if isinstance(found, Response):
        return found
    details = found[0]
    try:
        values = await _preview_values(request, staff, details, request.path_params["file"], text, email)
    except NotFoundError as exc:
        # A contact outside the audience: the pane says so. A 200, as every fragment: htmx swaps in only those.
        values = {"preview": None, "email_error": str(exc), "email": email}
    return staff_access(request).pages.page("_template_preview.html", staff=staff, **values)


@require(Permission.ACT_ON_CAMPAIGNS)
async def frame(request: Request, staff: Staff) -> Response:
    """A draft preview's HTML for its sandboxed frame, under the captured messages' policy; else 404."""
    try:
        details = await run_in_threadpool(get_campaign, campaigns_data(request).db, request.path_params["campaign"])
    except NotFoundError as exc:
        return problem(request, staff, 404, str(exc))
    html = draft_frames(request).get(staff, details.campaign.id, request.path_params["frame"])
    if html is None:
        return problem(request, staff, 404, "this preview is no longer kept: preview the draft again")
    headers = {**NO_STORE, "Content-Security-Policy": CAPTURED_HTML_POLICY, "X-Frame-Options": "SAMEORIGIN"}
    return Response(html, media_type="text/html; charset=utf-8", headers=headers)


@require(Permission.ACT_ON_CAMPAIGNS)
async def revert(request: Request, staff: Staff) -> Response:
    """``POST`` revert to the default (see the module doc); a refusal is one line on the page (409)."""
    data = campaigns_data(request)
    name = request.path_params["file"]
    try:
        details = await run_in_threadpool(get_campaign, data.db, request.path_params["campaign"])
        removed = await run_in_threadpool(revert_template, data.db, data.settings, str(details.campaign.id), name)
    except NotFoundError as exc:
        return problem(request, staff, 404, str(exc))
    except (ValidationError, OutputFileError) as exc:
        return problem(request, staff, 409, str(exc))
    await _audit(request, staff, AuditAction.CAMPAIGN_TEMPLATE_REVERTED, details.campaign.name, {
        "file": name, "removed": removed,
    })  # fmt: skip
    return _to_file(request, details.campaign.id, name, done="reverted")


async def _editor(
    request: Request,
    staff: Staff,
    details: CampaignDetails,
    name: str,
    text: str,
    email: str,
    *,
    errors: list[str] | None = None,
    status: int = 200,
) -> Response:
    data = campaigns_data(request)
    ref = str(details.campaign.id)
    file = parse_name(name, details)
    try:
        values = await _preview_values(request, staff, details, name, text, email)
    except NotFoundError as exc:
        # A contact outside the audience: the page, with the error beside the contact field.
        values = {"preview": None, "email_error": str(exc), "email": email}
        status = max(status, 400)
    try:
        own_directory(data.settings, details)
        folder_problem = None
    except ValidationError as exc:
        folder_problem = str(exc)
    opened = await run_in_threadpool(read_template, data.settings, details, file)
    return staff_access(request).pages.page(
        "template_edit.html",
        staff=staff,
        status=status,
        headers={"Content-Security-Policy": EDITOR_POLICY},
        details=details,
        file=file,
        text=text,
        own=opened.own,
        from_name=opened.from_name,
        refusal=change_refusal(details, file.kind) or folder_problem,
        waves=[wave for wave in details.waves if wave.template == file.kind],
        errors=errors or [],
        draft_limit=MAX_FORM_BODY,
        done=request.query_params.get("done", ""),
        audience=await run_in_threadpool(audience_sample, data.db, ref),
        zones=await run_in_threadpool(preview_zones, data.db, data.settings, ref),
        **values,
    )


async def _preview_values(
    request: Request, staff: Staff, details: CampaignDetails, name: str, text: str, email: str
) -> dict[str, Any]:
    """What the preview fragment shows: the draft rendered for ``email`` (its HTML kept for the frame)."""
    data = campaigns_data(request)
    preview: DraftPreview = await run_in_threadpool(
        preview_draft, data.db, data.settings, data.key, str(details.campaign.id), name, text, email
    )
    frame_name = draft_frames(request).keep(staff, details.campaign.id, preview.html) if preview.html else None
    long_subject = len(preview.subject) > MAX_SUBJECT_CHARS
    return {
        "preview": preview,
        "frame_name": frame_name,
        "cid": str(details.campaign.id),
        "name": name,
        "email": email,
        "email_error": None,
        "long_subject": long_subject,
        "max_subject": MAX_SUBJECT_CHARS,
    }


def _field(value: object) -> str:
    return value if isinstance(value, str) else ""


async def _audit(request: Request, staff: Staff, action: AuditAction, target: str, details: dict[str, Any]) -> None:
    address = request.client.host if request.client else None
    await run_in_threadpool(
        audit.record,
        campaigns_data(request).db,
        action,
        user_id=staff.user_id,
        target=target,
        details={**details, "address": address},
    )


def _to_file(request: Request, campaign_id: int, name: str, done: str | None = None) -> Response:
    pages = staff_access(request).pages
    location = pages.url(CAMPAIGN_TEMPLATE_EDIT, campaign=str(campaign_id), file=name)
    return RedirectResponse(location + (f"?done={done}" if done else ""), status_code=303, headers=NO_STORE)
