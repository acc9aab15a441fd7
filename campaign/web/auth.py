"""Staff access on the web: the login form, logout, and :func:`require`, the guard of every staff page and action.

Tracking, unsubscribe and webhook routes are public and never pass through here.

* ``GET /login`` shows the form; ``POST /login`` logs in (:class:`~campaign.services.sessions.Logins`: argon2id,
  throttled, audited). A wrong password, an unknown name and a disabled user get the same page. Too many failures
  are a 429 with ``Retry-After``. Success is a 303 to ``next`` when it is a staff page of the route table
  (:func:`~campaign.rules.routes.staff_destination`: no open redirect), else to the dashboard.
* **An ended session**: a request whose session cookie opens no session (idle for ``web.session_idle_minutes``,
  past ``web.session_max_hours``, logged out elsewhere, the user disabled) is sent to the login page, which says
  that the session ended (:data:`SESSION_ENDED`: the same words whoever the cookie was for, so it tells nothing
  about any user) while that cookie is there (a login replaces it, a logout deletes it: a page's background
  requests must not take the words away before the person sees them). A POST has no ``next`` of its own to
  return to: its ``next`` is the page its form was on, the ``Referer`` when it is this site's (the request's own
  host, or ``links.public_url``'s) and a staff page of the route table, else the POST's own path when that is a
  staff page (the template editor posts to itself); else none. Staff pages send the ``Referer`` to this site only
  (``Referrer-Policy: same-origin``, :mod:`.pages`). What was typed is not read (the request has no session, so
  no CSRF token to check it against): the template editor's page script keeps its draft in the tab
  (``static/editor_draft.js``). A page's own background request (htmx: ``HX-Request``; the editor's live preview,
  the campaign page's statuses) gets a one-line 403 instead of the redirect, which htmx does not swap in: the
  page stays as it is, not replaced in part by the login form.
* **The session cookie** holds a random token, new at every login (a cookie the browser had before is never
  promoted: no session fixation), ``HttpOnly``, ``SameSite=Lax``, ``Path=/``, and when ``links.public_url`` is
  https ``Secure`` with the ``__Host-`` prefix (no subdomain can set or shadow it). Lax rather than Strict: a staff
  member following a link from an email (a report, "the campaign was paused") must arrive logged in, and Lax sends
  the cookie only on top-level GET navigations, which change nothing here; every action is a POST with a CSRF
  token, which another site cannot read.
* **The device cookie** (``campaign-device``, prefixed as the session's) holds the device token of the browser's
  last login (:mod:`campaign.services.sessions`): with it, that user's logins from this browser are throttled on
  their own, so others' failures on the name cannot lock them out. ``SameSite=Strict`` (only this site's own
  login form sends it), ``HttpOnly``, kept a year and across logouts: it opens nothing by itself.
* **CSRF**: every unsafe request (POST, PUT, PATCH, DELETE) to a staff route must carry the session's CSRF token,
  in the form field ``csrf_token`` (or an ``X-CSRF-Token`` header), compared in constant time; otherwise it is
  refused with a 403 and a one-line body, before anything is done. A form body over :data:`MAX_FORM_BODY` is a 413
  before it is parsed (and never read beyond the limit): the page of the endpoint's ``too_large`` (the template
  editor: the editor, saying the limit), else a page saying it in one line; nothing is done, and without its body
  the request's token is unknown, so that answer shows only what a GET of the page would. The login form, before
  any session exists,
  carries the random value of a login cookie of its own (double submit: another site can neither read nor, with
  the ``__Host-`` prefix, set it).
* :func:`require` (``@require(Permission.VIEW_REPORTS)`` on an endpoint taking the request and the
  :class:`~campaign.services.sessions.Staff`): a visitor not logged in is sent to the login page (303, with ``next``
  for a GET), a user whose role lacks the permission gets the 403 page, and the endpoint runs only for the others.
  A query parameter or form field holding a NUL character is a 400 with a one-line body before the endpoint runs:
  no text the app keeps or looks up may hold one, and PostgreSQL refuses it in any text value (a lookup by name
  with one was a 500 there, "no such name" on SQLite).
"""

from __future__ import annotations

import functools
import hmac
import math
import re
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from urllib.parse import urlencode, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from campaign.config import Settings
from campaign.models import Permission
from campaign.rules.access import may
from campaign.rules.routes import DASHBOARD, LOGIN, staff_destination
from campaign.services.mailbox import capture_mailbox
from campaign.services.sessions import Logins, Staff
from campaign.store.engine import Database
from campaign.tokens import SigningKeys
from campaign.web.pages import NO_STORE, SCRIPT_PAGE_POLICY, StaffPages
from campaign.web.unsubscribe import BodyTooLarge, form_fields, read_body

StaffEndpoint = Callable[[Request, Staff], Awaitable[Response]]
"""A staff endpoint: the request, and the logged-in user it is for."""
Endpoint = Callable[[Request], Awaitable[Response]]
TooLargeEndpoint = Callable[[Request, Staff, BodyTooLarge], Awaitable[Response]]
"""What a staff endpoint answers to a form over :data:`MAX_FORM_BODY` (unread): a page, changing nothing."""

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
"""Methods that change nothing, so need no CSRF token."""
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
MAX_LOGIN_BODY = 10 * 1024
"""The largest login form read (a name, a password, two tokens)."""
MAX_FORM_BODY = 1024 * 1024
"""The largest body of a staff form (an event's description, a template): a larger one is a 413 before it is
parsed, so a form post cannot fill the server's memory. Uploads are streamed to disk instead (:mod:`.uploads`)."""

CSRF_REFUSED = "403 Forbidden: this form's security token is missing or out of date; reload the page and try again.\n"
NUL_REFUSED = "400 Bad Request: a field holds a NUL character, which no text here may hold.\n"
WRONG_LOGIN = "Wrong user name or password."
SESSION_ENDED = (
    "Your session ended ({idle} minutes without activity, or {hours} hours after logging in). Log in again to continue."
)
"""What the login page says to a browser whose session cookie opens no session any more."""
LOGGED_OUT_FRAGMENT = (
    "403 Forbidden: not logged in (the session ended); the page's own links and buttons log in again.\n"
)
"""The answer to a page's background request (htmx) without a session, in place of the redirect to the login."""
DEVICE_COOKIE_SECONDS = 365 * 24 * 3600
"""How long a browser keeps the device token of its last login (:mod:`campaign.services.sessions`)."""
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)
_UNKNOWN = object()


class StaffAccess:
    """The login and logout endpoints and the session of each request, for one app (``app.state.staff_access``)."""

    def __init__(self, db: Database, settings: Settings, keys: SigningKeys | None = None) -> None:
        self.db = db
        self.logins = Logins(db, settings.web, device_keys=keys)
        # In capture mode every page's menu leads to the mailbox (a test send's page says to look there).
        self.pages = StaffPages(settings.links.public_url, mailbox_shown=capture_mailbox(settings) is not None)
        self.secure = settings.links.public_url.lower().startswith("https:")
        prefix = "__Host-" if self.secure else ""
        self.session_cookie = f"{prefix}campaign-session"
        self.login_cookie = f"{prefix}campaign-login"
        self.device_cookie = f"{prefix}campaign-device"
        self._max_age = int(self.logins.lifetime.total_seconds())
        self.session_ended = SESSION_ENDED.format(
            idle=settings.web.session_idle_minutes, hours=f"{settings.web.session_max_hours:g}"
        )
        public = urlsplit(settings.links.public_url)
        self._public_origin = (public.scheme.lower(), public.netloc.lower())

    async def login(self, request: Request) -> Response:
        """``/login``: the form (GET) or a login (POST)."""
        if request.method == "POST":
            return await self._log_in(request)
        destination = staff_destination(request.query_params.get("next", ""))
        if await self.staff_of(request) is not None:
            return self._redirect(destination)
        # A cookie that opens no session: say why the visitor is here.
        ended = bool(request.cookies.get(self.session_cookie))
        return self._form(request, destination, notice=self.session_ended if ended else None)

    async def logout(self, request: Request) -> Response:
        """``POST /logout``: end the session (CSRF-checked) and go to the login page."""
        staff = await self.staff_of(request)
        if staff is None:
            return self.to_login(request)
        if not await self.csrf_ok(request, staff):
            return csrf_refused()
        await run_in_threadpool(self.logins.logout, staff, _address(request), datetime.now(UTC))
        response = RedirectResponse(self.pages.url(LOGIN), status_code=303, headers=NO_STORE)
        response.delete_cookie(self.session_cookie, path="/", secure=self.secure, httponly=True, samesite="lax")
        return response

    async def staff_of(self, request: Request) -> Staff | None:
        """The logged-in user of ``request`` (looked up once per request), or None."""
        staff = getattr(request.state, "staff", _UNKNOWN)
        if staff is _UNKNOWN:
            token = request.cookies.get(self.session_cookie, "")
            staff = await run_in_threadpool(self.logins.session, token, datetime.now(UTC)) if token else None
            request.state.staff = staff
        assert staff is None or isinstance(staff, Staff)
        return staff

    async def csrf_ok(self, request: Request, staff: Staff) -> bool:
        """Whether the unsafe ``request`` carries ``staff``'s CSRF token (header, or form field)."""
        given = request.headers.get(CSRF_HEADER)
        # Read within the limit first, then kept where Starlette's request.form() and body() read it from; with the
        # token in the header too, or an endpoint's own request.form() would read a body of any size.
        request._body = await read_body(request, MAX_FORM_BODY)
        if given is None:
            form = await request.form()
            field = form.get(CSRF_FIELD)
            given = field if isinstance(field, str) else ""
        return _same(given, staff.csrf_token)

    def to_login(self, request: Request) -> Response:
        """A 303 to the login page, with ``next`` naming the staff page to come back to: the page asked for (a GET),
        or the page the form was on (:meth:`_form_page`)."""
        if request.headers.get("HX-Request") == "true":
            return PlainTextResponse(LOGGED_OUT_FRAGMENT, status_code=403, headers=NO_STORE)
        location = self.pages.url(LOGIN)
        if request.method in ("GET", "HEAD"):
            wanted = staff_destination(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
        else:
            wanted = self._form_page(request)
        if wanted is not None:
            location += "?" + urlencode({"next": wanted})
        return RedirectResponse(location, status_code=303, headers=NO_STORE)

    async def too_large(self, request: Request, staff: Staff, refused: BodyTooLarge) -> Response:
        """The answer to a staff form over the limit whose endpoint has none of its own: one line, 413."""
        message = (
            f"The form sent is {body_size(refused)}: at most {megabytes(refused.limit)} can be sent. Nothing was done."
        )
        return self.pages.problem(staff, 413, message)

    def _form_page(self, request: Request) -> str | None:
        """The staff page an unsafe request's form was on (see the module doc), or None."""
        referer = request.headers.get("referer", "")
        own_origins = {self._public_origin, (request.url.scheme, request.headers.get("host", "").lower())}
        try:
            parts = urlsplit(referer)
        except ValueError:  # a malformed address ("http://[x/"): not a page of ours
            parts = None
        if parts is not None and (parts.scheme.lower(), parts.netloc.lower()) in own_origins:
            # Its path as the browser asked for it, under the published prefix; the routes know it without.
            prefix = self.pages.prefix
            if parts.path.startswith(prefix + "/"):
                local = parts.path[len(prefix) :] + (f"?{parts.query}" if parts.query else "")
                if (page := staff_destination(local)) is not None:
                    return page
        return staff_destination(request.url.path)

    async def _log_in(self, request: Request) -> Response:
        fields = form_fields(request.headers.get("content-type", ""), await read_body(request, MAX_LOGIN_BODY))
        if not _same(fields.get(CSRF_FIELD, ""), request.cookies.get(self.login_cookie, "")):
            return csrf_refused()
        destination = staff_destination(fields.get("next", ""))
        name = fields.get("name", "")
        now = datetime.now(UTC)
        password, zone = fields.get("password", ""), fields.get("zone")
        device = request.cookies.get(self.device_cookie)
        result = await run_in_threadpool(self.logins.login, name, password, _address(request), now, zone, device)
        if result.retry_after is not None:
            minutes = math.ceil(result.retry_after.total_seconds() / 60)
            error = f"Too many failed logins. Try again in {minutes} minute{'s' if minutes != 1 else ''}."
            retry = str(math.ceil(result.retry_after.total_seconds()))
            return self._form(request, destination, name=name, error=error, status=429, headers={"Retry-After": retry})
        if result.busy_for is not None:
            error = "The server is checking other logins just now. Try again in a few seconds."
            retry = str(math.ceil(result.busy_for.total_seconds()))
            return self._form(request, destination, name=name, error=error, status=503, headers={"Retry-After": retry})
        if result.staff is None or result.token is None:
            return self._form(request, destination, name=name, error=WRONG_LOGIN)
        # The session this browser had (another user's, say) ends: one browser, one session.
        if (previous := await self.staff_of(request)) is not None:
            await run_in_threadpool(self.logins.logout, previous, _address(request), now)
        response = self._redirect(destination)
        response.set_cookie(
            self.session_cookie,
            result.token,
            max_age=self._max_age,
            path="/",
            secure=self.secure,
            httponly=True,
            samesite="lax",
        )
        response.delete_cookie(self.login_cookie, path="/", secure=self.secure, httponly=True, samesite="lax")
        if result.device is not None:
            # Kept across sessions and logouts: it only exempts this browser from others' failed logins. Strict:
            # only this site's own login form sends it.
            response.set_cookie(
                self.device_cookie,
                result.device,
                max_age=DEVICE_COOKIE_SECONDS,
                path="/",
                secure=self.secure,
                httponly=True,
                samesite="strict",
            )
        return response

    def _form(
        self,
        request: Request,
        destination: str | None,
        *,
        name: str = "",
        error: str | None = None,
        notice: str | None = None,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> Response:
        # The login cookie's value is kept while it looks like one of ours, so a failed attempt's page is the same
        # page (and two tabs work); any other value is replaced.
        token = request.cookies.get(self.login_cookie, "")
        if not _TOKEN.fullmatch(token):
            token = secrets.token_urlsafe(32)
        response = self.pages.page(
            "login.html",
            staff=None,
            status=status,
            # Its one script (static/zone.js) says the browser's time zone; the page works without it.
            headers={"Content-Security-Policy": SCRIPT_PAGE_POLICY, **(headers or {})},
            csrf_token=token,
            destination=destination or "",
            name=name,
            error=error,
            notice=notice,
        )
        response.set_cookie(self.login_cookie, token, path="/", secure=self.secure, httponly=True, samesite="lax")
        return response

    def _redirect(self, destination: str | None) -> Response:
        location = self.pages.prefix + (destination or DASHBOARD.path())
        return RedirectResponse(location, status_code=303, headers=NO_STORE)


def require(
    permission: Permission, *, too_large: TooLargeEndpoint | None = None
) -> Callable[[StaffEndpoint], Endpoint]:
    """Guard a staff endpoint (see the module doc): login, then the CSRF token of an unsafe request, then the
    role's ``permission``; the endpoint gets the request and the :class:`Staff`. A form over :data:`MAX_FORM_BODY`
    gets ``too_large``'s page (it must change nothing: the form's token was not read), else one line."""

    def guard(endpoint: StaffEndpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def guarded(request: Request) -> Response:
            access: StaffAccess = request.app.state.staff_access
            staff = await access.staff_of(request)
            if staff is None:
                return access.to_login(request)
            if request.method not in SAFE_METHODS:
                try:
                    token_ok = await access.csrf_ok(request, staff)
                except BodyTooLarge as refused:
                    # Unread, so its token is unknown: a page as a GET would show it (the role checked first).
                    if not may(staff.role, permission):
                        return access.pages.page("forbidden.html", staff=staff, status=403, permission=permission)
                    return await (too_large or access.too_large)(request, staff, refused)
                if not token_ok:
                    return csrf_refused()
            if not may(staff.role, permission):
                return access.pages.page("forbidden.html", staff=staff, status=403, permission=permission)
            if await _holds_nul(request):
                return PlainTextResponse(NUL_REFUSED, status_code=400, headers=NO_STORE)
            return await endpoint(request, staff)

        return guarded

    return guard


def staff_access(request: Request) -> StaffAccess:
    """The app's :class:`StaffAccess` (its database, pages and logins), for a staff endpoint."""
    access: StaffAccess = request.app.state.staff_access
    return access


async def _holds_nul(request: Request) -> bool:
    """Whether a query parameter, or a text field of the form an unsafe request's CSRF check read, holds NUL."""
    if any("\x00" in value for _, value in request.query_params.multi_items()):
        return True
    if request.method in SAFE_METHODS:
        return False
    form = await request.form()  # parsed already (the CSRF check read the body within its limit): kept by Starlette
    return any(isinstance(value, str) and "\x00" in value for _, value in form.multi_items())


def megabytes(size: int) -> str:
    """``size`` bytes in MB (of 1024 × 1024 bytes), to a tenth: ``5.2 MB``, ``1 MB``."""
    return f"{size / 2**20:.1f}".removesuffix(".0") + " MB"


def body_size(refused: BodyTooLarge) -> str:
    """How large a refused body was: its Content-Length, or (sent chunked, stopped at the limit) more than that."""
    return megabytes(refused.declared) if refused.declared is not None else f"more than {megabytes(refused.limit)}"


def csrf_refused() -> Response:
    """The answer to an unsafe request without its CSRF token: 403, one line."""
    return PlainTextResponse(CSRF_REFUSED, status_code=403, headers=NO_STORE)


def token_matches(given: str, staff: Staff) -> bool:
    """Whether ``given`` is ``staff``'s CSRF token (compared in constant time), for an endpoint that reads its
    body itself (an upload: :mod:`campaign.web.uploads`)."""
    return _same(given, staff.csrf_token)


def _same(given: str, expected: str) -> bool:
    """Whether a token sent equals the expected one, in constant time; an empty one never does."""
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def _address(request: Request) -> str | None:
    return request.client.host if request.client else None
