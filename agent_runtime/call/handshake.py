"""A media stream's opening: `connected`, then a `start` in the carrier's audio format carrying a
session token this runtime issued. Anything else closes the stream before a call begins."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio

from agent_runtime.agent.definition import CallContext
from agent_runtime.carrier.events import Start, Stop
from agent_runtime.carrier.media_stream import MediaStreamCodec
from agent_runtime.runtime import SessionTokens

ReceiveText = Callable[[], Awaitable[str | bytes | None]]  # None when the socket closed

# A carrier sends `connected` and `start` right after the upgrade; a stream that has not, holds a
# call slot for nothing (a slow-loris), so it is dropped soon.
HANDSHAKE_TIMEOUT_S = 5.0
SUPPORTED_MEDIA_FORMAT = ("audio/x-mulaw", 8000, 1)  # what Rozper and Twilio always send (protocols.md §1)


class HandshakeError(Exception):
    """The stream did not open with a valid `start` carrying a valid session token."""


async def read_start(receive: ReceiveText, codec: MediaStreamCodec, tokens: SessionTokens) -> CallContext:
    """Reads frames up to `start`; redeems its session token. Raises HandshakeError."""
    with anyio.move_on_after(HANDSHAKE_TIMEOUT_S):
        while True:
            frame = await receive()
            if frame is None:
                raise HandshakeError("socket closed before start")
            event = codec.decode(frame)
            if isinstance(event, Start):
                return _context_of(event, tokens)
            if isinstance(event, Stop):
                raise HandshakeError("stop before start")
    raise HandshakeError("no start within timeout")


def _context_of(start: Start, tokens: SessionTokens) -> CallContext:
    if (start.encoding, start.sample_rate, start.channels) != SUPPORTED_MEDIA_FORMAT:
        # Decoding A-law or 16 kHz as 8 kHz μ-law would feed the VAD and STT noise.
        raise HandshakeError(f"unsupported mediaFormat {start.encoding} {start.sample_rate} Hz x"
                             f"{start.channels}; this runtime takes audio/x-mulaw 8000 Hz mono")
    issued = tokens.redeem(start.custom_parameters.get("session_token"))
    if issued is None:
        raise HandshakeError("missing or invalid session_token")
    return CallContext(
        call_id=issued.call_id,
        caller=start.from_ or start.custom_parameters.get("from") or issued.caller,
        callee=start.to or start.custom_parameters.get("to") or issued.callee,
        direction=start.direction or issued.direction,
        custom_parameters={k: v for k, v in start.custom_parameters.items() if k != "session_token"},
    )
