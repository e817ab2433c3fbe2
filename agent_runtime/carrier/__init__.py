"""Carrier dialects (pure codecs), voice instructions and request signatures.

Twilio and Rozper share one media-stream codec; only call-control rendering differs
(`render_twiml` vs `render_rozper`).
"""

from agent_runtime.carrier.events import (
    Connected,
    Dtmf,
    InboundEvent,
    Mark,
    Media,
    Start,
    Stop,
    TransferAck,
)
from agent_runtime.carrier.instructions import (
    ConnectStream,
    Hangup,
    Instruction,
    Pause,
    PhoneTarget,
    Play,
    QueueTarget,
    Redirect,
    Say,
    SipTarget,
    Transfer,
    TransferTarget,
    VoiceInstructions,
    parse_rozper,
    render_rozper,
    render_twiml,
)
from agent_runtime.carrier.media_stream import (
    KNOWN_EXTENSIONS,
    ExtensionNotNegotiated,
    MediaStreamCodec,
    StreamNotStarted,
)
from agent_runtime.carrier.signatures import (
    SignatureError,
    new_session_token,
    sign,
    sign_stream_url,
    twilio_signature,
    verify,
    verify_stream_url,
    verify_twilio,
)

__all__ = [
    "KNOWN_EXTENSIONS",
    "ConnectStream",
    "Connected",
    "Dtmf",
    "ExtensionNotNegotiated",
    "Hangup",
    "InboundEvent",
    "Instruction",
    "Mark",
    "Media",
    "MediaStreamCodec",
    "Pause",
    "PhoneTarget",
    "Play",
    "QueueTarget",
    "Redirect",
    "Say",
    "SignatureError",
    "SipTarget",
    "Start",
    "Stop",
    "StreamNotStarted",
    "Transfer",
    "TransferAck",
    "TransferTarget",
    "VoiceInstructions",
    "new_session_token",
    "parse_rozper",
    "render_rozper",
    "render_twiml",
    "sign",
    "sign_stream_url",
    "twilio_signature",
    "verify",
    "verify_stream_url",
    "verify_twilio",
]
