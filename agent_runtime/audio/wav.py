"""WAV container handling: never let header bytes reach the wire as audio (S01).

TTS engines often return a WAV file whose header is not the classic 44 bytes
(e.g. 78 bytes with a LIST chunk before `data`); stripping a fixed 44 bytes
then plays chunk metadata as a loud click. We parse the container properly.
"""

from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr

__all__ = [
    "WavHeader",
    "is_wav",
    "parse_wav_header",
    "decode_audio_bytes",
    "read_wav_mono",
    "write_wav",
]


@dataclass(frozen=True, slots=True)
class WavHeader:
    sample_rate: int
    channels: int
    bits_per_sample: int
    format_tag: int  # 1 = PCM, 3 = float, 6 = A-law, 7 = μ-law, 0xFFFE = extensible
    data_offset: int  # first audio byte
    data_size: int  # as declared; 0xFFFFFFFF (or 0) from streaming encoders that did not know it


def is_wav(data: bytes | bytearray | memoryview) -> bool:
    """True when the bytes start with a RIFF/RF64 WAVE header."""
    head = bytes(data[:12])
    return len(head) == 12 and head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE"


def parse_wav_header(data: bytes | bytearray | memoryview) -> WavHeader | None:
    """Walk the chunks up to `data`; None if the header is not complete yet.

    For streamed TTS: buffer the first bytes until this returns a header,
    then treat everything from `data_offset` on as raw PCM.
    """
    if not is_wav(data):
        return None
    fmt: tuple[int, int, int, int] | None = None
    pos = 12
    while pos + 8 <= len(data):
        cid = bytes(data[pos : pos + 4])
        (size,) = struct.unpack_from("<I", data, pos + 4)
        body = pos + 8
        if cid == b"fmt ":
            if body + 16 > len(data):
                return None
            tag, ch, rate, _, _, bits = struct.unpack_from("<HHIIHH", data, body)
            fmt = (tag, ch, rate, bits)
        elif cid == b"data":
            if fmt is None:
                raise ValueError("WAV 'data' chunk before 'fmt ' chunk")
            tag, ch, rate, bits = fmt
            return WavHeader(rate, ch, bits, tag, body, size)
        pos = body + size + (size & 1)  # chunks are word-aligned
    return None


def _to_mono_int16(frames: np.ndarray) -> np.ndarray:
    """(frames, channels) int16 -> 1-D int16; averages channels."""
    if frames.shape[1] == 1:
        return np.ascontiguousarray(frames[:, 0])
    return (frames.astype(np.int32).sum(axis=1) // frames.shape[1]).astype(np.int16)


def decode_audio_bytes(data: bytes | bytearray | memoryview) -> tuple[np.ndarray, int]:
    """Decode a complete audio file held in memory to (mono int16, sample rate).

    Handles any WAV layout libsndfile understands (extra chunks, float, μ-law
    inside WAV...). Raises ValueError for headerless data: raw PCM carries no
    rate, so the caller must know it and skip this function.
    """
    if not is_wav(data):
        raise ValueError("not a RIFF/WAVE container (raw PCM needs its rate supplied by the caller)")
    try:
        frames, rate = sf.read(io.BytesIO(bytes(data)), dtype="int16", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise ValueError(f"undecodable WAV: {exc}") from exc
    return _to_mono_int16(frames), int(rate)


def read_wav_mono(path: str | os.PathLike[str], rate: int | None = None) -> tuple[np.ndarray, int]:
    """Read an audio file as mono int16; resample (soxr HQ) when `rate` is given."""
    frames, file_rate = sf.read(os.fspath(path), dtype="int16", always_2d=True)
    pcm = _to_mono_int16(frames)
    if rate is not None and rate != file_rate:
        pcm = soxr.resample(pcm, file_rate, rate, quality="HQ")
        return pcm, rate
    return pcm, int(file_rate)


def write_wav(path: str | os.PathLike[str], pcm: np.ndarray, rate: int) -> None:
    """Write int16 PCM (1-D mono or 2-D frames x channels) as a 16-bit WAV."""
    if pcm.dtype != np.int16:
        raise TypeError(f"expected int16 PCM, got dtype {pcm.dtype}")
    if pcm.ndim not in (1, 2):
        raise ValueError(f"expected 1-D or 2-D (frames, channels) PCM, got shape {pcm.shape}")
    sf.write(os.fspath(path), pcm, rate, subtype="PCM_16", format="WAV")
