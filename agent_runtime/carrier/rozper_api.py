"""An async client for Rozper's REST API (`/v2/calls`, `/v2/account`) over httpx.

    async with RozperClient.from_env() as rozper:
        call = await rozper.calls.create(to="+15559870002", from_="+15551230001",
                                         url="https://agent.example.com/rozper/voice")

Guarantees: one `Idempotency-Key` per logical `create` (reused on each of its retries, so a
timeout plus retry never places two calls); 429 waits out `Retry-After` (bounded); 5xx and
connection errors are retried with backoff only for idempotent requests (GET, or a POST
with an Idempotency-Key); other 4xx are never retried; every error is a typed `RozperError`.
The API key is sent only in the Authorization header: never logged, never in a repr.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import os
import random
import re
import uuid
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import anyio
import httpx
from pydantic import BaseModel, ConfigDict, Field

from agent_runtime.config import ConfigError

log = logging.getLogger("agent_runtime.rozper_api")
DEFAULT_BASE_URL = "https://api.rozper.com"
E164 = re.compile(r"^\+[1-9]\d{1,14}$")


# ---------------------------------------------------------------------------- errors


class RozperError(Exception):
    """An error answer (the envelope's fields) or, with `status=None`, no answer at all."""

    default_code = "error"

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None, request_id: str | None = None,
                 param_errors: list[dict[str, Any]] | None = None, idempotency_key: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code or self.default_code
        self.request_id = request_id
        self.param_errors = param_errors or []
        # Pass it back to `create` to retry the same logical attempt later without a second call.
        self.idempotency_key = idempotency_key

    def __str__(self) -> str:
        where = f" (request {self.request_id})" if self.request_id else ""
        return f"{self.status or 'no answer'} {self.code}: {self.message}{where}"


class BadRequest(RozperError):
    default_code = "bad_request"


class Unauthorized(RozperError):
    default_code = "unauthorized"


class Forbidden(RozperError):
    default_code = "forbidden"


class NotFound(RozperError):
    default_code = "not_found"


class Conflict(RozperError):
    default_code = "conflict"


class InvalidParam(RozperError):
    default_code = "invalid_param"


class RateLimited(RozperError):
    default_code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float | None = None, **fields: Any) -> None:
        super().__init__(message, **fields)
        self.retry_after = retry_after


class ServerError(RozperError):
    default_code = "server_error"


class ConnectionFailed(RozperError):
    """No HTTP answer (refused, reset, timed out); `status` is None."""

    default_code = "connection_error"


_BY_CODE: dict[str, type[RozperError]] = {
    cls.default_code: cls for cls in (BadRequest, Unauthorized, Forbidden, NotFound, Conflict, InvalidParam, RateLimited, ServerError)
}
_BY_STATUS: dict[int, type[RozperError]] = {
    400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict, 422: InvalidParam, 429: RateLimited,
}


def _retry_after(value: str | None) -> float | None:
    """`Retry-After` as seconds: delta-seconds, or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - dt.datetime.now(dt.timezone.utc)).total_seconds())


def error_from_response(response: httpx.Response, idempotency_key: str | None = None) -> RozperError:
    """The typed exception for a 4xx/5xx; tolerates a non-envelope body (e.g. a proxy's 502 page)."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    if not isinstance(error, dict):
        error = {}
    code = error.get("code") if isinstance(error.get("code"), str) else None
    cls = _BY_CODE.get(code or "") or _BY_STATUS.get(response.status_code) or (ServerError if response.status_code >= 500 else RozperError)
    param_errors = error.get("param_errors")
    fields: dict[str, Any] = {
        "status": response.status_code, "code": code,
        "request_id": error.get("request_id") or response.headers.get("request-id"),
        "param_errors": param_errors if isinstance(param_errors, list) else None,
        "idempotency_key": idempotency_key,
    }
    message = str(error.get("message") or response.reason_phrase or "error")
    if cls is RateLimited:
        return RateLimited(message, retry_after=_retry_after(response.headers.get("retry-after")), **fields)
    return cls(message, **fields)


# ---------------------------------------------------------------------------- resources


class Call(BaseModel):
    """A call object as `POST /v2/calls` answers it (`queued` at first; webhooks tell the rest)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")
    id: str
    status: str
    to: str
    from_: str = Field(alias="from")
    created_at: dt.datetime  # ISO 8601 or unix seconds
    object: str = "call"


class RateLimit(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    limit: int
    remaining: int
    reset: dt.datetime


class Account(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    id: str
    scopes: list[str] = Field(default_factory=list)
    rate_limit: RateLimit | None = None


def _check_e164(name: str, number: str) -> None:
    if not E164.match(number):
        raise ValueError(f"{name}: {number!r} is not an E.164 number (like +15551230001)")


class Calls:
    def __init__(self, client: RozperClient) -> None:
        self._client = client

    async def create(self, to: str, from_: str, url: str, record: bool = False, timeout: int = 60,
                     idempotency_key: str | None = None) -> Call:
        """Places an outbound call; `url` answers with voice instructions when it connects."""
        _check_e164("to", to)
        _check_e164("from", from_)
        if not url.startswith(("https://", "http://")):
            raise ValueError(f"url: {url!r} must be an http(s) URL that returns voice instructions")
        if not 1 <= timeout <= 600:
            raise ValueError(f"timeout: ring timeout must be 1..600 s, got {timeout}")
        body = {"to": to, "from": from_, "url": url, "record": record, "timeout": timeout}
        # One key per logical attempt: every retry below reuses it, so Rozper places one call.
        key = idempotency_key or str(uuid.uuid4())
        data = await self._client.request("POST", "/v2/calls", json=body, idempotency_key=key)
        return Call.model_validate(data)


# ---------------------------------------------------------------------------- the client


class RozperClient:
    def __init__(self, base_url: str, api_key: str, *, timeout_s: float = 10.0, max_retries: int = 3,
                 backoff_s: float = 0.25, max_backoff_s: float = 4.0, max_retry_after_s: float = 30.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        if not api_key:
            raise ConfigError("a Rozper API key is required (ROZPER_API_KEY)")
        if not 0 <= max_retries <= 10:
            raise ValueError(f"max_retries must be 0..10, got {max_retries}")
        self.base_url = base_url.rstrip("/")
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_retry_after_s = max_retry_after_s
        self._rng = random.Random()  # jitter; per client, no shared state
        # httpx masks the Authorization header in its own reprs and logs.
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=timeout_s, transport=transport,
            headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json",
                     "User-Agent": "agent-runtime-rozper/0.1"},
        )
        self.calls = Calls(self)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ, **options: Any) -> RozperClient:
        """`ROZPER_API_KEY` (required) and `ROZPER_API_BASE` (default https://api.rozper.com)."""
        key = environ.get("ROZPER_API_KEY", "").strip()
        if not key:
            raise ConfigError("ROZPER_API_KEY is not set: export your Rozper project key (sk_test_… or sk_live_…)")
        base = environ.get("ROZPER_API_BASE", "").strip() or DEFAULT_BASE_URL
        if not base.startswith(("https://", "http://")):
            raise ConfigError(f"ROZPER_API_BASE={base!r} must be an http(s) URL")
        return cls(base, key, **options)

    def __repr__(self) -> str:
        return f"RozperClient(base_url={self.base_url!r})"

    async def __aenter__(self) -> RozperClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def account(self) -> Account:
        return Account.model_validate(await self.request("GET", "/v2/account"))

    def _backoff(self, attempt: int) -> float:
        # Exponential with full jitter, so many clients retrying at once spread out.
        return self._rng.uniform(0, min(self.max_backoff_s, self.backoff_s * 2**attempt))

    async def request(self, method: str, path: str, *, json: dict[str, Any] | None = None,
                      idempotency_key: str | None = None) -> Any:
        """One logical request with bounded retries; returns the decoded JSON body."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        # A replay with the same key cannot repeat the effect, so only then may a POST be resent.
        idempotent = method == "GET" or idempotency_key is not None
        attempt = 0
        while True:
            try:
                response = await self._http.request(method, path, json=json, headers=headers)
            except httpx.TransportError as exc:
                if not idempotent or attempt >= self.max_retries:
                    raise ConnectionFailed(f"{type(exc).__name__}: {exc}", idempotency_key=idempotency_key) from exc
                delay, why = self._backoff(attempt), type(exc).__name__
            else:
                if response.status_code < 400:
                    try:
                        return response.json()
                    except ValueError:
                        raise RozperError("the answer was not JSON", status=response.status_code, idempotency_key=idempotency_key) from None
                error = error_from_response(response, idempotency_key)
                if attempt >= self.max_retries:
                    raise error
                if isinstance(error, RateLimited):
                    # A rate-limited request was not executed, so any request may wait and resend.
                    wait = error.retry_after if error.retry_after is not None else self._backoff(attempt)
                    if wait > self.max_retry_after_s:
                        raise error
                    delay = wait
                elif response.status_code >= 500 and idempotent:
                    delay = self._backoff(attempt)
                else:
                    raise error
                why = f"{error.status} {error.code} (request {error.request_id})"
            attempt += 1
            log.warning("rozper %s %s: %s; retry %d/%d in %.2f s", method, path, why, attempt, self.max_retries, delay)
            await anyio.sleep(delay)
