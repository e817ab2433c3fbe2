"""The Twilio Media Streams dialect, which Rozper speaks field for field (plus extensions).

A pure codec: text frame in -> event out, and event -> text frame out. No I/O, no logging;
bad input is counted, never raised, so one garbled frame cannot end a call.

Decoding is one msgspec pass into typed wire Structs (a tagged union on `event`), with
`strict=False` so the string-typed numbers Twilio sends ("sequenceNumber": "2") become ints
in the same pass; base64 payloads are decoded by msgspec too.
"""

from __future__ import annotations

import binascii
from typing import Annotated, Any

import msgspec

from agent_runtime.carrier.events import Connected, Dtmf, InboundEvent, Mark, Media, Start, Stop
from agent_runtime.carrier.events import TransferAck

# Extensions a Rozper peer may announce in `start.extensions` (§7.3).
KNOWN_EXTENSIONS = frozenset({"transfer", "hangup", "stop_reason"})
TRANSFER_TARGET_TYPES = frozenset({"queue", "phone", "sip"})
DTMF_DIGITS = frozenset("0123456789*#ABCD")
KNOWN_EVENTS = frozenset({"connected", "start", "media", "dtmf", "mark", "stop", "transfer"})

DEFAULT_MAX_PAYLOAD_B64 = 64 * 1024
_ENVELOPE_SLACK = 16 * 1024  # room for the JSON around a payload, or a start's parameters

_Count = Annotated[int, msgspec.Meta(ge=0)]


# ---- wire shapes (Twilio → runtime). Unknown keys are ignored by msgspec by default. ----


class _MediaFormat(msgspec.Struct, rename="camel"):
    encoding: str
    sample_rate: _Count
    channels: _Count


class _StartBody(msgspec.Struct, rename="camel"):
    account_sid: str
    call_sid: str
    media_format: _MediaFormat
    stream_sid: str | None = None
    tracks: list[str] = msgspec.field(default_factory=lambda: ["inbound"])
    custom_parameters: dict[str, str] = {}
    extensions: list[str] = []
    from_: str | None = msgspec.field(default=None, name="from")
    to: str | None = None
    direction: str | None = None


class _MediaBody(msgspec.Struct):
    chunk: _Count
    timestamp: _Count
    payload: bytes  # msgspec decodes standard padded base64 and rejects anything else
    track: str = "inbound"


class _DtmfBody(msgspec.Struct):
    digit: str
    track: str = "inbound_track"


class _MarkBody(msgspec.Struct):
    name: str


class _StopBody(msgspec.Struct):
    reason: str | None = None


class _TransferAckBody(msgspec.Struct):
    status: str
    error: str | None = None


class _Wire(msgspec.Struct, tag_field="event", rename="camel", kw_only=True):
    sequence_number: _Count | None = None  # absent on `connected`


class _WConnected(_Wire, tag="connected"):
    protocol: str
    version: str


class _WStart(_Wire, tag="start"):
    start: _StartBody
    stream_sid: str | None = None  # fallback when start.streamSid is missing


class _WMedia(_Wire, tag="media"):
    media: _MediaBody


class _WDtmf(_Wire, tag="dtmf"):
    dtmf: _DtmfBody


class _WMark(_Wire, tag="mark"):
    mark: _MarkBody


class _WStop(_Wire, tag="stop"):
    stop: _StopBody = msgspec.field(default_factory=_StopBody)


class _WTransfer(_Wire, tag="transfer"):
    transfer: _TransferAckBody


class _Envelope(msgspec.Struct, rename="camel"):
    """Second look at a frame the typed decoder refused: unknown event, or broken known one?"""

    event: str
    sequence_number: _Count | None = None


_WireMessage = _WConnected | _WStart | _WMedia | _WDtmf | _WMark | _WStop | _WTransfer


class ExtensionNotNegotiated(RuntimeError):
    """Raised when encoding an extension message the peer did not announce."""


class StreamNotStarted(RuntimeError):
    """Raised when encoding before the streamSid is known (no `start` decoded yet)."""


class MediaStreamCodec:
    """Twilio / Rozper media-stream codec for one stream.

    Counters: every `decode` call is exactly one of `decoded`, `malformed` (reason in
    `malformed_by_reason`) or `ignored` (an unknown event: forward compatibility).
    `sequence_gaps` counts sequence numbers that never arrived (or were unreadable).
    """

    def __init__(
        self,
        *,
        max_payload_b64: int = DEFAULT_MAX_PAYLOAD_B64,
        stream_sid: str | None = None,
        extensions: frozenset[str] = frozenset(),
    ) -> None:
        self.max_payload_b64 = max_payload_b64
        self._max_payload_bytes = max_payload_b64 * 3 // 4
        self._max_frame = max_payload_b64 + _ENVELOPE_SLACK
        self._decoder = msgspec.json.Decoder(_WireMessage, strict=False)
        self._envelope = msgspec.json.Decoder(_Envelope, strict=False)
        self.decoded = 0
        self.malformed = 0
        self.malformed_by_reason: dict[str, int] = {}
        self.ignored = 0
        self.sequence_gaps = 0
        self.last_sequence: int | None = None
        self.stream_sid: str | None = None
        self.started = False  # a `start` was decoded
        self.extensions: frozenset[str] = frozenset(extensions)
        self._media_prefix = ""
        self._mark_prefix = ""
        self._clear = ""
        if stream_sid is not None:
            self._set_stream_sid(stream_sid)

    # ---- decoding ----

    def decode(self, frame: str | bytes) -> InboundEvent | None:
        """One text frame → one event, or None (malformed or ignored; both are counted)."""
        try:
            if len(frame) > self._max_frame:
                return self._reject("oversize")
            msg = self._decoder.decode(frame)
        except msgspec.ValidationError as exc:
            return self._on_invalid(frame, exc)
        except (msgspec.DecodeError, UnicodeError, RecursionError):
            return self._reject("json")  # UnicodeError: a str with lone surrogates
        except TypeError:  # not str/bytes at all
            return self._reject("input")

        if msg.__class__ is _WMedia:  # the hot path: ~50 frames/s per call
            body = msg.media
            if len(body.payload) > self._max_payload_bytes:
                return self._reject("oversize")
            self._sequence(msg.sequence_number)
            self.decoded += 1
            return Media(body.payload, body.timestamp, body.chunk, body.track)
        return self._convert(msg)

    def _convert(self, msg: _WireMessage) -> InboundEvent | None:
        event: InboundEvent
        if isinstance(msg, _WConnected):
            event = Connected(msg.protocol, msg.version)
        elif isinstance(msg, _WStart):
            if self.started:
                return self._reject("second_start")  # a stream has one start: its sid and extensions stay
            b = msg.start
            sid = b.stream_sid or msg.stream_sid
            if not sid:
                return self._reject("schema")
            fmt = b.media_format
            event = Start(
                sid, b.call_sid, b.account_sid, b.tracks, b.custom_parameters,
                fmt.encoding, fmt.sample_rate, fmt.channels, frozenset(b.extensions),
                from_=b.from_, to=b.to, direction=b.direction,
            )  # fmt: skip
            self._set_stream_sid(sid)
            self.extensions = event.extensions
            self.started = True
        elif isinstance(msg, _WDtmf):
            if msg.dtmf.digit not in DTMF_DIGITS:
                return self._reject("value")
            event = Dtmf(msg.dtmf.digit)
        elif isinstance(msg, _WMark):
            event = Mark(msg.mark.name)
        elif isinstance(msg, _WStop):
            event = Stop(msg.stop.reason)
        else:
            event = TransferAck(msg.transfer.status, msg.transfer.error)
        self._sequence(msg.sequence_number)
        self.decoded += 1
        return event

    def _on_invalid(self, frame: str | bytes, exc: msgspec.ValidationError) -> None:
        # Error path only: tell a forward-compatible unknown event from a broken known one.
        if "base64" in str(exc):
            return self._reject("base64")
        try:
            env = self._envelope.decode(frame)
        except (msgspec.DecodeError, UnicodeError, RecursionError):
            return self._reject("schema")
        if env.event in KNOWN_EVENTS:
            return self._reject("schema")
        self._sequence(env.sequence_number)
        self.ignored += 1
        return None

    def _reject(self, reason: str) -> None:
        self.malformed += 1
        self.malformed_by_reason[reason] = self.malformed_by_reason.get(reason, 0) + 1
        return None

    def _sequence(self, seq: int | None) -> None:
        if seq is None:
            return
        last = self.last_sequence
        if last is not None and seq > last + 1:
            self.sequence_gaps += seq - last - 1
        self.last_sequence = seq

    # ---- encoding ----

    def supports(self, extension: str) -> bool:
        """True if the peer announced `extension` in `start.extensions`."""
        return extension in self.extensions

    def encode_media(self, payload: bytes) -> str:
        """Outbound μ-law audio (raw, no WAV header) as a `media` frame."""
        if not self._media_prefix:
            self._require(None)
        b64 = binascii.b2a_base64(payload, newline=False).decode("ascii")
        return self._media_prefix + b64 + '"}}'

    def encode_mark(self, name: str) -> str:
        """A mark, echoed by the carrier once all audio queued before it has played."""
        if not self._mark_prefix:
            self._require(None)
        return self._mark_prefix + _json(name) + "}}"

    def encode_clear(self) -> str:
        """Drop all audio queued at the carrier; it echoes every pending mark."""
        if not self._clear:
            self._require(None)
        return self._clear

    def encode_transfer(
        self, target: dict[str, Any], reason: str, summary: str, context: dict[str, Any]
    ) -> str:
        """Rozper `transfer` extension: bridge the caller to a queue, phone number or SIP URI."""
        self._require("transfer")
        if not isinstance(target, dict) or target.get("type") not in TRANSFER_TARGET_TYPES:
            raise ValueError(f"transfer target must have type in {sorted(TRANSFER_TARGET_TYPES)}")
        body = {"target": target, "reason": reason, "summary": summary, "context": context}
        return _json({"event": "transfer", "streamSid": self.stream_sid, "transfer": body})

    def encode_hangup(self, reason: str) -> str:
        """Rozper `hangup` extension: end the call after queued audio finishes."""
        self._require("hangup")
        body = {"reason": reason}
        return _json({"event": "hangup", "streamSid": self.stream_sid, "hangup": body})

    def _require(self, extension: str | None) -> None:
        if self.stream_sid is None:
            raise StreamNotStarted("no streamSid yet: decode the `start` frame first")
        if extension is not None and extension not in self.extensions:
            raise ExtensionNotNegotiated(
                f"extension {extension!r} was not announced in start.extensions "
                f"(announced: {sorted(self.extensions)}); a Twilio peer would reject it (31951)"
            )

    def _set_stream_sid(self, sid: str) -> None:
        # Precompute the constant parts so encode_media is two concatenations.
        self.stream_sid = sid
        q = _json(sid)
        self._media_prefix = '{"event":"media","streamSid":' + q + ',"media":{"payload":"'
        self._mark_prefix = '{"event":"mark","streamSid":' + q + ',"mark":{"name":'
        self._clear = '{"event":"clear","streamSid":' + q + "}"


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode("utf-8")


__all__ = [
    "DEFAULT_MAX_PAYLOAD_B64", "KNOWN_EXTENSIONS", "ExtensionNotNegotiated", "MediaStreamCodec",
    "StreamNotStarted",
]
