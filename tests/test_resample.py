"""S02: stateful anti-aliased resampling, and PCM16 byte re-assembly."""

from __future__ import annotations

import numpy as np
import pytest

from agent_runtime.audio import Pcm16Assembler, StreamResampler


def _tone(freq: float, rate: int, seconds: float = 1.0, dbfs: float = -6.0) -> np.ndarray:
    n = round(rate * seconds)
    amp = 32767 * 10 ** (dbfs / 20)
    return np.round(amp * np.sin(2 * np.pi * freq * np.arange(n) / rate)).astype(np.int16)


def _stream(res: StreamResampler, pcm: np.ndarray, chunk: int) -> tuple[np.ndarray, list[int]]:
    parts = [res.process(pcm[i : i + chunk]) for i in range(0, len(pcm), chunk)]
    sizes = [len(p) for p in parts]
    parts.append(res.flush())
    return np.concatenate(parts), sizes


def _peak_dbfs_at(pcm: np.ndarray, rate: int, freq: float) -> float:
    """Sine amplitude (dBFS, peak re 32767) of the component nearest `freq`."""
    x = pcm.astype(np.float64)
    win = np.hanning(len(x))
    spec = np.abs(np.fft.rfft(x * win)) / (win.sum() / 2)
    k = round(freq * len(x) / rate)
    return 20 * np.log10(spec[max(k - 3, 0) : k + 4].max() / 32767 + 1e-12)


def test_5khz_alias_is_below_minus_40_dbfs() -> None:
    out, _ = _stream(StreamResampler(24000, 8000), _tone(5000, 24000), 480)
    body = out[800:7200]  # skip filter edges
    assert _peak_dbfs_at(body, 8000, 3000) <= -40.0
    assert abs(len(out) - 8000) <= 8


def test_1khz_level_and_total_length() -> None:
    out, _ = _stream(StreamResampler(24000, 8000), _tone(1000, 24000), 480)
    assert abs(len(out) - 8000) <= 8
    assert _peak_dbfs_at(out[800:7200], 8000, 1000) == pytest.approx(-6.0, abs=1.0)


def test_chunk_output_sizes_are_bursty_but_track_the_ratio() -> None:
    # soxr filters in internal blocks: for 24k->8k HQ, 20 ms chunks in give 0 samples for the
    # first ~80 ms, then ~490-sample bursts every third chunk; never exactly 160 per call.
    # What holds: cumulative output never exceeds the ideal 160/chunk, lags it by a bounded
    # amount (< 100 ms), and the total including flush() is exact.
    res = StreamResampler(24000, 8000)
    out, sizes = _stream(res, _tone(1000, 24000), 480)
    cum = np.cumsum(sizes)
    ideal = 160 * np.arange(1, len(sizes) + 1)
    lag = ideal - cum
    assert lag.min() >= 0
    assert lag.max() < 800
    assert len(out) == 8000
    # Steady state (after priming): the mean rate is 160 samples per 20 ms chunk, and no
    # 80 ms window is starved or flooded (one ~490-sample burst every 3 or 4 chunks).
    assert (cum[49] - cum[9]) / 40 == pytest.approx(160, abs=5)
    windows = cum[13:] - cum[9:-4]
    assert windows.min() >= 480 and windows.max() <= 1000


def test_chunked_output_equals_one_shot_output() -> None:
    rng = np.random.default_rng(7)
    x = (rng.standard_normal(24000) * 4000).clip(-32768, 32767).astype(np.int16)
    chunked, _ = _stream(StreamResampler(24000, 8000), x, 480)
    one = StreamResampler(24000, 8000)
    one_shot = np.concatenate([one.process(x), one.flush()])
    assert len(chunked) == len(one_shot) == 8000
    # soxr's int16 output path dithers, so equal-input runs may differ by a couple of LSB;
    # a chunk-edge discontinuity would be thousands of LSB.
    assert np.abs(chunked.astype(np.int32) - one_shot).max() <= 4


def test_irregular_chunks_are_seamless() -> None:
    x = _tone(440, 24000)
    res = StreamResampler(24000, 8000)
    sizes = [7, 480, 1, 333, 960, 100]
    parts, pos, i = [], 0, 0
    while pos < len(x):
        n = sizes[i % len(sizes)]
        parts.append(res.process(x[pos : pos + n]))
        pos, i = pos + n, i + 1
    parts.append(res.flush())
    out = np.concatenate(parts)
    assert len(out) == 8000
    ref = _tone(440, 8000)
    assert np.abs(out[200:7800].astype(np.int32) - ref[200:7800]).max() < 200  # -6 dBFS = 16384 peak


def test_flush_resets_for_next_stream() -> None:
    res = StreamResampler(16000, 8000)
    a, _ = _stream(res, _tone(500, 16000, 0.5), 320)
    b, _ = _stream(res, _tone(500, 16000, 0.5), 320)
    assert len(a) == len(b) == 4000


def test_passthrough_returns_same_array() -> None:
    res = StreamResampler(8000, 8000)
    x = _tone(440, 8000, 0.02)
    assert res.passthrough and res.process(x) is x
    assert res.flush().size == 0 and res.delay_s == 0.0


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        StreamResampler(0, 8000)
    with pytest.raises(TypeError, match="int16"):
        StreamResampler(24000, 8000).process(np.zeros(480, np.float32))


@pytest.mark.parametrize("chunks", [[1, 2, 3, 4], [3, 3, 3, 7, 1, 1, 100], [999], [1] * 50, [0, 5, 0, 2]])
def test_pcm16_assembler_odd_chunks_reproduce_samples(chunks: list[int]) -> None:
    rng = np.random.default_rng(len(chunks))
    samples = rng.integers(-32768, 32768, size=600, dtype=np.int16)
    raw = samples.astype("<i2").tobytes()
    asm = Pcm16Assembler()
    out, pos, i = [], 0, 0
    while pos < len(raw):
        n = chunks[i % len(chunks)]
        out.append(asm.feed(raw[pos : pos + n]))
        pos, i = pos + n, i + 1
        if i > 10_000:
            break
    got = np.concatenate(out)
    assert asm.pending == 0
    assert np.array_equal(got, samples)
    assert got.dtype == np.int16


def test_pcm16_assembler_holds_odd_byte() -> None:
    asm = Pcm16Assembler()
    assert asm.feed(b"\x01").size == 0 and asm.pending == 1
    assert asm.feed(bytearray(b"\x02\x03")).tolist() == [0x0201]
    assert asm.pending == 1
    asm.reset()
    assert asm.pending == 0
