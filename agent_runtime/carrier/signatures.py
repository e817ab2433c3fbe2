"""Request signatures: `Rozper-Signature` (§3.4, §7.3) and Twilio's `X-Twilio-Signature` (§1.8).

Rozper-Signature is Stripe's format in one header: `t=<unix s>,v1=<hex>[,v1=<hex>…]`, the MAC
being HMAC-SHA256(secret, f"{t}." + raw body). Verification order is fixed by the spec:
parse → timestamp window (both directions) → constant-time compare against every v1.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets as _secrets
from collections.abc import Mapping, Sequence
from urllib.parse import parse_qsl, urlsplit, urlunsplit

DEFAULT_TOLERANCE_S = 300


class SignatureError(Exception):
    """A signature did not verify. `reason` is for logs/metrics; never echo it to the caller."""

    MALFORMED = "malformed header"
    NO_TIMESTAMP = "no t"
    NO_SIGNATURE = "no v1"
    STALE = "stale timestamp"
    FUTURE = "future timestamp"
    MISMATCH = "mismatch"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _bytes(text: str) -> bytes:
    # compare_digest refuses non-ASCII str; attacker-supplied text must not make us raise.
    return text.encode("utf-8", "backslashreplace")


# ---- Rozper-Signature ----


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    signed = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def sign(body: bytes, secrets: Sequence[str], timestamp: int) -> str:
    """The `Rozper-Signature` header value: one v1 per active secret (rotation)."""
    if isinstance(secrets, str):
        raise TypeError("secrets must be a sequence of strings, not one string")
    if not secrets:
        raise ValueError("at least one secret is required")
    parts = [f"t={int(timestamp)}"]
    parts.extend(f"v1={_mac(s, int(timestamp), body)}" for s in secrets)
    return ",".join(parts)


def _parse_header(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    if not isinstance(header, str) or not header:
        raise SignatureError(SignatureError.MALFORMED)
    for part in header.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise SignatureError(SignatureError.MALFORMED)
        if key == "t":
            # ASCII digits only: int() alone would accept " 12", "1_0", "١٢"; at most 12 of them,
            # so a hostile 5000-digit `t` is malformed rather than an overflow in the clock check.
            if timestamp is not None or not (value.isascii() and value.isdigit() and len(value) <= 12):
                raise SignatureError(SignatureError.MALFORMED)
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value)
        # unknown keys (v0, future schemes) are ignored
    if timestamp is None:
        raise SignatureError(SignatureError.NO_TIMESTAMP)
    if not signatures:
        raise SignatureError(SignatureError.NO_SIGNATURE)
    return timestamp, signatures


def verify(
    header: str,
    body: bytes,
    secrets: Sequence[str],
    now: float,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> None:
    """Raise SignatureError unless some secret's MAC equals some v1 within the time window."""
    if isinstance(secrets, str):
        raise TypeError("secrets must be a sequence of strings, not one string")
    if not secrets:
        raise ValueError("at least one secret is required")  # a config error, not a bad request
    timestamp, signatures = _parse_header(header)
    if now - timestamp > tolerance_s:
        raise SignatureError(SignatureError.STALE)
    if timestamp - now > tolerance_s:
        raise SignatureError(SignatureError.FUTURE)
    matched = False
    for secret in secrets:
        expected = _mac(secret, timestamp, body)
        for candidate in signatures:
            # No early exit: the work done does not depend on which (if any) matched.
            # Expected is lowercase hex, so an uppercase v1 never matches (spec: reject).
            matched |= hmac.compare_digest(expected.encode("ascii"), _bytes(candidate))
    if not matched:
        raise SignatureError(SignatureError.MISMATCH)


def sign_stream_url(url: str, secrets: Sequence[str], timestamp: int) -> str:
    """Header for the media WebSocket upgrade: the signed string is `{t}.{url}` (§7.3)."""
    return sign(url.encode("utf-8"), secrets, timestamp)


def verify_stream_url(
    header: str,
    url: str,
    secrets: Sequence[str],
    now: float,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> None:
    """Verify the upgrade's Rozper-Signature; `url` exactly as given in connect_stream.url."""
    verify(header, url.encode("utf-8"), secrets, now, tolerance_s)


def new_session_token() -> str:
    """An unguessable per-call token to carry in a stream <Parameter> (defence in depth)."""
    return "st_" + _secrets.token_urlsafe(24)


# ---- Twilio X-Twilio-Signature ----

_DEFAULT_PORTS = {"https": 443, "wss": 443, "http": 80, "ws": 80}
_UPGRADE_SCHEMES = {"wss": "https", "https": "wss", "ws": "http", "http": "ws"}


def twilio_signature(url: str, params: Mapping[str, str | list[str]], auth_token: str) -> str:
    """base64(HMAC-SHA1(auth_token, url + name+value over sorted names, sorted distinct values))."""
    data = [url]
    for name in sorted(params):
        values = params[name]
        if isinstance(values, str):
            values = [values]
        for value in sorted(set(values)):  # distinct values, as Twilio's SDK does
            data.append(name + value)
    mac = hmac.new(auth_token.encode("utf-8"), "".join(data).encode("utf-8"), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode("ascii")


def _port_variants(url: str) -> list[str]:
    # Twilio's SDK accepts the signature with or without the default port (§1.8 step 5).
    parts = urlsplit(url)
    default = _DEFAULT_PORTS.get(parts.scheme)
    try:
        port = parts.port
    except ValueError:
        return [url]
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # IPv6 literal
    userinfo = parts.netloc.rpartition("@")[0]
    prefix = userinfo + "@" if userinfo else ""
    variants = [url]
    if default is not None and port is None:
        variants.append(urlunsplit(parts._replace(netloc=f"{prefix}{host}:{default}")))
    elif default is not None and port == default:
        variants.append(urlunsplit(parts._replace(netloc=f"{prefix}{host}")))
    return variants


def _url_variants(url: str, upgrade: bool) -> list[str]:
    urls = [url]
    scheme = urlsplit(url).scheme
    if upgrade and scheme in _UPGRADE_SCHEMES:
        # Which scheme Twilio signs for the WS upgrade is unverified (§1.8): try both.
        urls.append(_UPGRADE_SCHEMES[scheme] + url[len(scheme) :])
    out: list[str] = []
    for u in urls:
        for v in _port_variants(u):
            if v not in out:
                out.append(v)
    return out


def _body_hash_ok(url: str, body: bytes | None) -> bool:
    query = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    expected = query.get("bodySHA256")
    if expected is None:
        return True
    if body is None:
        return False
    actual = hashlib.sha256(body).hexdigest()
    return hmac.compare_digest(actual, expected)


def verify_twilio(
    signature: str,
    url: str,
    params: Mapping[str, str | list[str]],
    auth_token: str,
    *,
    body: bytes | None = None,
    upgrade: bool | None = None,
) -> bool:
    """Check an X-Twilio-Signature in constant time.

    `url` is the full URL Twilio requested (rebuilt from configured public base, never from
    Host/X-Forwarded-*). For JSON bodies the URL carries `bodySHA256`; pass the raw `body`
    (and empty `params`) so the hash is checked too. `upgrade` (default: scheme is ws/wss)
    also accepts the https/wss twin of the URL for the WebSocket upgrade.
    """
    if not isinstance(signature, str) or not signature:
        return False
    if upgrade is None:
        upgrade = urlsplit(url).scheme in ("ws", "wss")
    if not _body_hash_ok(url, body):
        return False
    matched = False
    for candidate in _url_variants(url, upgrade):
        expected = twilio_signature(candidate, params, auth_token)
        matched |= hmac.compare_digest(expected.encode("ascii"), _bytes(signature))
    return matched


__all__ = [
    "DEFAULT_TOLERANCE_S",
    "SignatureError",
    "new_session_token",
    "sign",
    "sign_stream_url",
    "twilio_signature",
    "verify",
    "verify_stream_url",
    "verify_twilio",
]
