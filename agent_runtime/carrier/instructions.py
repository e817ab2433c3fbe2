"""Voice instructions (§7.2): one internal model, rendered as Rozper JSON or as Twilio TwiML.

The model validates at construction, so a bad document (a stream URL with a query string, an
over-long parameter) fails when the runtime builds it, not on a live call. `parse_rozper`
fails closed on unknown verbs or versions; unknown fields are ignored (forward compatibility).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

MAX_PARAMETER_CHARS = 500  # Twilio: name + value of each <Parameter> must be under 500
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")


class _Verb(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Say(_Verb):
    verb: Literal["say"] = "say"
    text: str = Field(min_length=1)
    voice: str | None = None
    language: str | None = None


class Play(_Verb):
    verb: Literal["play"] = "play"
    url: str = Field(min_length=1)
    loop: int = Field(default=1, ge=0)


class Pause(_Verb):
    verb: Literal["pause"] = "pause"
    seconds: int = Field(default=1, ge=0)


class ConnectStream(_Verb):
    """Blocking bidirectional media stream (`<Connect><Stream>`)."""

    verb: Literal["connect_stream"] = "connect_stream"
    url: str
    parameters: dict[str, str] = Field(default_factory=dict)
    status_callback: str | None = None
    action: str | None = None

    @field_validator("url")
    @classmethod
    def _stream_url(cls, url: str) -> str:
        parts = urlsplit(url)
        # ws:// is for local testing only; carriers require wss://.
        if parts.scheme not in ("wss", "ws") or not parts.netloc:
            raise ValueError("stream url must be an absolute wss:// (or ws:// for local) URL")
        if parts.query or "?" in url:
            raise ValueError("stream url must not have a query string; use parameters")
        if parts.fragment:
            raise ValueError("stream url must not have a fragment")
        return url

    @field_validator("parameters")
    @classmethod
    def _parameter_sizes(cls, parameters: dict[str, str]) -> dict[str, str]:
        for name, value in parameters.items():
            if not name:
                raise ValueError("parameter names must not be empty")
            if len(name) + len(value) >= MAX_PARAMETER_CHARS:
                raise ValueError(
                    f"parameter {name!r}: name + value must be under {MAX_PARAMETER_CHARS} chars"
                )
        return parameters


class QueueTarget(_Verb):
    type: Literal["queue"] = "queue"
    queue: str = Field(min_length=1)


class PhoneTarget(_Verb):
    type: Literal["phone"] = "phone"
    number: str

    @field_validator("number")
    @classmethod
    def _e164(cls, number: str) -> str:
        if not _E164.fullmatch(number):
            raise ValueError("phone target must be an E.164 number like +15551230001")
        return number


class SipTarget(_Verb):
    type: Literal["sip"] = "sip"
    uri: str

    @field_validator("uri")
    @classmethod
    def _sip(cls, uri: str) -> str:
        if not uri.startswith(("sip:", "sips:")):
            raise ValueError("sip target must be a sip: or sips: URI")
        return uri


TransferTarget = Annotated[QueueTarget | PhoneTarget | SipTarget, Field(discriminator="type")]


class Transfer(_Verb):
    """Hand the caller to a human. `whisper`/`context` reach the agent desktop (Rozper only)."""

    verb: Literal["transfer"] = "transfer"
    target: TransferTarget
    whisper: str | None = None
    timeout: int | None = Field(default=None, gt=0)
    context: dict[str, Any] | None = None


class Redirect(_Verb):
    verb: Literal["redirect"] = "redirect"
    url: str = Field(min_length=1)


class Hangup(_Verb):
    verb: Literal["hangup"] = "hangup"


Instruction = Annotated[
    Say | Play | Pause | ConnectStream | Transfer | Redirect | Hangup,
    Field(discriminator="verb"),
]


class VoiceInstructions(_Verb):
    version: Literal["1"] = "1"
    instructions: list[Instruction] = Field(default_factory=list)


# ---- Rozper JSON ----


def render_rozper(doc: VoiceInstructions) -> dict[str, Any]:
    """The JSON document Rozper executes (unset optional fields omitted)."""
    return doc.model_dump(mode="json", exclude_none=True)


def parse_rozper(data: dict[str, Any]) -> VoiceInstructions:
    """Parse a Rozper document; raise ValueError on unknown verbs, bad version or bad fields."""
    if not isinstance(data, dict):
        raise ValueError("voice instructions must be a JSON object")
    if "version" not in data:
        raise ValueError("voice instructions: `version` is required")
    try:
        return VoiceInstructions.model_validate(data)
    except ValidationError as exc:
        raise ValueError(f"invalid voice instructions: {exc}") from exc


# ---- TwiML ----


def render_twiml(doc: VoiceInstructions) -> str:
    """The same document as TwiML. ElementTree does the XML escaping.

    Rozper-only details with no TwiML form are dropped (transfer `whisper`/`context`, and
    `timeout` for a queue); `say.voice` is passed through as-is, so give a Twilio voice name.
    """
    response = ET.Element("Response")
    for ins in doc.instructions:
        _render_verb(response, ins)
    body = ET.tostring(response, encoding="unicode", short_empty_elements=True)
    return '<?xml version="1.0" encoding="UTF-8"?>' + body


def _set(el: ET.Element, name: str, value: object | None) -> None:
    if value is not None:
        el.set(name, str(value))


def _render_verb(parent: ET.Element, ins: Any) -> None:
    if isinstance(ins, Say):
        el = ET.SubElement(parent, "Say")
        _set(el, "voice", ins.voice)
        _set(el, "language", ins.language)
        el.text = ins.text
    elif isinstance(ins, Play):
        el = ET.SubElement(parent, "Play")
        if ins.loop != 1:
            el.set("loop", str(ins.loop))
        el.text = ins.url
    elif isinstance(ins, Pause):
        ET.SubElement(parent, "Pause", {"length": str(ins.seconds)})
    elif isinstance(ins, ConnectStream):
        connect = ET.SubElement(parent, "Connect")
        _set(connect, "action", ins.action)
        stream = ET.SubElement(connect, "Stream", {"url": ins.url})
        if ins.status_callback is not None:
            stream.set("statusCallback", ins.status_callback)
            stream.set("statusCallbackMethod", "POST")
        for name, value in ins.parameters.items():
            ET.SubElement(stream, "Parameter", {"name": name, "value": value})
    elif isinstance(ins, Transfer):
        _render_transfer(parent, ins)
    elif isinstance(ins, Redirect):
        ET.SubElement(parent, "Redirect").text = ins.url
    elif isinstance(ins, Hangup):
        ET.SubElement(parent, "Hangup")
    else:  # the model admits nothing else; guard against future verbs without a renderer
        raise ValueError(f"no TwiML rendering for {type(ins).__name__}")


def _render_transfer(parent: ET.Element, ins: Transfer) -> None:
    target = ins.target
    if isinstance(target, QueueTarget):
        ET.SubElement(parent, "Enqueue").text = target.queue
        return
    dial = ET.SubElement(parent, "Dial")
    _set(dial, "timeout", ins.timeout)
    if isinstance(target, PhoneTarget):
        dial.text = target.number
    else:
        ET.SubElement(dial, "Sip").text = target.uri


__all__ = [
    "MAX_PARAMETER_CHARS",
    "ConnectStream",
    "Hangup",
    "Instruction",
    "Pause",
    "PhoneTarget",
    "Play",
    "QueueTarget",
    "Redirect",
    "Say",
    "SipTarget",
    "Transfer",
    "TransferTarget",
    "VoiceInstructions",
    "parse_rozper",
    "render_rozper",
    "render_twiml",
]
