"""``POST /hooks/registration``: registrations pushed by a webinar platform (Zoom's webhook, or a generic JSON body),
signed with Zoom's v0 scheme (:mod:`campaign.rules.webhook_signatures`) under ``CAMPAIGN_REGISTRATION_HOOK_SECRET``.

The answers, each with ``Cache-Control: no-store``:

* **404**, the plain page of an unknown path, when the secret is not set: the endpoint is off, and nothing is
  read or recorded (logged once, for whoever wonders why the platform's deliveries fail).
* **413** when the body exceeds :data:`MAX_BODY_BYTES` (by its Content-Length, or while it is read: reading stops
  at the limit).
* **401** with one plain line when the signature headers are missing, the timestamp is more than five minutes
  from now either way (a replay), or the signature does not match the body. Checked before the body is parsed:
  nobody unsigned gets a parser's attention.
* **400** with one plain line when the body is not JSON or does not fit its format
  (:mod:`campaign.services.registration_hooks` names the field).
* **200** with JSON otherwise: Zoom's ``endpoint.url_validation`` answered (``plainToken``, ``encryptedToken``);
  a delivery that is not for us (another webinar, another Zoom event, a pending registration) ``{"result":
  "ignored", "reason": ...}`` and a log line; a recorded one ``{"result": "recorded", "events": [...], "added": n,
  "known": n, "not_contacts": [...]}``, the registrants who are not contacts also logged (addresses masked).
  Zoom retries what is not a 2xx, so a delivery that is valid but not ours is a 200, never an error.

The secret is never logged nor shown; the URL-validation challenge is signed like every request, as Zoom signs it
(answered unsigned, it would hand anyone the HMAC of a message of their choosing: a forged signature).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from campaign.exceptions import NotFoundError, ValidationError
from campaign.rules.webhook_signatures import SIGNATURE_HEADER, TIMESTAMP_HEADER, refusal, url_validation_answer
from campaign.secrets import REGISTRATION_HOOK_SECRET_ENV
from campaign.services.registration_hooks import plain_token, receive
from campaign.store.engine import Database
from campaign.web.unsubscribe import mask_address, read_body

MAX_BODY_BYTES = 64 * 1024
"""The largest body read: a Zoom registration is a few kilobytes; a generic batch of several hundred fits."""

log = logging.getLogger("campaign.web.hooks")

_NO_STORE = {"Cache-Control": "no-store"}


class RegistrationHook:
    """The endpoint on one database and secret (None: off); ``clock`` gives the time the signature is checked at."""

    def __init__(
        self, db: Database, secret: bytes | None, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.db = db
        self._secret = secret
        self.clock = clock
        self._told_off = False

    async def respond(self, request: Request) -> Response:
        """Check, read and record a delivery (see the module doc)."""
        if self._secret is None:
            if not self._told_off:
                log.warning("registration webhook called, but it is off: %s is not set", REGISTRATION_HOOK_SECRET_ENV)
                self._told_off = True
            raise HTTPException(404)
        body = await read_body(request, MAX_BODY_BYTES)
        now = self.clock()
        headers = request.headers
        reason = refusal(self._secret, headers.get(TIMESTAMP_HEADER), headers.get(SIGNATURE_HEADER), body, now)
        if reason is not None:
            log.warning("registration webhook refused: %s", reason)
            return _line(401, reason)
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):  # not UTF-8 or not JSON; nested deeper than the parser goes
            return _line(400, "the body is not JSON")
        try:
            token = plain_token(document)
            if token is not None:
                return JSONResponse(url_validation_answer(self._secret, token), headers=_NO_STORE)
            outcome = await asyncio.to_thread(receive, self.db, document, now)
        except (ValidationError, NotFoundError) as exc:
            return _line(400, str(exc))
        if outcome.ignored is not None:
            log.info("registration webhook ignored a delivery: %s", outcome.ignored)
        else:
            log.info(
                "registration webhook: events=%s added=%d known=%d",
                ",".join(outcome.events),
                outcome.added,
                outcome.known,
            )
        if outcome.not_contacts:
            log.info(
                "registration webhook: %d registrant(s) not contacts, not recorded: %s",
                len(outcome.not_contacts),
                ", ".join(mask_address(a) for a in outcome.not_contacts),
            )
        return JSONResponse(outcome.as_dict(), headers=_NO_STORE)


def _line(status: int, text: str) -> Response:
    # One line: a reason quotes the sender's values, so a line break in one must not start a second line.
    return PlainTextResponse(" ".join(text.split()) + "\n", status_code=status, headers=_NO_STORE)
