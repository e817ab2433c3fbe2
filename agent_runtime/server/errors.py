"""Rozper's error envelope for every error the runtime's HTTP endpoints answer (ROZPER-API.md, Errors).

    {"error": {"code": "invalid_param", "message": "…", "request_id": "req_…", "param_errors": […]}}

One shape everywhere (the queue API, call-connect, webhooks, and Starlette's own 404/405/500),
so a client parses one thing. `param_errors` is always present (empty unless a parameter
failed validation); the request id is also sent as the `Request-Id` header for support.
"""

from __future__ import annotations

import http
import logging
import secrets
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

log = logging.getLogger("agent_runtime.server")

# Rozper's table: status → code. Other statuses (405, 413, …) map by class, 4xx → bad_request and
# 5xx → server_error, so clients only ever meet Rozper's codes.
CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 409: "conflict",
    422: "invalid_param", 429: "rate_limited", 500: "server_error",
}


def new_request_id() -> str:
    return "req_" + secrets.token_hex(12)


def error_body(code: str, message: str, request_id: str, param_errors: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "request_id": request_id, "param_errors": list(param_errors or [])}}


def envelope(
    status: int, code: str, message: str, request_id: str | None = None, param_errors: list[dict[str, str]] | None = None,
) -> JSONResponse:
    request_id = request_id or new_request_id()
    return JSONResponse(error_body(code, message, request_id, param_errors), status_code=status,
                        headers={"Request-Id": request_id})


def code_for(status: int) -> str:
    return CODES.get(status) or ("server_error" if status >= 500 else "bad_request")


async def http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's 404 (no route), 405 (wrong method) and any HTTPException, in the envelope."""
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    message = exc.detail if isinstance(exc.detail, str) and exc.detail else http.HTTPStatus(status).phrase
    response = envelope(status, code_for(status), message)
    for name, value in (exc.headers or {}).items():  # e.g. Allow on a 405
        response.headers[name] = value
    return response


async def server_error(request: Request, exc: Exception) -> Response:
    """An unhandled exception: logged with its request id; the client sees no detail."""
    request_id = new_request_id()
    log.error("unhandled error (%s) on %s %s", type(exc).__name__, request.method, request.url.path,
              extra={"request_id": request_id})
    return envelope(500, "server_error", "internal error; retry idempotent requests", request_id)


EXCEPTION_HANDLERS: dict[Any, Any] = {HTTPException: http_exception, Exception: server_error}
