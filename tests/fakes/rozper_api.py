"""A local fake of Rozper's REST API for tests: real HTTP on 127.0.0.1, scripted and recording.

It checks the bearer key (401 envelope otherwise), records every request, and answers from a
script queue first (`push(...)`); with the queue empty, `POST /v2/calls` creates a queued call
honouring `Idempotency-Key` the way Rozper does (same key + same body → the same call replayed;
same key + different body → 409 conflict), and `GET /v2/account` returns the account.

    with FakeRozperAPI(api_key="sk_test_…") as rozper:
        rozper.push(rate_limited(retry_after=1))
        ... RozperClient(rozper.base_url, "sk_test_…") ...
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


@dataclass(frozen=True, slots=True)
class Scripted:
    """One scripted answer: status, envelope/body, headers; `delay_s` holds it back (timeouts)."""

    status: int
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    # After a delay, still execute the request (the answer was lost, the call was placed).
    then_execute: bool = False


def _request_id() -> str:
    return "req_" + secrets.token_hex(10)


def envelope(code: str, message: str, param_errors: list[dict[str, str]] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message, "request_id": _request_id()}
    if param_errors:
        error["param_errors"] = param_errors
    return {"error": error}


def rate_limited(retry_after: float | str = 1) -> Scripted:
    return Scripted(429, envelope("rate_limited", "slow down"), {"Retry-After": str(retry_after)})


def server_error() -> Scripted:
    return Scripted(500, envelope("server_error", "something broke on our side"))


def conflict() -> Scripted:
    return Scripted(409, envelope("conflict", "idempotency key reused with a different payload"))


def invalid_param(param: str = "to", reason: str = "format") -> Scripted:
    return Scripted(422, envelope("invalid_param", f"{param}: {reason}", [{"param": param, "reason": reason}]))


def unauthorized() -> Scripted:
    return Scripted(401, envelope("unauthorized", "missing, expired or revoked key"))


def slow_then_execute(delay_s: float) -> Scripted:
    """Answers after `delay_s` (past the client's timeout) but places the call anyway."""
    return Scripted(0, delay_s=delay_s, then_execute=True)


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None
    at: float  # time.monotonic() when it arrived

    @property
    def idempotency_key(self) -> str | None:
        return self.headers.get("idempotency-key")


class FakeRozperAPI:
    """Starlette app served by uvicorn on 127.0.0.1:<ephemeral> in a background thread."""

    def __init__(self, api_key: str = "sk_test_fake_0123456789abcdef", account_id: str = "acct_01FAKE") -> None:
        self.api_key = api_key
        self.account_id = account_id
        self._lock = threading.Lock()
        self._script: deque[Scripted] = deque()
        self.requests: list[RecordedRequest] = []
        self.calls: dict[str, dict[str, Any]] = {}  # id -> call object: calls actually placed
        self._idempotency: dict[str, tuple[str, dict[str, Any]]] = {}  # key -> (fingerprint, call)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.app = Starlette(routes=[
            Route("/v2/calls", self._create_call, methods=["POST"]),
            Route("/v2/account", self._account, methods=["GET"]),
        ])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeRozperAPI:
        config = uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="warning", lifespan="off",
                                timeout_graceful_shutdown=1, loop="asyncio")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="fake-rozper", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("fake Rozper API failed to start")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> FakeRozperAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget scripts, requests, placed calls and idempotency keys (between tests)."""
        with self._lock:
            self._script.clear()
            self.requests.clear()
            self.calls.clear()
            self._idempotency.clear()

    def push(self, *answers: Scripted) -> None:
        with self._lock:
            self._script.extend(answers)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    # -- endpoints

    async def _begin(self, request: Request) -> tuple[Scripted | None, dict[str, Any] | None, Response | None]:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        with self._lock:
            self.requests.append(RecordedRequest(request.method, request.url.path, dict(request.headers), body, time.monotonic()))
            scripted = self._script.popleft() if self._script else None
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return None, body, JSONResponse(envelope("unauthorized", "missing, expired or revoked key"), status_code=401)
        if scripted is not None and scripted.delay_s:
            await asyncio.sleep(scripted.delay_s)
        if scripted is not None and not scripted.then_execute:
            return scripted, body, JSONResponse(scripted.body, status_code=scripted.status, headers=scripted.headers)
        return scripted, body, None

    async def _create_call(self, request: Request) -> Response:
        _, body, answer = await self._begin(request)
        if answer is not None:
            return answer
        if not isinstance(body, dict) or not all(isinstance(body.get(k), str) for k in ("to", "from")):
            return JSONResponse(envelope("bad_request", "to and from are required"), status_code=400)
        key = request.headers.get("idempotency-key")
        fingerprint = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        with self._lock:
            if key is not None and key in self._idempotency:
                stored_fingerprint, call = self._idempotency[key]
                if stored_fingerprint != fingerprint:
                    return JSONResponse(envelope("conflict", "idempotency key reused with a different payload"), status_code=409)
                return JSONResponse(call, status_code=201, headers={"Idempotent-Replayed": "true"})
            call = {"id": "call_" + secrets.token_hex(13).upper(), "object": "call", "status": "queued",
                    "to": body["to"], "from": body["from"], "url": body.get("url"),
                    "created_at": dt.datetime.now(dt.timezone.utc).isoformat()}
            self.calls[call["id"]] = call
            if key is not None:
                self._idempotency[key] = (fingerprint, call)
        return JSONResponse(call, status_code=201)

    async def _account(self, request: Request) -> Response:
        _, _, answer = await self._begin(request)
        if answer is not None:
            return answer
        return JSONResponse({"id": self.account_id, "object": "account", "scopes": ["calls.write", "numbers.read"],
                             "rate_limit": {"limit": 1000, "remaining": 999, "reset": int(time.time()) + 1}})
