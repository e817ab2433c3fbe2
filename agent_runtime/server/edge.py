"""Signature checks at the HTTP/WebSocket edge: every carrier request is verified before use.

Unsigned requests pass only when `config.unsigned_allowed`: --allow-unsigned and no carrier
secret at all. Once any secret is configured, every call-connect, after-stream request and
stream upgrade must carry a valid signature (config.ALLOW_UNSIGNED_HELP).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from urllib.parse import parse_qsl

from starlette.requests import Request

from agent_runtime.carrier.signatures import SignatureError, verify, verify_stream_url, verify_twilio
from agent_runtime.config import ServerConfig

TwilioParams = dict[str, list[str]]


def check_rozper_body(config: ServerConfig, headers: Mapping[str, str], body: bytes) -> str | None:
    """Returns None when the request may proceed, else a short reason (never sent to the client)."""
    header = headers.get("rozper-signature")
    if header is None:
        return None if config.unsigned_allowed else "missing Rozper-Signature"
    if not config.signing_secrets:
        return "Rozper-Signature sent but no ROZPER_SIGNING_SECRETS configured"
    try:
        verify(header, body, config.signing_secrets, time.time(), config.signature_tolerance_s)
    except SignatureError as exc:
        return f"bad Rozper-Signature ({exc})"
    return None


def twilio_url(config: ServerConfig, request: Request) -> str:
    """The URL Twilio signed: the configured public base (never Host/X-Forwarded-*, which proxies
    rewrite), the path, and the query string exactly as it arrived (still percent-encoded)."""
    query = request.scope.get("query_string", b"").decode("latin-1")
    return config.base_url + request.url.path + (f"?{query}" if query else "")


class BodyTooLarge(Exception):
    """The request body is over the edge's limit; answered 413 before it is all read."""


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, read in chunks and given up on past `limit` bytes (checked before any
    signature, so an unsigned client cannot make the server buffer hundreds of MB)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge
    return bytes(body)


def twilio_params(body: bytes) -> TwilioParams:
    """The urlencoded form's parameters (Twilio posts no other kind), every value of a repeated
    name kept (Twilio signs them all). Parsed by hand: no multipart, no temporary files."""
    params: TwilioParams = {}
    for name, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        params.setdefault(name, []).append(value)
    return params


def check_twilio_form(config: ServerConfig, headers: Mapping[str, str], url: str, params: Mapping[str, str | list[str]]) -> str | None:
    signature = headers.get("x-twilio-signature")
    if config.twilio_auth_token is None:
        return None if config.unsigned_allowed else "TWILIO_AUTH_TOKEN is not configured"
    if signature is None:
        return "missing X-Twilio-Signature"
    if not verify_twilio(signature, url, params, config.twilio_auth_token):
        return "bad X-Twilio-Signature"
    return None


def check_stream_upgrade(config: ServerConfig, headers: Mapping[str, str]) -> str | None:
    """The media WebSocket upgrade: a Rozper or Twilio signature over the configured media URL."""
    rozper = headers.get("rozper-signature")
    twilio = headers.get("x-twilio-signature")
    if rozper is not None and config.signing_secrets:
        try:
            verify_stream_url(rozper, config.media_url, config.signing_secrets, time.time(), config.signature_tolerance_s)
            return None
        except SignatureError as exc:
            return f"bad Rozper-Signature on upgrade ({exc})"
    if twilio is not None and config.twilio_auth_token:
        ok = verify_twilio(twilio, config.media_url, {}, config.twilio_auth_token)
        return None if ok else "bad X-Twilio-Signature on upgrade"
    if config.unsigned_allowed:
        return None  # the session token on `start` is still required
    return "missing stream signature"
