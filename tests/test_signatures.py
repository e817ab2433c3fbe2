"""Rozper-Signature (§3.4, §7.3) and X-Twilio-Signature (§1.8) against the spec's vectors."""

from __future__ import annotations

import pytest

from agent_runtime.carrier import (
    SignatureError,
    new_session_token,
    sign,
    sign_stream_url,
    twilio_signature,
    verify,
    verify_stream_url,
    verify_twilio,
)

SECRET = "rzp_whsec_9f8c1d2e3a4b5c6d7e8f9a0b1c2d3e4f"
OLD = "rzp_whsec_00112233445566778899aabbccddeeff"
T = 1767225600
BODY = (
    b'{"id":"evt_01JABCDEF","type":"call.answered","created":1767225600,'
    b'"data":{"call_id":"CA_01JXYZ","from":"+15551230001","to":"+15559870002"}}'
)
SIG_NEW = "8e45216f7e18b226cc36653f11e76c412bb5201d7fab7f316493c2ce46cd0f74"
SIG_OLD = "9805cf7268b5510e9d59aeed10b5972d3ea8235a10fbd3e92dbde40c4066d3fe"
HEADER = f"t={T},v1={SIG_NEW}"
ROTATION = f"t={T},v1={SIG_NEW},v1={SIG_OLD}"


def reason(header: str, body: bytes = BODY, secrets: list[str] = [SECRET], now: float = T) -> str:
    with pytest.raises(SignatureError) as info:
        verify(header, body, secrets, now)
    return info.value.reason


def test_sign_matches_vectors() -> None:
    assert sign(BODY, [SECRET], T) == HEADER
    assert sign(BODY, [SECRET, OLD], T) == ROTATION


def test_vector_header_verifies() -> None:
    verify(HEADER, BODY, [SECRET], now=T)
    verify(HEADER, BODY, [SECRET], now=T + 300)
    verify(HEADER, BODY, [SECRET], now=T - 300)


def test_rotation() -> None:
    verify(ROTATION, BODY, [SECRET], now=T)
    verify(ROTATION, BODY, [OLD], now=T)  # only the old secret configured: passes
    verify(ROTATION, BODY, [OLD, SECRET], now=T)
    assert reason(HEADER, secrets=[OLD]) == SignatureError.MISMATCH


def test_one_byte_changed() -> None:
    tampered = BODY.replace(b"CA_01JXYZ", b"CA_01JXYY")
    assert reason(HEADER, body=tampered) == SignatureError.MISMATCH


def test_missing_parts() -> None:
    assert reason(f"v1={SIG_NEW}") == SignatureError.NO_TIMESTAMP
    assert reason(f"t={T}") == SignatureError.NO_SIGNATURE
    assert reason(f"t={T},v0={SIG_NEW}") == SignatureError.NO_SIGNATURE
    for bad in ["", "garbage", f"t=abc,v1={SIG_NEW}", f"t={T},t={T},v1={SIG_NEW}"]:
        assert reason(bad) == SignatureError.MALFORMED
    for bad in [f"t=-5,v1={SIG_NEW}", f"t= {T},v1={SIG_NEW}", f"t={T},v1"]:
        assert reason(bad) == SignatureError.MALFORMED


def test_timestamp_window_both_directions() -> None:
    assert reason(HEADER, now=T + 301) == SignatureError.STALE
    assert reason(HEADER, now=T - 301) == SignatureError.FUTURE
    verify(HEADER, BODY, [SECRET], now=T + 500, tolerance_s=600)


def test_window_checked_before_signature() -> None:
    # A stale header with a wrong MAC reports staleness: parse → window → signature.
    assert reason(f"t={T},v1={'0' * 64}", now=T + 1000) == SignatureError.STALE


def test_uppercase_hex_rejected() -> None:
    assert reason(f"t={T},v1={SIG_NEW.upper()}") == SignatureError.MISMATCH


def test_unknown_keys_ignored_and_odd_values_do_not_raise_other_errors() -> None:
    verify(f"t={T},v0=abc,v1={SIG_NEW},x=y", BODY, [SECRET], now=T)
    assert reason(f"t={T},v1=\u00e9\ud800") == SignatureError.MISMATCH


def test_no_secrets_is_a_config_error() -> None:
    with pytest.raises(ValueError):
        verify(HEADER, BODY, [], now=T)
    with pytest.raises(TypeError):
        verify(HEADER, BODY, SECRET, now=T)  # type: ignore[arg-type]


def test_stream_url_signature() -> None:
    url = "wss://rt.example.com/rozper/media"
    header = sign_stream_url(url, [SECRET], T)
    verify_stream_url(header, url, [SECRET], now=T)
    assert header == sign(f"{url}".encode(), [SECRET], T)
    with pytest.raises(SignatureError):
        verify_stream_url(header, url + "x", [SECRET], now=T)
    with pytest.raises(SignatureError):
        verify_stream_url(header, url, [SECRET], now=T + 301, tolerance_s=300)


def test_session_tokens_are_unique_and_urlsafe() -> None:
    tokens = {new_session_token() for _ in range(100)}
    assert len(tokens) == 100
    assert all(t.startswith("st_") and len(t) > 20 and "/" not in t for t in tokens)


# ---- Twilio ----

TOKEN = "12345"
BASE = "https://mycompany.com/myapp.php?foo=1&bar=2"
PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
    "Caller": "+14158675309",
}
JSON_BODY = b'{"property": "value", "boolean": true}'
BODY_HASH = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"

TWILIO_VECTORS = [
    (BASE, PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
    ("https://mycompany.com:443/myapp.php?foo=1&bar=2", PARAMS, "kvajT1Ptam85bY51eRf/AJRuM3w="),
    ("http://mycompany.com:80/myapp.php?foo=1&bar=2", PARAMS, "0ZXoZLH/DfblKGATFgpif+LLRf4="),
    (
        BASE,
        {"Sid": "CA123", "SidAccount": "AC123", "Digits": ["5678", "1234", "1234"]},
        "IK+Dwps556ElfBT0I3Rgjkr1wJU=",
    ),
    (BASE + "&bodySHA256=" + BODY_HASH, {}, "a9nBmqA0ju/hNViExpshrM61xv4="),
    ("wss://example.com/media", {}, "7PR3qMkpDyEJtMrVOY/LDyNq8J8="),
]


@pytest.mark.parametrize(("url", "params", "expected"), TWILIO_VECTORS)
def test_twilio_vectors(url: str, params: dict, expected: str) -> None:
    assert twilio_signature(url, params, TOKEN) == expected
    assert verify_twilio(expected, url, params, TOKEN, body=JSON_BODY)


def test_twilio_port_variants_accepted() -> None:
    with_port = "kvajT1Ptam85bY51eRf/AJRuM3w="
    without = "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert verify_twilio(with_port, BASE, PARAMS, TOKEN)
    assert verify_twilio(without, "https://mycompany.com:443/myapp.php?foo=1&bar=2", PARAMS, TOKEN)
    http = "http://mycompany.com/myapp.php?foo=1&bar=2"
    assert verify_twilio("0ZXoZLH/DfblKGATFgpif+LLRf4=", http, PARAMS, TOKEN)


def test_twilio_rejections() -> None:
    good = "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert not verify_twilio(good, BASE, dict(PARAMS, Digits="1235"), TOKEN)
    assert not verify_twilio(good, BASE, PARAMS, "54321")
    assert not verify_twilio("", BASE, PARAMS, TOKEN)
    assert not verify_twilio("\ud800é", BASE, PARAMS, TOKEN)
    other_port = "https://mycompany.com:8443/myapp.php?foo=1&bar=2"
    assert not verify_twilio(good, other_port, PARAMS, TOKEN)


def test_twilio_body_sha256_checked() -> None:
    url = BASE + "&bodySHA256=" + BODY_HASH
    sig = "a9nBmqA0ju/hNViExpshrM61xv4="
    assert verify_twilio(sig, url, {}, TOKEN, body=JSON_BODY)
    assert not verify_twilio(sig, url, {}, TOKEN, body=JSON_BODY + b" ")
    assert not verify_twilio(sig, url, {}, TOKEN)  # body hash announced but no body given


def test_twilio_upgrade_scheme_and_port_variants() -> None:
    sig = twilio_signature("https://example.com:443/media", {}, TOKEN)
    assert verify_twilio(sig, "wss://example.com/media", {}, TOKEN)
    assert not verify_twilio(sig, "wss://example.com/media", {}, TOKEN, upgrade=False)
    wss = "7PR3qMkpDyEJtMrVOY/LDyNq8J8="
    assert verify_twilio(wss, "wss://example.com:443/media", {}, TOKEN)
