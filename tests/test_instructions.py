"""Voice instructions: the model, Rozper JSON, TwiML (§1.2, §7.2)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from agent_runtime.carrier import (
    ConnectStream,
    Hangup,
    Pause,
    PhoneTarget,
    Play,
    QueueTarget,
    Redirect,
    Say,
    SipTarget,
    Transfer,
    VoiceInstructions,
    parse_rozper,
    render_rozper,
    render_twiml,
)

SPEC_DOC = {
    "version": "1",
    "instructions": [
        {
            "verb": "say",
            "text": "Hi, this is Acme. How can I help?",
            "voice": "marin",
            "language": "en-US",
        },
        {
            "verb": "connect_stream",
            "url": "wss://rt.example.com/rozper/media",
            "parameters": {
                "tenant": "acme",
                "agent_id": "support-v3",
                "session_token": "st_7f3c1a90e2",
            },
            "status_callback": "https://rt.example.com/rozper/stream-status",
        },
        {
            "verb": "transfer",
            "target": {"type": "queue", "queue": "support-tier1"},
            "whisper": "Caller asked about a refund for order A-17.",
            "timeout": 120,
        },
        {"verb": "hangup"},
    ],
}


def one(instruction: dict) -> dict:
    return {"version": "1", "instructions": [instruction]}


def twilio_like_doc() -> VoiceInstructions:
    return VoiceInstructions(
        instructions=[
            ConnectStream(
                url="wss://rt.example.com/twilio/media",
                parameters={"tenant": "acme & co", "note": 'say "hi" <now>'},
                status_callback="https://rt.example.com/twilio/stream-status",
            ),
            Say(text="Transferring you to an agent."),
            Transfer(target=QueueTarget(queue="support")),
        ]
    )


def test_spec_document_parses_and_round_trips() -> None:
    doc = parse_rozper(SPEC_DOC)
    assert isinstance(doc.instructions[0], Say)
    assert isinstance(doc.instructions[1], ConnectStream)
    transfer = doc.instructions[2]
    assert isinstance(transfer, Transfer) and transfer.target == QueueTarget(queue="support-tier1")
    assert isinstance(doc.instructions[3], Hangup)
    assert render_rozper(doc) == SPEC_DOC
    assert parse_rozper(render_rozper(doc)) == doc


def test_every_verb_round_trips() -> None:
    doc = VoiceInstructions(
        instructions=[
            Say(text="hello", voice="alice"),
            Play(url="https://x.example/a.wav", loop=2),
            Pause(seconds=3),
            ConnectStream(url="ws://localhost:8000/media", action="https://x.example/after"),
            Transfer(target=PhoneTarget(number="+15551230001"), timeout=30, context={"k": [1]}),
            Transfer(target=SipTarget(uri="sip:agent@pbx.example")),
            Redirect(url="https://x.example/next"),
            Hangup(),
        ]
    )
    assert parse_rozper(render_rozper(doc)) == doc


def test_twiml_rendering_and_escaping() -> None:
    xml = render_twiml(twilio_like_doc())
    assert xml.startswith('<?xml version="1.0" encoding="UTF-8"?><Response>')
    assert 'value="acme &amp; co"' in xml
    assert "&quot;hi&quot;" in xml and "&lt;now&gt;" in xml
    root = ET.fromstring(xml.split("?>", 1)[1])
    assert [child.tag for child in root] == ["Connect", "Say", "Enqueue"]
    stream = root.find("Connect/Stream")
    assert stream is not None
    assert stream.get("url") == "wss://rt.example.com/twilio/media"
    assert stream.get("statusCallback") == "https://rt.example.com/twilio/stream-status"
    assert stream.get("statusCallbackMethod") == "POST"
    params = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
    assert params == {"tenant": "acme & co", "note": 'say "hi" <now>'}
    assert root.findtext("Say") == "Transferring you to an agent."
    assert root.findtext("Enqueue") == "support"


def test_twiml_other_verbs() -> None:
    doc = VoiceInstructions(
        instructions=[
            Say(text="a & b", voice="Polly.Joanna", language="en-US"),
            Play(url="https://x.example/a.wav"),
            Pause(seconds=2),
            ConnectStream(url="wss://h.example/m", action="https://h.example/after"),
            Transfer(target=PhoneTarget(number="+15551230001"), timeout=30),
            Transfer(target=SipTarget(uri="sip:agent@pbx.example")),
            Redirect(url="https://x.example/next?a=1&b=2"),
            Hangup(),
        ]
    )
    root = ET.fromstring(render_twiml(doc).split("?>", 1)[1])
    assert [c.tag for c in root] == [
        "Say", "Play", "Pause", "Connect", "Dial", "Dial", "Redirect", "Hangup",
    ]
    say = root[0]
    assert (say.text, say.get("voice"), say.get("language")) == ("a & b", "Polly.Joanna", "en-US")
    assert root[2].get("length") == "2"
    assert root[3].get("action") == "https://h.example/after"
    assert root[4].text == "+15551230001" and root[4].get("timeout") == "30"
    assert root[5].findtext("Sip") == "sip:agent@pbx.example"
    assert root[6].text == "https://x.example/next?a=1&b=2"


def test_unknown_verb_fails_closed() -> None:
    bad = {"version": "1", "instructions": [{"verb": "teleport", "to": "mars"}]}
    with pytest.raises(ValueError):
        parse_rozper(bad)


def test_version_required_and_known() -> None:
    with pytest.raises(ValueError):
        parse_rozper({"instructions": []})
    with pytest.raises(ValueError):
        parse_rozper({"version": "2", "instructions": []})
    with pytest.raises(ValueError):
        parse_rozper(["not", "an", "object"])  # type: ignore[arg-type]


def test_unknown_fields_ignored() -> None:
    doc = parse_rozper(
        {"version": "1", "future": 1, "instructions": [{"verb": "hangup", "why": "x"}]}
    )
    assert doc.instructions == [Hangup()]


@pytest.mark.parametrize(
    "url",
    [
        "wss://rt.example.com/media?tenant=acme",
        "wss://rt.example.com/media?",
        "https://rt.example.com/media",
        "wss:///media",
        "rt.example.com/media",
        "wss://rt.example.com/media#frag",
    ],
)
def test_connect_stream_url_rules(url: str) -> None:
    with pytest.raises(ValueError):
        ConnectStream(url=url)
    with pytest.raises(ValueError):
        parse_rozper(one({"verb": "connect_stream", "url": url}))


def test_connect_stream_parameter_limits() -> None:
    ConnectStream(url="wss://h.example/m", parameters={"k": "v" * 498})  # 499 chars: fine
    with pytest.raises(ValueError):
        ConnectStream(url="wss://h.example/m", parameters={"k": "v" * 499})  # 500: too long
    with pytest.raises(ValueError):
        parse_rozper(one({"verb": "connect_stream", "url": "wss://h/m", "parameters": {"a": 1}}))


def test_transfer_target_validation() -> None:
    with pytest.raises(ValueError):
        PhoneTarget(number="5551230001")
    with pytest.raises(ValueError):
        SipTarget(uri="http://x")
    with pytest.raises(ValueError):
        parse_rozper(one({"verb": "transfer", "target": {"type": "fax"}}))
    with pytest.raises(ValueError):
        parse_rozper(one({"verb": "say"}))  # text required
