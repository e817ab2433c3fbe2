"""The bytes of a streamed TTS answer → mono int16 at the rate the adapter promised (S01).

Asked for raw PCM, some OpenAI-compatible servers answer with a WAV file anyway; its header
(often 78 bytes, with a LIST chunk before `data`, not the classic 44) must never be played as
audio: it is a loud click. So the first bytes are sniffed for RIFF/RF64: raw PCM streams on at
once; a WAV's header is buffered until complete, then its `data` chunk streams as PCM at the
header's rate, resampled to the promised rate because the call's resampler was set up for it.
WAV payloads that are not 16-bit PCM (float, μ-law…) are rare enough to decode whole at the end.
HTTP chunks may split anywhere: inside the header, or inside a sample or frame.
"""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf

from agent_runtime.audio.resample import StreamResampler
from agent_runtime.audio.wav import WavHeader, is_wav, parse_wav_header

_EMPTY = np.zeros(0, dtype=np.int16)
_MAGICS = (b"RIFF", b"RF64")
_MAX_HEADER = 64 * 1024  # a header not complete by then is not one we can stream
_UNKNOWN_SIZES = (0, 0xFFFFFFFF)  # streaming encoders that did not know the length write these
_PCM16_TAGS = (1, 0xFFFE)  # PCM and WAVE_FORMAT_EXTENSIBLE


class SpeechDecoder:
    """One per TTS answer: `feed()` each HTTP chunk, then `finish()` once."""

    def __init__(self, out_rate: int) -> None:
        self._out_rate = out_rate
        self._head = bytearray()  # bytes held until we know what the stream is
        self._mode = "sniff"  # → "pcm" (stream), or "whole" (decode everything at the end)
        self._carry = b""  # the start of a sample or frame split by a chunk boundary
        self._frame_bytes = 2
        self._channels = 1
        self._left: int | None = None  # data bytes still to come, when the header says so
        self._resampler: StreamResampler | None = None

    def feed(self, data: bytes) -> np.ndarray:
        if self._mode == "pcm":
            return self._pcm(data)
        self._head += data
        if self._mode == "whole":
            return _EMPTY
        head = bytes(self._head[:4])
        if not any(magic.startswith(head) for magic in _MAGICS):
            return self._start_pcm(None)  # not a container: raw PCM from the first byte
        if len(self._head) < 12:
            return _EMPTY  # "RI…" could still be a WAV
        if not is_wav(self._head):
            return self._start_pcm(None)
        header = parse_wav_header(self._head)
        if header is None:
            if len(self._head) > _MAX_HEADER:
                self._mode = "whole"
            return _EMPTY
        if header.format_tag not in _PCM16_TAGS or header.bits_per_sample != 16:
            self._mode = "whole"
            return _EMPTY
        return self._start_pcm(header)

    def finish(self) -> np.ndarray:
        """The rest: a WAV decoded whole, the resampler's tail. A trailing odd byte is dropped."""
        if self._mode == "sniff":
            return self._start_pcm(None) if not is_wav(self._head) else _EMPTY  # a header with no audio
        if self._mode == "whole":
            pcm, rate = _decode_whole(bytes(self._head))
            return _resample_all(pcm, rate, self._out_rate)
        return self._resampler.flush() if self._resampler is not None else _EMPTY

    def _start_pcm(self, header: WavHeader | None) -> np.ndarray:
        self._mode = "pcm"
        buffered, self._head = bytes(self._head), bytearray()
        if header is not None:
            buffered = buffered[header.data_offset :]
            self._channels = max(1, header.channels)
            self._frame_bytes = 2 * self._channels
            if header.data_size not in _UNKNOWN_SIZES:
                self._left = header.data_size  # chunks after `data` (e.g. a trailing LIST) are not audio
            if header.sample_rate != self._out_rate:
                self._resampler = StreamResampler(header.sample_rate, self._out_rate)
        return self._pcm(buffered)

    def _pcm(self, data: bytes) -> np.ndarray:
        if self._left is not None:
            data = data[: self._left]
            self._left -= len(data)
        data = self._carry + data if self._carry else data
        usable = len(data) - len(data) % self._frame_bytes
        self._carry = data[usable:]
        if not usable:
            return _EMPTY
        # astype copies: a frombuffer view is read-only and would pin the bytes object.
        pcm = np.frombuffer(data, dtype="<i2", count=usable // 2).astype(np.int16)
        if self._channels > 1:
            pcm = pcm.reshape(-1, self._channels).mean(axis=1).astype(np.int16)
        return self._resampler.process(pcm) if self._resampler is not None else pcm


def _decode_whole(data: bytes) -> tuple[np.ndarray, int]:
    """Any WAV libsndfile reads (float, μ-law, 24-bit…) → mono int16. Read as float and scaled
    here: libsndfile's own float→int16 read does not scale, so a float WAV came out silent."""
    frames, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    mono = frames.mean(axis=1) * 32768.0
    return np.clip(np.round(mono), -32768, 32767).astype(np.int16), int(rate)


def _resample_all(pcm: np.ndarray, rate: int, out_rate: int) -> np.ndarray:
    if rate == out_rate:
        return pcm
    resampler = StreamResampler(rate, out_rate)
    return np.concatenate([resampler.process(pcm), resampler.flush()])
