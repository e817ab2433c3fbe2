"""Inbound Rozper webhooks: verify the signature on the raw body, de-duplicate, dispatch.

Order (protocols.md §3.4): the `Rozper-Signature` header is checked against the raw bytes
(±tolerance, every configured secret, constant time) before the body is parsed; only then is
the JSON read and the event id claimed in the persistent `SeenEvents` store. Answers:
200 accepted or duplicate (a duplicate is not handled again), 401 bad or missing signature,
400 malformed body after a valid signature, 409 while the same id is being handled (the
sender retries), 500 when the handler failed (the claim is released so the retry is handled).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from agent_runtime.server.edge import BodyTooLarge, read_body
from agent_runtime.carrier.signatures import DEFAULT_TOLERANCE_S, SignatureError, verify
from agent_runtime.server.errors import error_body, new_request_id
from agent_runtime.webhooks.seen import Claim, SeenEvents

log = logging.getLogger("agent_runtime.webhooks")

Handler = Callable[[str, dict[str, Any]], Awaitable[None]]
MAX_BODY = 256 * 1024


def _error(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
    return status, error_body(code, message, new_request_id())  # Rozper's envelope, no detail


class InboundWebhooks:
    def __init__(
        self,
        secrets: Sequence[str],
        seen: SeenEvents,
        handler: Handler,
        tolerance_s: int = DEFAULT_TOLERANCE_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(secrets, str):
            raise TypeError("secrets must be a sequence of strings, not one string")
        self._secrets = tuple(secrets)
        self.seen = seen
        self._handler = handler
        self._tolerance_s = tolerance_s
        self._clock = clock

    def _unverified(self, header: str | None, body: bytes) -> str | None:
        """None when the signature verifies, else a reason for the log (never for the sender)."""
        if not self._secrets:
            return "no ROZPER_SIGNING_SECRETS configured"  # fail closed, even in development
        if header is None:
            return "missing Rozper-Signature"
        try:
            verify(header, body, self._secrets, self._clock(), self._tolerance_s)
        except SignatureError as exc:
            return exc.reason
        return None

    async def receive(self, header: str | None, body: bytes) -> tuple[int, dict[str, Any]]:
        problem = self._unverified(header, body)
        if problem is not None:
            log.warning("inbound webhook refused: %s", problem)
            return _error(401, "unauthorized", "signature verification failed")
        try:
            event = json.loads(body)
            event_id, event_type = event["id"], event["type"]
            if not (isinstance(event_id, str) and event_id and isinstance(event_type, str) and event_type):
                raise TypeError("id and type must be non-empty strings")
        except (ValueError, KeyError, TypeError):
            return _error(400, "bad_request", "body must be a JSON event with string id and type")
        claim = await self.seen.claim(event_id, event_type)
        if claim is Claim.DONE:
            return 200, {"received": True, "duplicate": True}
        if claim is Claim.BUSY:
            return _error(409, "conflict", "this event is being handled; retry later")
        try:
            await self._handler(event_type, event)
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await self.seen.release(event_id)
            if not isinstance(exc, Exception):
                raise
            log.exception("inbound webhook handler failed", extra={"event_id": event_id})
            return _error(500, "server_error", "the event could not be handled; retry")
        await self.seen.done(event_id)
        return 200, {"received": True}


def webhook_endpoint(inbound: InboundWebhooks) -> Callable[[Request], Awaitable[Response]]:
    """The Starlette endpoint for `POST /rozper/webhooks`: raw bytes in, verdict out."""

    async def endpoint(request: Request) -> Response:
        try:
            body = await read_body(request, MAX_BODY)
        except BodyTooLarge:
            status, payload = _error(413, "bad_request", "body too large")
            return JSONResponse(payload, status_code=status)
        status, payload = await inbound.receive(request.headers.get("rozper-signature"), body)
        error = payload.get("error")
        headers = {"Request-Id": error["request_id"]} if isinstance(error, dict) else None
        return JSONResponse(payload, status_code=status, headers=headers)

    return endpoint
