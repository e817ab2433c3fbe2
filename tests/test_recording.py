"""Call recording: a call that asks for it (Rozper `data.record`) leaves a stereo WAV and a recording.ready event.

Through the real server and the carrier simulator; the simulator's own two-leg recording (what it
sent, and what it played as the carrier) is the reference the runtime's file is checked against.
"""

from __future__ import annotations

from typing import Any

import anyio
import numpy as np
import pytest
import soundfile as sf

from agent_runtime.call.recording import BLOCK, CallRecorder, LegBuffer, _safe_name
from agent_runtime.providers.base import Providers
from agent_runtime.providers.standin import StandInLLM, StandInSTT, StandInTTS
from agent_runtime.sim.caller import CallScript, Utterance, place_call
from callkit import SECRET, caller_audio, live_agent

pytestmark = pytest.mark.anyio


def _envelope(pcm: np.ndarray) -> np.ndarray:
    """RMS per 20 ms frame."""
    frames = pcm[: len(pcm) // 160 * 160].astype(np.float64).reshape(-1, 160)
    return np.sqrt((frames**2).mean(axis=1))


def _best_lag(a: np.ndarray, b: np.ndarray, max_lag: int = 10) -> tuple[int, float]:
    """The shift of `b` (in frames) that best matches `a`, and the correlation there."""
    n = min(len(a), len(b)) - 2 * max_lag
    best = (0, -1.0)
    for lag in range(-max_lag, max_lag + 1):
        x, y = a[max_lag : max_lag + n], b[max_lag + lag : max_lag + lag + n]
        corr = float(np.corrcoef(x, y)[0, 1])
        if corr > best[1]:
            best = (lag, corr)
    return best


async def test_a_recorded_call_writes_both_legs_aligned_and_emits_recording_ready(tmp_path) -> None:  # noqa: ANN001
    events: list[tuple[str, dict[str, Any]]] = []

    async def emit(event_type: str, data: dict[str, Any]) -> str:
        events.append((event_type, data))
        return "evt_test"

    providers = Providers(stt=StandInSTT(), llm=StandInLLM(), tts=StandInTTS())
    script = CallScript(utterances=[Utterance(caller_audio())], hangup_after_s=0.5, max_duration_s=30, record=True)
    async with live_agent(providers, emit=emit, data_dir=str(tmp_path)) as agent:
        result = await place_call(agent.connect_url, script, SECRET)
        record = await agent.ended_call()
        with anyio.fail_after(5):  # written after the call ended, off the event loop
            while not any(kind == "agent.recording_ready" for kind, _ in events):
                await anyio.sleep(0.02)
    [data] = [data for kind, data in events if kind == "agent.recording_ready"]
    path = tmp_path / "recordings" / f"{record.call_id}.wav"
    assert data["call_id"] == record.call_id and data["path"] == str(path) and data["format"] == "wav"
    assert data["url"] == path.resolve().as_uri() and record.recording_url == data["url"]

    audio, rate = sf.read(path, dtype="int16", always_2d=True)
    assert rate == 8000 and audio.shape[1] == 2
    assert data["duration_s"] == pytest.approx(len(audio) / 8000, abs=0.01)
    caller, agent_leg = audio[:, 0], audio[:, 1]
    reference = result.stereo()  # the simulator's: left what it sent, right what it played
    assert abs(len(audio) - len(reference)) < 8000 * 0.5

    # Left: the caller's speech, where the simulator sent it (frames placed by media timestamp).
    onset = result.speech_onset_ticks[0] * 160
    assert _envelope(caller[: onset - 1600]).max() < 100  # silence before the caller spoke …
    assert _envelope(caller[onset : onset + 8000]).mean() > 500  # … speech from the onset on
    n = min(len(caller), len(reference))
    assert np.mean(caller[:n] == reference[:n, 0]) > 0.99  # sample for sample what the carrier sent

    # Right: the agent's greeting from the first second, and its reply, where the carrier played them.
    assert _envelope(agent_leg[:8000]).mean() > 300
    lag, corr = _best_lag(_envelope(reference[:, 1]), _envelope(agent_leg))
    assert abs(lag) <= 2 and corr > 0.9, (lag, corr)  # within 40 ms of where the carrier played it
    # The agent is quiet while the caller talks (the two legs do not overlap here).
    caller_env = _envelope(caller[onset : onset + 16000])
    assert _envelope(agent_leg[onset : onset + 16000])[caller_env > 500].mean() < 100


async def test_a_call_without_record_writes_nothing(tmp_path) -> None:  # noqa: ANN001
    events: list[str] = []

    async def emit(event_type: str, data: dict[str, Any]) -> str:
        events.append(event_type)
        return "evt_test"

    providers = Providers(stt=StandInSTT(), llm=StandInLLM(), tts=StandInTTS())
    async with live_agent(providers, emit=emit, data_dir=str(tmp_path)) as agent:
        await place_call(agent.connect_url, CallScript(utterances=[], hangup_after_s=0.2, max_duration_s=10), SECRET)
        await agent.ended_call()
        await anyio.sleep(0.2)
    assert "agent.recording_ready" not in events and not (tmp_path / "recordings").exists()


def test_leg_buffer_places_frames_by_offset_and_stays_bounded() -> None:
    leg = LegBuffer(max_samples=3 * BLOCK)
    frame = bytes(range(160))
    leg.write(0, frame)
    leg.write(BLOCK - 80, frame)  # straddles two blocks
    leg.write(2 * BLOCK, frame)  # after a gap: the gap stays silent
    assert leg.length == 2 * BLOCK + 160
    raw = b"".join(leg._blocks)
    assert raw[:160] == frame and raw[BLOCK - 80 : BLOCK + 80] == frame and raw[2 * BLOCK : 2 * BLOCK + 160] == frame
    assert set(raw[160 : BLOCK - 80]) == {0xFF}  # μ-law silence
    leg.write(3 * BLOCK - 100, frame)  # runs past the cap: cut there
    leg.write(3 * BLOCK + 500, frame)  # wholly past it: dropped
    assert leg.truncated and leg.length == 3 * BLOCK and len(leg._blocks) == 3


def test_carrier_call_ids_cannot_choose_the_path() -> None:
    assert _safe_name("../../etc/passwd") == "_.._etc_passwd"
    assert "/" not in _safe_name("a/b") and _safe_name("CA_01JQ7Z3K8R") == "CA_01JQ7Z3K8R"


def test_agent_chunks_go_where_their_marks_came_back_and_flushed_ones_not_at_all() -> None:
    recorder = CallRecorder(max_s=10)
    media, mark = recorder.wrap_encoders(lambda payload: "media", lambda name: "mark")
    for tick in range(5):  # 100 ms of caller audio before anything plays
        recorder.inbound(b"\x10" * 160, tick * 20)
    for index, byte in enumerate((b"\x20", b"\x30", b"\x40")):  # three 100 ms chunks sent at once
        media(byte * 800)
        mark(f"g1:c{index}")
    for tick in range(5, 10):
        recorder.inbound(b"\x10" * 160, tick * 20)
    recorder.mark("g1:c0", heard=True)  # played, ending at 200 ms on the inbound clock
    recorder.mark("g1:c1", heard=False)  # flushed by a clear: never heard
    recorder.mark("g1:c2", heard=False)
    agent = b"".join(recorder.agent._blocks)
    assert recorder.agent.length == 1600
    assert set(agent[:800]) == {0xFF} and set(agent[800:1600]) == {0x20} and set(agent[1600:2400]) == {0xFF}
