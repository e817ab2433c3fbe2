"""Offline STT with CMU PocketSphinx and its bundled US-English model.

PocketSphinx's 8 kHz models fail on phone audio, so the utterance is upsampled to 16 kHz
with soxr and decoded by the 16 kHz model (the band above 4 kHz is simply empty). A decoder
is ~90 MB and not thread-safe: each instance keeps a small pool, created lazily, and every
decode runs in a worker thread holding one decoder exclusively.
"""

from __future__ import annotations

import queue
import threading

import anyio
import anyio.to_thread
import numpy as np
import soxr

_MODEL_RATE = 16000


class PocketsphinxSTT:
    def __init__(self, pool_size: int = 2) -> None:
        if pool_size < 1:
            raise ValueError("pool_size must be >= 1")
        self._pool_size = pool_size
        self._idle: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._created = 0
        self._create_lock = threading.Lock()
        # Bounds concurrent decodes so no thread ever waits for a decoder while holding a
        # worker-thread slot that other calls' blocking work needs.
        self._limiter = anyio.CapacityLimiter(pool_size)

    @staticmethod
    def check_available() -> None:
        """Raise at start-up, naming the extra to install, if pocketsphinx is missing."""
        _import_decoder()

    async def transcribe(self, pcm: np.ndarray, sample_rate: int) -> str:
        if pcm.size == 0:
            return ""
        # Not abandoned on cancel: the decoder must finish and return to the pool first,
        # and one utterance takes well under a second.
        return await anyio.to_thread.run_sync(
            self._transcribe_blocking, pcm, sample_rate, limiter=self._limiter
        )

    def _transcribe_blocking(self, pcm: np.ndarray, sample_rate: int) -> str:
        audio = _to_model_rate(pcm, sample_rate)
        decoder = self._acquire()
        try:
            decoder.start_utt()
            decoder.process_raw(audio.tobytes(), False, True)  # no_search=False, full_utt=True
            decoder.end_utt()
            hyp = decoder.hyp()
            return hyp.hypstr.strip() if hyp is not None else ""
        finally:
            self._idle.put(decoder)

    def _acquire(self):  # -> pocketsphinx.Decoder
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._create_lock:
            if self._created < self._pool_size:
                self._created += 1
                try:
                    return _import_decoder()(samprate=_MODEL_RATE, loglevel="FATAL")
                except BaseException:
                    self._created -= 1
                    raise
        return self._idle.get()  # the limiter makes this wait short and rare


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
