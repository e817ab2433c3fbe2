"""Offline STT with CMU PocketSphinx and its bundled US-English model.

PocketSphinx's 8 kHz models fail on phone audio, so the utterance is upsampled to 16 kHz
with soxr and decoded by the 16 kHz model (the band above 4 kHz is simply empty).

Decoding runs in worker *processes*, not threads: pocketsphinx holds the GIL for the whole
decode, so a thread froze the event loop (and every call's frame reading) for ~1 s per
utterance. Each worker process keeps one decoder (~90 MB, 0.3 s to load) for its lifetime.
"""

from __future__ import annotations

import anyio
import anyio.to_process
import numpy as np
import soxr

_MODEL_RATE = 16000


class PocketsphinxSTT:
    def __init__(self, pool_size: int = 2) -> None:
        if pool_size < 1:
            raise ValueError("pool_size must be >= 1")
        self._limiter = anyio.CapacityLimiter(pool_size)  # at most this many decoder processes

    @staticmethod
    def check_available() -> None:
        """Raise at start-up, naming the extra to install, if pocketsphinx is missing."""
        _import_decoder()

    async def transcribe(self, pcm: np.ndarray, sample_rate: int) -> str:
        if pcm.size == 0:
            return ""
        # Cancellable: a caller who hangs up mid-decode ends the call at once (S14); the worker
        # process is killed then, and the next decode starts a fresh one (~0.8 s, rare).
        raw = np.ascontiguousarray(pcm, dtype=np.int16).tobytes()
        return await anyio.to_process.run_sync(_decode, raw, sample_rate, cancellable=True, limiter=self._limiter)


# ---- runs inside a worker process -------------------------------------------------------

_worker_decoder = None  # this worker process's decoder, created on its first utterance


def _decode(raw: bytes, sample_rate: int) -> str:
    global _worker_decoder  # one per worker process, never shared: the decoder is not thread-safe
    if _worker_decoder is None:
        _worker_decoder = _import_decoder()(samprate=_MODEL_RATE, loglevel="FATAL")
    decoder = _worker_decoder
    audio = _to_model_rate(np.frombuffer(raw, dtype=np.int16), sample_rate)
    decoder.start_utt()
    decoder.process_raw(audio.tobytes(), False, True)  # no_search=False, full_utt=True
    decoder.end_utt()
    hyp = decoder.hyp()
    return hyp.hypstr.strip() if hyp is not None else ""


def _import_decoder():  # -> type[pocketsphinx.Decoder]
    try:
        from pocketsphinx import Decoder
    except ImportError as exc:
        raise RuntimeError(
            "PocketSphinx STT needs pocketsphinx: pip install 'agent_runtime[offline-speech]'"
        ) from exc
    return Decoder


def _to_model_rate(pcm: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono int16 at 16 kHz (soxr high quality; one shot, the utterance is complete)."""
    x = np.asarray(pcm, dtype=np.int16).reshape(-1)
    if sample_rate == _MODEL_RATE:
        return np.ascontiguousarray(x)
    y = soxr.resample(x.astype(np.float32), sample_rate, _MODEL_RATE)
    return np.clip(np.rint(y), -32768, 32767).astype(np.int16)
