"""The capture mailbox on the dashboard: what the built-in capture server received, as the recipients would see it.

Only in capture mode (``smtp.mode = "capture"``; otherwise every page here is the 404 page), for anyone who may
view reports.

* :data:`~campaign.rules.routes.MAILBOX` lists the newest messages (date, to, subject).
* :data:`~campaign.rules.routes.MAILBOX_MESSAGE` shows one: its headers as text (escaped, like everything the
  templates show), the calendar parts and the plain-text part as text, and the HTML part in an
  ``<iframe sandbox="">`` (no script, no forms, no plugins, an origin of its own) loading
  :data:`~campaign.rules.routes.MAILBOX_HTML`. The page's own policy adds ``frame-src 'self'`` for that frame.
* :data:`~campaign.rules.routes.MAILBOX_HTML` answers the HTML part under :data:`CAPTURED_HTML_POLICY`: no
  script, nothing fetched from anywhere (images only as ``data:``, so a message's tracking pixel is never
  loaded and viewing it records no open), inline styles (how mail is styled), sandboxed even when opened on its
  own, and framed only by this site's pages. A link clicked inside it is followed as the recipient's would be.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from campaign.exceptions import NotFoundError
from campaign.models import Permission
from campaign.services.mailbox import capture_mailbox, latest_captured, open_captured
from campaign.services.sessions import Staff
from campaign.web.auth import require, staff_access
from campaign.web.dashboard import dashboard_data, problem
from campaign.web.pages import NO_STORE, PAGE_POLICY

CAPTURED_HTML_POLICY = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; sandbox; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'self'"
)
"""The Content-Security-Policy of a captured message's HTML."""
FRAMING_PAGE_POLICY = f"{PAGE_POLICY}; frame-src 'self'"
"""The staff page policy, with this site's frames allowed: the message page's."""

NOT_CAPTURING = "there is no mailbox: messages go to a relay, not the capture server (smtp.mode)"


@require(Permission.VIEW_REPORTS)
async def mailbox_page(request: Request, staff: Staff) -> Response:
    """The newest captured messages."""
    directory = capture_mailbox(dashboard_data(request).settings)
    if directory is None:
        return problem(request, staff, 404, NOT_CAPTURING)
    captured = await run_in_threadpool(latest_captured, directory)
    return staff_access(request).pages.page("mailbox.html", staff=staff, captured=captured)


@require(Permission.VIEW_REPORTS)
async def mailbox_message(request: Request, staff: Staff) -> Response:
    """One captured message: headers, calendar and text parts, and its HTML in a sandboxed frame."""
    directory = capture_mailbox(dashboard_data(request).settings)
    if directory is None:
        return problem(request, staff, 404, NOT_CAPTURING)
    try:
        message = await run_in_threadpool(open_captured, directory, request.path_params["message"])
    except NotFoundError as exc:
        return problem(request, staff, 404, str(exc))
    return staff_access(request).pages.page(
        "mailbox_message.html",
        staff=staff,
        message=message,
        headers={"Content-Security-Policy": FRAMING_PAGE_POLICY},
    )


@require(Permission.VIEW_REPORTS)
async def mailbox_html(request: Request, staff: Staff) -> Response:
    """A captured message's HTML part, under :data:`CAPTURED_HTML_POLICY`; 404 when it has none."""
    directory = capture_mailbox(dashboard_data(request).settings)
    try:
        if directory is None:
            raise NotFoundError(NOT_CAPTURING)
        message = await run_in_threadpool(open_captured, directory, request.path_params["message"])
        if message.html is None:
            raise NotFoundError(f"captured message {message.name} has no HTML part")
    except NotFoundError as exc:
        return problem(request, staff, 404, str(exc))
    headers = {**NO_STORE, "Content-Security-Policy": CAPTURED_HTML_POLICY, "X-Frame-Options": "SAMEORIGIN"}
    return Response(message.html, media_type="text/html; charset=utf-8", headers=headers)
