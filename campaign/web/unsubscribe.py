"""The unsubscribe page, ``/u/{token}``: RFC 8058 one-click, and a page to leave one event or everything, or come
back.

* ``GET`` (and HEAD) shows the page: the address (partly masked: a forwarded message shows nobody's address in
  full), the event, and buttons for what can be done from where the address stands (leave this event / leave
  everything / subscribe again). A GET never changes anything: scanners and previews fetch every link.
* ``POST`` with ``List-Unsubscribe=One-Click`` (RFC 8058; ``application/x-www-form-urlencoded`` or
  ``multipart/form-data``) suppresses the address from everything at once and answers 200 with a short plain
  page: never a redirect, no cookie needed. The page's forms post ``scope`` = ``event``, ``all`` or
  ``resubscribe`` and get the page again, saying what now holds. Anything else is a plain 400.
* The signed token in the URL is the capability: there is no session, so no cookie to forge requests with. A
  bad token (forged, truncated, another purpose's, or a message that no longer exists) is the plain 404 page
  and nothing is read or written. A body over :data:`MAX_BODY_BYTES` is a 413, unread.
* The page is a Jinja2 template of this package, autoescaped; its one ``<style>`` carries a nonce made per
  response, and its Content-Security-Policy allows that style, forms posting to this site, and nothing else
  (no script, no framing). It works without JavaScript and at phone width, in English, or Spanish for a
  contact whose locale is ``es``.

The rules themselves (what is suppressed, what a re-subscribe may lift) are :mod:`campaign.services.unsubscribe`'s.
"""

from __future__ import annotations

import email.parser
import email.policy
import secrets
from datetime import UTC, datetime
from urllib.parse import parse_qsl

from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response

from campaign.config import Settings
from campaign.models import TrackingKind
from campaign.rules.ip_privacy import IpStorage, stored_ip
from campaign.services import unsubscribe as service
from campaign.services.unsubscribe import Subscription, Visitor
from campaign.store.engine import Database
from campaign.tokens import InvalidTokenError, SigningKeys, verify

MAX_BODY_BYTES = 10 * 1024
"""The largest request body read: a one-click POST or the page's form is a few dozen bytes."""

_MAX_FIELDS = 20
_NO_STORE = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex"}
_TEMPLATES = Environment(
    loader=PackageLoader("campaign.web", "templates"), autoescape=True, undefined=StrictUndefined, auto_reload=False
)

# The page's words. Spanish for a contact whose locale is es (es-ES, es_MX...), English otherwise.
TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Unsubscribe",
        "intro": "Messages about {event} are sent to {address}.",
        "event_button": "Unsubscribe from this event only",
        "all_button": "Unsubscribe from everything",
        "resubscribe_button": "Subscribe again",
        "left_event_title": "Unsubscribed from this event",
        "left_event": "{address} will get no more messages about {event}. Messages about other events still come.",
        "unsubscribed_title": "Unsubscribed",
        "unsubscribed": "{address} will get no more messages from us, about any event.",
        "resubscribed": "You are subscribed again.",
        "blocked_title": "No messages to this address",
        "blocked": "We send no messages to {address}.",
    },
    "es": {
        "title": "Darse de baja",
        "intro": "Los mensajes sobre {event} se envían a {address}.",
        "event_button": "Darme de baja solo de este evento",
        "all_button": "Darme de baja de todo",
        "resubscribe_button": "Volver a suscribirme",
        "left_event_title": "Baja de este evento",
        "left_event": "{address} no recibirá más mensajes sobre {event}. Los mensajes sobre otros eventos siguen.",
        "unsubscribed_title": "Baja confirmada",
        "unsubscribed": "{address} no recibirá más mensajes nuestros, sobre ningún evento.",
        "resubscribed": "Vuelve a estar suscrito.",
        "blocked_title": "Sin mensajes a esta dirección",
        "blocked": "No enviamos mensajes a {address}.",
    },
}

ONE_CLICK_ANSWER = "Unsubscribed: {address} will get no more messages from us.\n"
_BAD_REQUEST = "400 Bad Request\n\nThis address takes List-Unsubscribe=One-Click (RFC 8058), or the form of its page.\n"


class UnsubscribeEndpoint:
    """``/u/{token}``: the page (GET) and the changes (POST), on one database and key ring."""

    def __init__(self, db: Database, settings: Settings, keys: SigningKeys) -> None:
        self.db = db
        self.keys = keys
        self.ip_storage = IpStorage(settings.tracking.ip)

    async def respond(self, request: Request) -> Response:
        """GET or HEAD: the page; POST: one-click or the page's form (see the module doc)."""
        message_id = self._message_id(request)
        if request.method == "POST":
            return await self._post(request, message_id)
        found = await run_in_threadpool(service.subscription, self.db, message_id)
        if found is None:
            raise HTTPException(404)
        return self._page(request, found, notice=None)

    def _message_id(self, request: Request) -> int:
        try:
            return verify(self.keys, TrackingKind.UNSUBSCRIBE, request.path_params["token"]).message_id
        except InvalidTokenError:
            raise HTTPException(404) from None

    async def _post(self, request: Request, message_id: int) -> Response:
        fields = form_fields(request.headers.get("content-type", ""), await read_body(request, MAX_BODY_BYTES))
        if fields.get("List-Unsubscribe") == "One-Click":
            scope = "one-click"
        elif (scope := fields.get("scope", "")) not in ("event", "all", "resubscribe"):
            return PlainTextResponse(_BAD_REQUEST, status_code=400, headers=_NO_STORE)
        now = datetime.now(UTC)
        visitor = Visitor(
            stored_ip(request.client.host if request.client else None, self.ip_storage),
            request.headers.get("user-agent"),
        )
        if scope in ("one-click", "all"):
            change = await run_in_threadpool(service.unsubscribe_everything, self.db, message_id, now, visitor)
        elif scope == "event":
            change = await run_in_threadpool(service.unsubscribe_event, self.db, message_id, now, visitor)
        else:
            change = await run_in_threadpool(service.resubscribe, self.db, message_id)
        if change is None:
            raise HTTPException(404)
        if scope == "one-click":
            address = mask_address(change.subscription.recipient.email)
            return PlainTextResponse(ONE_CLICK_ANSWER.format(address=address), headers=_NO_STORE)
        resubscribed = scope == "resubscribe" and change.changed and change.subscription.suppressed is None
        return self._page(request, change.subscription, notice="resubscribed" if resubscribed else None)

    def _page(self, request: Request, found: Subscription, *, notice: str | None) -> Response:
        recipient = found.recipient
        language = "es" if (recipient.locale or "").lower().replace("_", "-").split("-")[0] == "es" else "en"
        words = TEXTS[language]
        if found.blocked:
            state, offers = "blocked", []
        elif found.unsubscribed:
            state, offers = "unsubscribed", ["resubscribe"]
        elif found.left_event:
            state, offers = "left_event", ["all", "resubscribe"]
        else:
            state, offers = "subscribed", ["event", "all"]
        nonce = secrets.token_urlsafe(16)
        html = _TEMPLATES.get_template("unsubscribe.html").render(
            language=language,
            words=words,
            state=state,
            offers=offers,
            notice=words[notice] if notice else None,
            address=mask_address(recipient.email),
            event=recipient.event_title,
            # Relative: the form posts back to this very URL, whatever path prefix a proxy serves it under.
            action=request.path_params["token"],
            nonce=nonce,
        )
        policy = (
            f"default-src 'none'; style-src 'nonce-{nonce}'; form-action 'self'; base-uri 'none'; "
            "frame-ancestors 'none'"
        )
        return HTMLResponse(html, headers={**_NO_STORE, "Content-Security-Policy": policy})


def mask_address(address: str) -> str:
    """The address with most of its local part hidden (``g***0@example.org``): enough for its owner to know it."""
    local, at, domain = address.rpartition("@")
    if not at:
        local, domain = address, ""
    shown = local[:1] + "***" + (local[-1:] if len(local) > 2 else "")
    return f"{shown}{at}{domain}"


class BodyTooLarge(HTTPException):
    """A 413: the request's body exceeds ``limit`` bytes; ``declared`` is its Content-Length (None when it was sent
    chunked, found too large while read). An HTTPException, so that where nobody catches it the app's plain 413
    page answers; staff pages catch it to answer with the page itself (:func:`campaign.web.auth.require`)."""

    def __init__(self, limit: int, declared: int | None) -> None:
        super().__init__(413)
        self.limit = limit
        self.declared = declared


async def read_body(request: Request, limit: int) -> bytes:
    """The request's body, or :class:`BodyTooLarge` (a 413) as soon as it is known to exceed ``limit`` bytes (by its
    Content-Length, or while it is read: a chunked body declares none); never more than ``limit`` bytes are kept."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit, int(declared))
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge(limit, None)
    return bytes(body)


def form_fields(content_type: str, body: bytes) -> dict[str, str]:
    """The text fields of a form body (the first value of each name), urlencoded or multipart; nothing for any
    other type or a body that does not parse.

    Multipart is read with the standard library's MIME parser: a form of a few short fields needs no more (and
    no dependency), and files are skipped.
    """
    media = content_type.split(";", 1)[0].strip().lower()
    fields: dict[str, str] = {}
    if media == "application/x-www-form-urlencoded":
        try:
            pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=_MAX_FIELDS)
        except ValueError:  # too many fields
            return {}
        for name, value in pairs:
            fields.setdefault(name, value)
    elif media == "multipart/form-data":
        try:
            head = f"Content-Type: {content_type}\r\n\r\n".encode("ascii")
        except UnicodeEncodeError:
            return {}
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
        if not message.is_multipart():
            return {}
        parts = list(message.iter_parts())
        if len(parts) > _MAX_FIELDS:
            return {}
        for part in parts:
            param = part.get_param("name", header="content-disposition")
            # A plain name, not an RFC 2231 tuple (no form sends one) nor a file.
            if not isinstance(param, str) or part.get_filename() is not None:
                continue
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                fields.setdefault(param, payload.decode("utf-8", "replace"))
    return fields
