"""Inbound media-stream events, dialect-neutral.

A dialect codec turns carrier frames into these; everything downstream (call session, turn
loop, playout ledger) sees only these types. They are msgspec Structs because one is built per
20 ms frame and Structs are cheaper to create than dataclasses.
"""

from __future__ import annotations

import msgspec


class Connected(msgspec.Struct, frozen=True):
    """First message of a stream; `version` "1.1.0" hints at the Rozper extensions."""

    protocol: str
    version: str


class Start(msgspec.Struct, frozen=True):
    """Stream metadata, exactly once, before any media.

    `extensions` lists the negotiated Rozper extension messages (empty for a Twilio peer).
    `from_`/`to`/`direction` are Rozper call metadata; a Twilio peer leaves them None
    (consumers should then look in `custom_parameters`).
    """

    stream_sid: str
    call_sid: str
    account_sid: str
    tracks: list[str]
    custom_parameters: dict[str, str]
    encoding: str
    sample_rate: int
    channels: int
    extensions: frozenset[str] = frozenset()
    from_: str | None = None
    to: str | None = None
    direction: str | None = None


class Media(msgspec.Struct, frozen=True):
    """One chunk of caller audio: raw μ-law bytes (base64 already decoded)."""

    payload: bytes
    timestamp_ms: int  # carrier media clock, ms since stream start (not wall clock)
    chunk: int
    track: str


class Dtmf(msgspec.Struct, frozen=True):
    """A key press: one of 0-9, *, #, A-D."""

    digit: str


class Mark(msgspec.Struct, frozen=True):
    """Echo of a mark we sent: played out, or flushed by `clear` (indistinguishable here)."""

    name: str


class Stop(msgspec.Struct, frozen=True):
    """The stream ended. `reason` is the Rozper `stop_reason` extension (None from Twilio)."""

    reason: str | None = None


class TransferAck(msgspec.Struct, frozen=True):
    """Rozper's answer to our `transfer` extension message: "accepted" or "failed"."""

    status: str
    error: str | None = None


InboundEvent = Connected | Start | Media | Dtmf | Mark | Stop | TransferAck

__all__ = [
    "Connected",
    "Dtmf",
    "InboundEvent",
    "Mark",
    "Media",
    "Start",
    "Stop",
    "TransferAck",
]
