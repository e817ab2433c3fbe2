"""VAD: options validation, re-framing of irregular payloads (S04), hysteresis."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import webrtcvad

from agent_runtime.audio import (
    SpeechEnd,
    SpeechStart,
    VadOptions,
    VoiceActivityDetector,
    frame_rms_dbfs,
    read_wav_mono,
    ulaw_decode,
    ulaw_encode,
)

DATA = Path(__file__).parent / "data"
RATE = 8000


def _spy(det: VoiceActivityDetector) -> list[tuple[int, int]]:
    """Record (buffer bytes, length arg) of every frame webrtcvad sees."""
    seen: list[tuple[int, int]] = []
    real = det.vad.is_speech

    def is_speech(buf, sample_rate, length=None):
        seen.append((memoryview(buf).nbytes, length))
        assert webrtcvad.valid_rate_and_frame_length(sample_rate, length)
        return real(buf, sample_rate, length)

    det.vad.is_speech = is_speech  # type: ignore[method-assign]
    return seen


class _ScriptedVad:
    """Stands in for webrtcvad.Vad so the state machine can be tested exactly."""

    def __init__(self, decisions: list[bool]) -> None:
        self._it = iter(decisions)

    def is_speech(self, buf, sample_rate, length=None) -> bool:
        return next(self._it, False)


def _scripted(pattern: str, options: VadOptions) -> list:
    det = VoiceActivityDetector(RATE, options)
    det.vad = _ScriptedVad([c == "1" for c in pattern])  # type: ignore[assignment]
    events: list = []
    for _ in pattern:
        events += det.push(np.zeros(160, np.int16))
    return events


# --- options ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"mode": 4}, "mode"),
        ({"mode": -1}, "mode"),
        ({"frame_ms": 15}, "frame_ms"),
        ({"hangover_ms": -1}, "hangover_ms"),
        ({"start_ms": -20}, "start_ms"),
        ({"warmup_ms": -1}, "warmup_ms"),
        ({"hangover_ms": 800_000}, "hangover_ms"),  # seconds typed as ms
        ({"start_ms": "60"}, "start_ms"),
        ({"hangover_ms": True}, "hangover_ms"),
        ({"min_rms_dbfs": 3.0}, "min_rms_dbfs"),
    ],
)
def test_options_validation_names_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=rf"VadOptions\.{field} must be"):
        VadOptions(**kwargs)


def test_telephony_preset() -> None:
    t = VadOptions.telephony()
    assert (t.mode, t.frame_ms, t.start_ms, t.hangover_ms, t.min_rms_dbfs) == (2, 20, 60, 800, -50.0)
    assert t.hangover_ms > 600  # S08: a 600 ms mid-sentence pause is not a turn end


def test_bad_sample_rate() -> None:
    with pytest.raises(ValueError, match="sample_rate"):
        VoiceActivityDetector(24000)


# --- state machine (scripted decisions: exact) ----------------------------------
NO_WARMUP = VadOptions(warmup_ms=0)


def test_two_voiced_frames_do_not_start_three_do() -> None:
    # A 40 ms blip = 2 voiced 20 ms frames < start_ms=60.
    assert _scripted("0000110000", NO_WARMUP) == []
    assert _scripted("00001110000", NO_WARMUP) == [SpeechStart(at_ms=80, detected_ms=140)]
    assert _scripted("0001101100", NO_WARMUP) == []  # runs must be contiguous


def test_end_needs_full_hangover_and_reports_true_end() -> None:
    opts = VadOptions(warmup_ms=0, hangover_ms=100)  # 5 frames
    speech = "1" * 10
    assert _scripted(speech + "0000" + "1" + "0" * 4, opts) == [SpeechStart(0, 60)]
    assert _scripted(speech + "0" * 5, opts) == [SpeechStart(0, 60), SpeechEnd(at_ms=200, detected_ms=300)]


def test_warmup_frames_are_non_speech() -> None:
    opts = VadOptions(warmup_ms=120)
    assert _scripted("111111" + "0000", opts) == []  # first 120 ms: webrtcvad warm-up
    assert _scripted("1111111110", opts) == [SpeechStart(at_ms=120, detected_ms=180)]


def test_speaking_and_speech_ms_and_reset() -> None:
    det = VoiceActivityDetector(RATE, NO_WARMUP)
    det.vad = _ScriptedVad([True] * 10 + [False] * 3)  # type: ignore[assignment]
    det.push(np.zeros(160 * 2, np.int16))
    assert not det.speaking and det.speech_ms == 40
    det.push(np.zeros(160 * 11, np.int16))
    assert det.speaking and det.speech_ms == 200  # does not grow through trailing silence
    assert det.media_ms == 260
    det.reset()
    assert not det.speaking and det.speech_ms == 0 and det.media_ms == 0


def test_no_events_returns_shared_empty_tuple() -> None:
    det = VoiceActivityDetector(RATE)
    a = det.push(np.zeros(7, np.int16))
    b = det.push(np.zeros(160, np.int16))
    assert a == () and a is b


def test_energy_gate() -> None:
    rng = np.random.default_rng(3)
    loud = (rng.standard_normal(8000) * 3000).astype(np.int16)  # ~ -21 dBFS
    det = VoiceActivityDetector(RATE, VadOptions(warmup_ms=0, min_rms_dbfs=-10.0))
    spy = _spy(det)
    assert det.push(loud) == ()
    assert len(spy) == 50  # webrtcvad still adapts on every frame; the gate only vetoes


def test_frame_rms_dbfs() -> None:
    assert frame_rms_dbfs(np.zeros(160, np.int16)) == float("-inf")
    assert frame_rms_dbfs(np.zeros(0, np.int16)) == float("-inf")
    assert frame_rms_dbfs(np.full(160, -32768, np.int16)) == pytest.approx(0.0)
    sine = np.round(32767 * np.sin(2 * np.pi * 1000 * np.arange(160) / 8000)).astype(np.int16)
    assert frame_rms_dbfs(sine) == pytest.approx(-3.01, abs=0.01)


# --- S04: real speech in irregular μ-law payloads --------------------------------
def _s04_signal() -> tuple[np.ndarray, int, int]:
    """Real line noise lead-in, 2.0 s of speech, 1.0 s of the file's own noise floor.

    Returns (pcm, onset_ms, speech_end_ms); onset from energy, independent of webrtcvad.
    """
    x, rate = read_wav_mono(DATA / "webrtcvad_leak-test_8k.wav")
    assert rate == RATE
    frames = x[: len(x) // 160 * 160].reshape(-1, 160)
    levels = np.array([frame_rms_dbfs(f) for f in frames])
    floor = np.median(levels[:20])
    onset_frame = int(np.argmax(levels > floor + 20))
    onset = onset_frame * 160
    speech_end = onset + 2 * RATE
    pcm = np.concatenate([x[:speech_end], x[-RATE:]])  # tail of the file is silence (noise floor)
    assert frame_rms_dbfs(x[-RATE:]) < floor + 6
    return pcm, onset * 1000 // RATE, speech_end * 1000 // RATE


def test_s04_irregular_payloads_real_speech() -> None:
    pcm, onset_ms, end_ms = _s04_signal()
    wire = ulaw_encode(pcm)
    det = VoiceActivityDetector(RATE, VadOptions.telephony())
    seen = _spy(det)
    events: list = []
    pos = 0
    for size in itertools.cycle((100, 260, 160, 333, 7)):
        if pos >= len(wire):
            break
        events += det.push(ulaw_decode(wire[pos : pos + size]))
        pos += size

    assert seen and all(nbytes == 320 and length == 160 for nbytes, length in seen)
    assert len(seen) == len(pcm) // 160

    starts = [e for e in events if isinstance(e, SpeechStart)]
    ends = [e for e in events if isinstance(e, SpeechEnd)]
    assert len(starts) == 1 and len(ends) == 1, events
    assert onset_ms - 100 <= starts[0].at_ms <= onset_ms + 300
    assert starts[0].detected_ms <= onset_ms + 300
    assert ends[0].detected_ms <= end_ms + 1000
    assert end_ms - 300 <= ends[0].at_ms <= end_ms + 200
    assert not det.speaking


def test_pushing_any_split_gives_identical_events() -> None:
    pcm, _, _ = _s04_signal()
    whole = VoiceActivityDetector(RATE).push(pcm)
    det = VoiceActivityDetector(RATE)
    split: list = []
    rng = np.random.default_rng(11)
    pos = 0
    while pos < len(pcm):
        n = int(rng.integers(0, 700))
        split += det.push(pcm[pos : pos + n])
        pos += n
    assert list(whole) == split and len(split) == 2


def test_real_burst_with_longer_start_does_not_trigger() -> None:
    # webrtcvad's own internal over-hang stretches a 40 ms burst to ~100-140 ms of "speech"
    # (measured), so start_ms=60 cannot reject a cough on its own; 200 ms does.
    rng = np.random.default_rng(5)
    noise = rng.standard_normal(2 * RATE) * 32768 * 10 ** (-60 / 20)
    burst = rng.standard_normal(320) * 32768 * 10 ** (-20 / 20)
    noise[RATE : RATE + 320] += burst
    sig = noise.astype(np.int16)
    det = VoiceActivityDetector(RATE, VadOptions(start_ms=200))
    assert det.push(sig) == ()
    speech, _, _ = _s04_signal()
    assert any(isinstance(e, SpeechStart) for e in VoiceActivityDetector(RATE, VadOptions(start_ms=200)).push(speech))


def test_fresh_vad_warmup_on_noise_does_not_start() -> None:
    rng = np.random.default_rng(9)
    noise = (rng.standard_normal(RATE) * 32768 * 10 ** (-55 / 20)).astype(np.int16)
    assert VoiceActivityDetector(RATE).push(noise) == ()
    # Without the warm-up guard the same noise fakes a start at call connect.
    assert any(isinstance(e, SpeechStart) for e in VoiceActivityDetector(RATE, VadOptions(warmup_ms=0)).push(noise))


@pytest.mark.parametrize("frame_ms", [10, 20, 30])
@pytest.mark.parametrize("rate", [8000, 16000])
def test_frame_sizes_and_rates_are_valid(frame_ms: int, rate: int) -> None:
    x, _ = read_wav_mono(DATA / "librivox_ss_0880.wav", rate=rate)
    det = VoiceActivityDetector(rate, VadOptions(frame_ms=frame_ms))
    seen = _spy(det)
    for i in range(0, len(x), 333):
        det.push(x[i : i + 333])
    flen = rate * frame_ms // 1000
    assert len(seen) == len(x) // flen and all(s == (flen * 2, flen) for s in seen)
    assert det.speaking
