"""G.711 μ-law (PCMU) and A-law (PCMA) codecs backed by numpy lookup tables.

The tables are computed once at import from the ITU-T G.711 algorithms
(protocols.md §0.2), so encode/decode are a single fancy-index each: exact
for all 256 codes and all 65,536 int16 values, and independent of the
`audioop` module that Python 3.13 removed.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "ULAW_SILENCE",
    "ALAW_SILENCE",
    "ulaw_decode",
    "ulaw_encode",
    "alaw_decode",
    "alaw_encode",
]

# μ-law silence is 0xFF; 0x00 is a full-scale negative spike (the "loud click" bug).
ULAW_SILENCE: int = 0xFF
# A-law code for PCM 0 (decodes to +8, the smallest positive step).
ALAW_SILENCE: int = 0xD5

_ULAW_BIAS14 = 0x21  # the 16-bit bias 132, in 14-bit units
_ULAW_MAX14 = 0x1FFF  # biased magnitudes above this all map to the top code


def _all_int16() -> np.ndarray:
    """Every int16 value as int32, in the order of its uint16 bit pattern (the LUT index)."""
    return np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.int16).astype(np.int32)


def _build_ulaw_encode() -> np.ndarray:
    # Reference g711.c (Sun/CCITT, the code behind CPython's audioop) on the 14-bit value
    # x >> 2. Note the floor shift *before* taking the magnitude: for 381 negative inputs
    # this differs by one step from "|x| then shift" (protocols.md §0.2 step 1 as written).
    v = _all_int16() >> 2
    mask = np.where(v < 0, 0x7F, 0xFF)
    # Clipping the biased magnitude equals the reference "clip 8159, add 33, seg 8 -> 0x7F".
    m = np.minimum(np.abs(v) + _ULAW_BIAS14, _ULAW_MAX14)
    seg = np.zeros_like(m)
    for s, end in enumerate((0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)):
        seg[m > end] = s + 1  # ends ascend, so the last write is the segment
    uval = (seg << 4) | ((m >> (seg + 1)) & 0x0F)
    return ((uval ^ mask) & 0xFF).astype(np.uint8)


def _build_ulaw_decode() -> np.ndarray:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    mag = (((mantissa << 3) + 0x84) << exponent) - 0x84  # 0x84 = 16-bit bias
    return np.where(u & 0x80, -mag, mag).astype(np.int16)


def _build_alaw_encode() -> np.ndarray:
    # Sun/CCITT reference g711.c linear2alaw on the 13-bit value (x >> 3).
    v = _all_int16() >> 3
    mask = np.where(v >= 0, 0xD5, 0x55)
    v = np.where(v >= 0, v, -v - 1)
    seg = np.zeros_like(v)
    for s, end in enumerate((0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)):
        seg[(v > end)] = s + 1  # ends ascend, so the last write is the segment
    shift = np.where(seg < 2, 1, seg)
    aval = (np.minimum(seg, 7) << 4) | ((v >> shift) & 0x0F)
    aval = np.where(seg >= 8, 0x7F, aval)  # out of range: clip to the top code
    return ((aval ^ mask) & 0xFF).astype(np.uint8)


def _build_alaw_decode() -> np.ndarray:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    t = np.where(seg == 0, t + 8, t + 0x108)
    t = np.where(seg > 1, t << np.maximum(seg - 1, 0), t)
    return np.where(a & 0x80, t, -t).astype(np.int16)


# Module-level constant tables (read-only so nothing can corrupt them at runtime).
_ULAW_ENC = _build_ulaw_encode()
_ULAW_DEC = _build_ulaw_decode()
_ALAW_ENC = _build_alaw_encode()
_ALAW_DEC = _build_alaw_decode()
for _t in (_ULAW_ENC, _ULAW_DEC, _ALAW_ENC, _ALAW_DEC):
    _t.flags.writeable = False
del _t


def _codes(data: bytes | bytearray | memoryview) -> np.ndarray:
    return np.frombuffer(data, dtype=np.uint8)


def _index(pcm: np.ndarray) -> np.ndarray:
    """int16 samples -> uint16 LUT indices (a view, no copy)."""
    if pcm.dtype != np.int16:
        # Silent float->int casts are a classic source of garbage audio; be explicit.
        raise TypeError(f"expected int16 PCM, got dtype {pcm.dtype}")
    return pcm.view(np.uint16) if pcm.flags.c_contiguous else np.ascontiguousarray(pcm).view(np.uint16)


def ulaw_decode(data: bytes | bytearray | memoryview) -> np.ndarray:
    """μ-law bytes -> int16 PCM (one sample per byte)."""
    return _ULAW_DEC[_codes(data)]


def ulaw_encode(pcm: np.ndarray) -> bytes:
    """int16 PCM -> μ-law bytes (one byte per sample)."""
    return _ULAW_ENC[_index(pcm)].tobytes()


def alaw_decode(data: bytes | bytearray | memoryview) -> np.ndarray:
    """A-law bytes -> int16 PCM (one sample per byte)."""
    return _ALAW_DEC[_codes(data)]


def alaw_encode(pcm: np.ndarray) -> bytes:
    """int16 PCM -> A-law bytes (one byte per sample)."""
    return _ALAW_ENC[_index(pcm)].tobytes()
