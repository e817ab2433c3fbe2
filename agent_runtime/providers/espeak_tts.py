"""Offline TTS with eSpeak NG through ctypes (library and voice data from `espeakng-loader`).

eSpeak NG is GPL-3.0-or-later; it is an optional extra (`agent_runtime[offline-speech]`).

Streaming: `espeak_Synth` runs in synchronous mode in a worker thread and calls our callback
with ~50 ms of audio at a time; each piece is posted to the event loop as soon as eSpeak
produces it (see `_threaded.iterate_in_thread`), so the first chunk reaches the caller before
the rest of the sentence is synthesised. The callback returns 1 (abort) once the consumer has
stopped iterating, so a barge-in stops synthesis within one chunk.
"""

from __future__ import annotations

import ctypes
import functools
import threading
from collections.abc import AsyncIterator, Callable

import numpy as np

from agent_runtime.providers._threaded import iterate_in_thread

# espeak_AUDIO_OUTPUT / options / espeak_PARAMETER / flags, from speak_lib.h
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_ESPEAK_INITIALIZE_DONT_EXIT = 0x8000  # return an error instead of calling exit()
_ESPEAK_RATE = 1
_POS_CHARACTER = 1
_ESPEAK_CHARS_UTF8 = 1
_EE_OK = 0
_BUFLEN_MS = 50  # audio per callback: the streaming granularity

# int (*t_espeak_callback)(short *wav, int numsamples, espeak_EVENT *events)
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)

# eSpeak NG keeps its whole state in C globals (voice, rate, callback, buffers) and is not
# thread-safe. This lock is not application state: it is a constant-like guard for that
# process-global C library, shared by every EspeakTTS instance. It also protects the
# one-time initialisation below.
_LIB_LOCK = threading.Lock()


class _Engine:
    """The loaded library; created once per process under `_LIB_LOCK`."""

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RuntimeError(
                "eSpeak NG TTS needs espeakng-loader: pip install 'agent_runtime[offline-speech]'"
            ) from exc
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        data_path = espeakng_loader.get_data_path().encode()
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, _BUFLEN_MS, data_path, _ESPEAK_INITIALIZE_DONT_EXIT
        )
        if rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed ({rate}); data path {data_path!r}")
        self.lib = lib
        self.sample_rate = rate
        # The C side holds a pointer to this trampoline, so it must live as long as the library.
        # It forwards to whichever sink the current synthesis installed (under _LIB_LOCK).
        self.sink: Callable[[np.ndarray], bool] | None = None
        self._callback = _SYNTH_CALLBACK(self._on_audio)
        lib.espeak_SetSynthCallback(self._callback)

    def _on_audio(self, wav: ctypes._Pointer, numsamples: int, _events: int) -> int:
        sink = self.sink
        if sink is None:
            return 1
        if numsamples > 0 and wav:
            chunk = np.ctypeslib.as_array(wav, shape=(numsamples,)).astype(np.int16)  # copy
            if not sink(chunk):
                return 1  # abort synthesis: the consumer is gone
        return 0

    def synth(self, text: str, voice: str, rate: int, sink: Callable[[np.ndarray], bool]) -> None:
        """Synthesise `text`, calling `sink(chunk)` per chunk; caller holds `_LIB_LOCK`."""
        if self.lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
            raise ValueError(f"eSpeak NG has no voice named {voice!r}")
        self.lib.espeak_SetParameter(_ESPEAK_RATE, rate, 0)
        data = text.encode("utf-8") + b"\0"
        self.sink = sink
        try:
            err = self.lib.espeak_Synth(
                data, len(data), 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_UTF8, None, None
            )
        finally:
            self.sink = None
        if err != _EE_OK:
            raise RuntimeError(f"espeak_Synth failed ({err})")


@functools.cache  # one per process, like the C library it wraps
def _engine() -> _Engine:
    """The process-wide engine, initialised lazily; caller holds `_LIB_LOCK`."""
    return _Engine()


class EspeakTTS:
    """Offline text-to-speech; mono int16 chunks at 22,050 Hz."""

    sample_rate = 22050

    def __init__(self, voice: str = "en-us", rate: int = 165) -> None:
        self.voice = voice
        self.rate = rate  # words per minute

    @staticmethod
    def check_available() -> None:
        """Load the library now (for start-up checks); raises with the extra to install."""
        with _LIB_LOCK:
            _engine()

    async def synthesize(self, text: str) -> AsyncIterator[np.ndarray]:
        if not text.strip():
            return

        def produce(emit: Callable[[np.ndarray], None], stop: threading.Event) -> None:
            def sink(chunk: np.ndarray) -> bool:
                if stop.is_set():
                    return False
                emit_or_stop(chunk)
                return not stop.is_set()

            def emit_or_stop(chunk: np.ndarray) -> None:
                try:
                    emit(chunk)
                except Exception:  # Stopped must not unwind through the C stack
                    stop.set()

            with _LIB_LOCK:
                if stop.is_set():
                    return
                _engine().synth(text, self.voice, self.rate, sink)

        async for chunk in iterate_in_thread(produce, name="espeak-tts"):
            yield chunk
