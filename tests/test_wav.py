"""S01: container bytes must never be played as audio; WAV read/write helpers."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from agent_runtime.audio import (
    decode_audio_bytes,
    is_wav,
    parse_wav_header,
    read_wav_mono,
    ulaw_encode,
    write_wav,
)

DATA = Path(__file__).parent / "data"
SINE_PEAK = round(32767 * 10 ** (-6 / 20))


def _sine(freq: float = 440.0, rate: int = 8000, seconds: float = 1.0) -> np.ndarray:
    n = round(rate * seconds)
    return np.round(SINE_PEAK * np.sin(2 * np.pi * freq * np.arange(n) / rate)).astype(np.int16)


def _wav_78(pcm: np.ndarray, rate: int = 8000, data_size: int | None = None) -> bytes:
    """A WAV as ffmpeg writes it: RIFF, fmt, a LIST/INFO chunk, then data (78-byte header)."""
    body = pcm.astype("<i2").tobytes()
    fmt = struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 1, rate, rate * 2, 2, 16)
    info = b"INFO" + b"ISFT" + struct.pack("<I", 14) + b"Lavf58.76.100\x00"
    lst = b"LIST" + struct.pack("<I", len(info)) + info
    size = len(body) if data_size is None else data_size
    data = b"data" + struct.pack("<I", size) + body
    riff_size = 4 + len(fmt) + len(lst) + len(data) if data_size is None else 0xFFFFFFFF
    return b"RIFF" + struct.pack("<I", riff_size) + b"WAVE" + fmt + lst + data


def _dominant_hz(pcm: np.ndarray, rate: int) -> float:
    spec = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(len(pcm))))
    return float(np.argmax(spec) * rate / len(pcm))


def test_s01_78_byte_header_decodes_to_clean_audio() -> None:
    src = _sine()
    blob = _wav_78(src)
    hdr = parse_wav_header(blob)
    assert hdr is not None and hdr.data_offset == 78
    assert (hdr.sample_rate, hdr.channels, hdr.bits_per_sample, hdr.format_tag) == (8000, 1, 16, 1)

    pcm, rate = decode_audio_bytes(blob)
    assert rate == 8000 and pcm.dtype == np.int16 and pcm.ndim == 1
    assert len(pcm) == 8000
    assert np.array_equal(pcm, src)
    wire = ulaw_encode(pcm)
    assert abs(len(wire) - 8000) <= 8
    assert not wire.startswith(b"RIFF") and b"RIFF" not in pcm.tobytes() and b"LIST" not in pcm.tobytes()
    assert abs(_dominant_hz(pcm, rate) - 440) <= 5
    first_10ms_peak = int(np.abs(pcm[:80].astype(np.int32)).max())
    assert first_10ms_peak <= SINE_PEAK * 10 ** (1 / 20)


def test_s01_naive_44_byte_strip_would_click() -> None:
    # Documents the bug this module prevents: chunk metadata read as samples.
    blob = _wav_78(_sine())
    naive = np.frombuffer(blob[44 : 44 + 160], "<i2")
    assert np.abs(naive[:80].astype(np.int32)).max() > SINE_PEAK * 10 ** (1 / 20)


def test_streaming_header_with_unknown_sizes() -> None:
    blob = _wav_78(_sine(seconds=0.1), data_size=0xFFFFFFFF)
    hdr = parse_wav_header(blob[:100])
    assert hdr is not None and hdr.data_offset == 78 and hdr.data_size == 0xFFFFFFFF
    assert parse_wav_header(blob[:60]) is None  # LIST seen, data header not yet
    assert np.array_equal(np.frombuffer(blob[hdr.data_offset :], "<i2"), _sine(seconds=0.1))


def test_not_a_wav_is_rejected() -> None:
    raw = _sine().tobytes()
    assert not is_wav(raw) and parse_wav_header(raw) is None
    with pytest.raises(ValueError, match="RIFF"):
        decode_audio_bytes(raw)


def test_stereo_is_mixed_to_mono(tmp_path: Path) -> None:
    left = _sine(440)
    right = np.zeros_like(left)
    path = tmp_path / "st.wav"
    write_wav(path, np.stack([left, right], axis=1), 8000)
    pcm, rate = decode_audio_bytes(path.read_bytes())
    assert rate == 8000 and pcm.shape == (8000,)
    assert np.array_equal(pcm, (left.astype(np.int32) // 2).astype(np.int16))


def test_write_read_round_trip(tmp_path: Path) -> None:
    src = _sine(1000, 16000, 0.25)
    path = tmp_path / "m.wav"
    write_wav(path, src, 16000)
    pcm, rate = read_wav_mono(path)
    assert rate == 16000 and np.array_equal(pcm, src)
    down, rate8 = read_wav_mono(path, rate=8000)
    assert rate8 == 8000 and len(down) == 2000 and down.dtype == np.int16
    assert abs(_dominant_hz(down, 8000) - 1000) <= 5
    with pytest.raises(TypeError):
        write_wav(path, src.astype(np.float32), 16000)


def test_read_real_speech_files() -> None:
    pcm, rate = read_wav_mono(DATA / "librivox_ss_0880.wav", rate=8000)
    assert rate == 8000 and pcm.dtype == np.int16 and abs(len(pcm) - round(2.99 * 8000)) <= 2
    pcm8, rate8 = read_wav_mono(DATA / "webrtcvad_leak-test_8k.wav")
    assert rate8 == 8000 and len(pcm8) == 75000
    # The real file also decodes from bytes (whatever chunks precede its data).
    from_bytes, r = decode_audio_bytes((DATA / "webrtcvad_leak-test_8k.wav").read_bytes())
    assert r == 8000 and np.array_equal(from_bytes, pcm8)
