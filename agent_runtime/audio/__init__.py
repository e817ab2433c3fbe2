"""Audio primitives for the voice runtime: G.711, resampling, WAV, VAD."""

from agent_runtime.audio.g711 import (
    ALAW_SILENCE,
    ULAW_SILENCE,
    alaw_decode,
    alaw_encode,
    ulaw_decode,
    ulaw_encode,
)
from agent_runtime.audio.resample import DEFAULT_QUALITY, Pcm16Assembler, StreamResampler
from agent_runtime.audio.vad import (
    VAD_SAMPLE_RATES,
    SpeechEnd,
    SpeechStart,
    VadEvent,
    VadOptions,
    VoiceActivityDetector,
    frame_rms_dbfs,
)
from agent_runtime.audio.wav import (
    WavHeader,
    decode_audio_bytes,
    is_wav,
    parse_wav_header,
    read_wav_mono,
    write_wav,
)

__all__ = [
    "ALAW_SILENCE",
    "ULAW_SILENCE",
    "alaw_decode",
    "alaw_encode",
    "ulaw_decode",
    "ulaw_encode",
    "DEFAULT_QUALITY",
    "Pcm16Assembler",
    "StreamResampler",
    "VAD_SAMPLE_RATES",
    "SpeechEnd",
    "SpeechStart",
    "VadEvent",
    "VadOptions",
    "VoiceActivityDetector",
    "frame_rms_dbfs",
    "WavHeader",
    "decode_audio_bytes",
    "is_wav",
    "parse_wav_header",
    "read_wav_mono",
    "write_wav",
]
