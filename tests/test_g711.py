"""G.711 μ-law / A-law: exact against the reference algorithms and audioop."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from agent_runtime.audio import (
    ALAW_SILENCE,
    ULAW_SILENCE,
    alaw_decode,
    alaw_encode,
    ulaw_decode,
    ulaw_encode,
)

ALL_CODES = bytes(range(256))
ALL_PCM = np.arange(-32768, 32768, dtype=np.int16)


def _audioop():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return pytest.importorskip("audioop")


# Scalar transcriptions of the reference g711.c (Sun/CCITT; what audioop runs),
# independent of the vectorised table builders.
def _ref_ulaw_encode(x: int) -> int:
    v = x >> 2
    mask = 0xFF
    if v < 0:
        v, mask = -v, 0x7F
    v = min(v, 8159) + 33
    seg = 0
    while seg < 8 and v > (0x40 << seg) - 1:
        seg += 1
    if seg >= 8:
        return 0x7F ^ mask
    return ((seg << 4) | ((v >> (seg + 1)) & 0xF)) ^ mask


def _ref_ulaw_decode(u: int) -> int:
    u = ~u & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return 0x84 - t if u & 0x80 else t - 0x84


def _ref_alaw_encode(x: int) -> int:
    v = x >> 3
    if v >= 0:
        mask = 0xD5
    else:
        mask, v = 0x55, -v - 1
    seg = 0
    while seg < 8 and v > (0x20 << seg) - 1:
        seg += 1
    if seg >= 8:
        return 0x7F ^ mask
    aval = seg << 4
    aval |= (v >> 1) & 0xF if seg < 2 else (v >> seg) & 0xF
    return aval ^ mask


def _ref_alaw_decode(a: int) -> int:
    a ^= 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    if seg == 0:
        t += 8
    elif seg == 1:
        t += 0x108
    else:
        t = (t + 0x108) << (seg - 1)
    return t if a & 0x80 else -t


# --- protocols.md §0.2 vectors (unconditional) ------------------------------
@pytest.mark.parametrize(
    ("pcm", "code"),
    [(0, 0xFF), (8, 0xFE), (-8, 0x7E), (1000, 0xCE), (-1000, 0x4E), (32767, 0x80), (-32768, 0x00)],
)
def test_ulaw_encode_spec_vectors(pcm: int, code: int) -> None:
    assert ulaw_encode(np.array([pcm], dtype=np.int16)) == bytes([code])


@pytest.mark.parametrize(
    ("code", "pcm"),
    [(0xFF, 0), (0x7F, 0), (0xFE, 8), (0x80, 32124), (0x00, -32124), (0x01, -31100)],
)
def test_ulaw_decode_spec_vectors(code: int, pcm: int) -> None:
    out = ulaw_decode(bytes([code]))
    assert out.dtype == np.int16 and int(out[0]) == pcm


def test_silence_constants() -> None:
    assert ULAW_SILENCE == 0xFF and int(ulaw_decode(bytes([ULAW_SILENCE]))[0]) == 0
    assert ulaw_encode(np.zeros(160, np.int16)) == bytes([ULAW_SILENCE]) * 160
    assert alaw_encode(np.zeros(1, np.int16)) == bytes([ALAW_SILENCE])


# --- exhaustive against the scalar reference (unconditional) ----------------
def test_ulaw_all_codes_and_all_samples_match_reference() -> None:
    assert ulaw_decode(ALL_CODES).tolist() == [_ref_ulaw_decode(u) for u in range(256)]
    assert ulaw_encode(ALL_PCM) == bytes(_ref_ulaw_encode(int(x)) for x in ALL_PCM)


def test_alaw_all_codes_and_all_samples_match_reference() -> None:
    assert alaw_decode(ALL_CODES).tolist() == [_ref_alaw_decode(a) for a in range(256)]
    assert alaw_encode(ALL_PCM) == bytes(_ref_alaw_encode(int(x)) for x in ALL_PCM)


# --- exhaustive against audioop (skipped where it is gone, Python >= 3.13) --
def test_ulaw_matches_audioop_exhaustively() -> None:
    audioop = _audioop()
    assert np.array_equal(ulaw_decode(ALL_CODES), np.frombuffer(audioop.ulaw2lin(ALL_CODES, 2), "<i2"))
    assert ulaw_encode(ALL_PCM) == audioop.lin2ulaw(ALL_PCM.tobytes(), 2)


def test_alaw_matches_audioop_exhaustively() -> None:
    audioop = _audioop()
    assert np.array_equal(alaw_decode(ALL_CODES), np.frombuffer(audioop.alaw2lin(ALL_CODES, 2), "<i2"))
    assert alaw_encode(ALL_PCM) == audioop.lin2alaw(ALL_PCM.tobytes(), 2)


# --- round trips --------------------------------------------------------------
@pytest.mark.parametrize(("enc", "dec"), [(ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)])
def test_code_round_trip_is_identity(enc, dec) -> None:
    decoded = dec(ALL_CODES)
    again = enc(decoded)
    # Every code maps back to itself except the duplicate zero (μ-law 0x7F -> 0 -> 0xFF).
    diffs = [c for c in range(256) if again[c] != c]
    assert diffs == ([0x7F] if enc is ulaw_encode else [])


@pytest.mark.parametrize(("enc", "dec", "rel"), [(ulaw_encode, ulaw_decode, 1 / 16), (alaw_encode, alaw_decode, 1 / 16)])
def test_pcm_round_trip_error_is_within_one_step(enc, dec, rel: float) -> None:
    x = ALL_PCM.astype(np.int32)
    y = dec(enc(ALL_PCM)).astype(np.int32)
    # Companded quantisation: error bounded by half a segment step (~1/32 of |x|) plus the
    # small linear steps near zero; the clip region tops out at the last code.
    err = np.abs(y - x)
    assert np.all(err <= np.maximum(np.abs(x) * rel, 64) + (np.abs(x) > 31000) * 1700)


def test_encode_rejects_non_int16_and_handles_views() -> None:
    with pytest.raises(TypeError, match="int16"):
        ulaw_encode(np.zeros(4, dtype=np.float32))
    strided = ALL_PCM[::7]
    assert ulaw_encode(strided) == ulaw_encode(strided.copy())
    assert ulaw_decode(memoryview(b"\xff\x00")).tolist() == [0, -32124]
    assert ulaw_decode(bytearray(b"")).size == 0
