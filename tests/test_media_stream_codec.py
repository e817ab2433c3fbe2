"""MediaStreamCodec against the documented Twilio (§1.4–1.5) and Rozper (§7.3) messages."""

from __future__ import annotations

import base64
import json

import pytest

from agent_runtime.carrier import (
    Connected,
    Dtmf,
    ExtensionNotNegotiated,
    Mark,
    Media,
    MediaStreamCodec,
    Start,
    Stop,
    StreamNotStarted,
    TransferAck,
)

SID = "MZ5a1b2c3d4e5f60718293a4b5c6d7e8f9"
CONNECTED = '{"event":"connected","protocol":"Call","version":"1.0.0"}'
START = (
    '{"event":"start","sequenceNumber":"1",'
    '"start":{"accountSid":"AC0f1e2d3c4b5a69788796a5b4c3d2e1f0",'
    '"streamSid":"MZ5a1b2c3d4e5f60718293a4b5c6d7e8f9",'
    '"callSid":"CA9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b","tracks":["inbound"],'
    '"customParameters":{"tenant":"acme","agent_id":"support-v3","session_token":"st_7f3c1a90e2"},'
    '"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}},'
    '"streamSid":"MZ5a1b2c3d4e5f60718293a4b5c6d7e8f9"}'
)
PAYLOAD = bytes(range(160))
MEDIA = json.dumps(
    {
        "event": "media",
        "sequenceNumber": "2",
        "media": {
            "track": "inbound",
            "chunk": "1",
            "timestamp": "20",
            "payload": base64.b64encode(PAYLOAD).decode(),
        },
        "streamSid": SID,
    }
)
DTMF = (
    '{"event":"dtmf","sequenceNumber":"3","streamSid":"%s",'
    '"dtmf":{"track":"inbound_track","digit":"#"}}' % SID
)
MARK = '{"event":"mark","sequenceNumber":"4","streamSid":"%s","mark":{"name":"r7:c12"}}' % SID
STOP = (
    '{"event":"stop","sequenceNumber":"5","streamSid":"%s",'
    '"stop":{"accountSid":"AC0f1e2d3c4b5a69788796a5b4c3d2e1f0",'
    '"callSid":"CA9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b"}}' % SID
)
ROZPER_START = json.dumps(
    {
        "event": "start",
        "sequenceNumber": "1",
        "start": {
            "accountSid": "AC_01HZX0",
            "streamSid": SID,
            "callSid": "CA_01JQ7Z3K8R",
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            "extensions": ["transfer", "hangup", "stop_reason"],
            "from": "+15551230001",
            "to": "+15559870002",
            "direction": "outbound",
        },
        "streamSid": SID,
    }
)
DOCUMENTED = [CONNECTED, START, MEDIA, DTMF, MARK, STOP]


def started(frame: str = START) -> MediaStreamCodec:
    codec = MediaStreamCodec()
    assert isinstance(codec.decode(frame), Start)
    return codec


def test_documented_twilio_sequence() -> None:
    codec = MediaStreamCodec()
    events = [codec.decode(f) for f in DOCUMENTED]
    assert events[0] == Connected("Call", "1.0.0")
    start = events[1]
    assert isinstance(start, Start)
    assert start.stream_sid == SID
    assert start.call_sid == "CA9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b"
    assert start.account_sid == "AC0f1e2d3c4b5a69788796a5b4c3d2e1f0"
    assert start.tracks == ["inbound"]
    assert start.custom_parameters["session_token"] == "st_7f3c1a90e2"
    assert (start.encoding, start.sample_rate, start.channels) == ("audio/x-mulaw", 8000, 1)
    assert start.extensions == frozenset() and start.from_ is None
    assert events[2] == Media(PAYLOAD, 20, 1, "inbound")
    assert events[3] == Dtmf("#")
    assert events[4] == Mark("r7:c12")
    assert events[5] == Stop(None)
    assert (codec.decoded, codec.malformed, codec.ignored, codec.sequence_gaps) == (6, 0, 0, 0)
    assert codec.stream_sid == SID


def test_bytes_frames_decode_too() -> None:
    codec = started(START)
    assert codec.decode(MEDIA.encode()) == Media(PAYLOAD, 20, 1, "inbound")


def test_connected_without_sequence_number_does_not_count_as_gap() -> None:
    codec = MediaStreamCodec()
    codec.decode(CONNECTED)
    codec.decode(START)
    assert codec.last_sequence == 1 and codec.sequence_gaps == 0


def test_numbers_as_strings_or_ints() -> None:
    codec = started()
    frame = json.loads(MEDIA)
    frame["media"].update(chunk=7, timestamp=140)
    frame["sequenceNumber"] = 3
    assert codec.decode(json.dumps(frame)) == Media(PAYLOAD, 140, 7, "inbound")
    start = json.loads(START)
    start["start"]["mediaFormat"].update(sampleRate="8000", channels="1")
    ev = MediaStreamCodec().decode(json.dumps(start))
    assert isinstance(ev, Start) and (ev.sample_rate, ev.channels) == (8000, 1)


def test_custom_parameters_absent_is_empty_and_stream_sid_falls_back() -> None:
    start = json.loads(START)
    del start["start"]["customParameters"]
    del start["start"]["streamSid"]
    codec = MediaStreamCodec()
    ev = codec.decode(json.dumps(start))
    assert isinstance(ev, Start)
    assert ev.custom_parameters == {} and ev.stream_sid == SID
    assert codec.stream_sid == SID


def test_start_without_any_stream_sid_is_malformed() -> None:
    start = json.loads(START)
    del start["start"]["streamSid"]
    del start["streamSid"]
    codec = MediaStreamCodec()
    assert codec.decode(json.dumps(start)) is None
    assert codec.malformed_by_reason == {"schema": 1}


def test_unknown_event_ignored_and_unknown_keys_tolerated() -> None:
    codec = started()
    assert codec.decode('{"event":"error","sequenceNumber":"2","error":{"code":"x"}}') is None
    assert (codec.ignored, codec.malformed, codec.sequence_gaps) == (1, 0, 0)
    frame = json.loads(MEDIA)
    frame["sequenceNumber"] = "3"
    frame["newTopLevel"] = {"x": [1, 2]}
    frame["media"]["extra"] = None
    assert isinstance(codec.decode(json.dumps(frame)), Media)
    assert codec.sequence_gaps == 0


def test_sequence_gaps_counted() -> None:
    codec = started()
    frame = json.loads(MEDIA)
    frame["sequenceNumber"] = "5"  # 2, 3, 4 lost
    codec.decode(json.dumps(frame))
    assert codec.sequence_gaps == 3


def test_rozper_extensions_and_call_metadata() -> None:
    codec = MediaStreamCodec()
    ev = codec.decode(ROZPER_START)
    assert isinstance(ev, Start)
    assert ev.extensions == frozenset({"transfer", "hangup", "stop_reason"})
    assert (ev.from_, ev.to, ev.direction) == ("+15551230001", "+15559870002", "outbound")
    assert ev.custom_parameters == {}
    assert codec.supports("transfer") and codec.supports("hangup")
    assert not codec.supports("teleport")


def test_stop_reason_and_transfer_ack() -> None:
    codec = started(ROZPER_START)
    ack = '{"event":"transfer","sequenceNumber":"812","streamSid":"%s","transfer":%s}'
    assert codec.decode(ack % (SID, '{"status":"accepted"}')) == TransferAck("accepted", None)
    failed = codec.decode(ack % (SID, '{"status":"failed","error":"queue_not_found"}'))
    assert failed == TransferAck("failed", "queue_not_found")
    stop = '{"event":"stop","sequenceNumber":"813","streamSid":"%s","stop":{"reason":"%s"}}'
    assert codec.decode(stop % (SID, "transferred")) == Stop("transferred")


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("{not json", "json"),
        ('{"event":"media","media":{"chunk":"1","timestamp":"0","payload":"@@@@"}}', "base64"),
        ('{"event":"media","media":{"chunk":"1","timestamp":"0"}}', "schema"),
        ('{"event":"media","media":{"chunk":"one","timestamp":"0","payload":""}}', "schema"),
        ('{"event":"media","media":{"chunk":"-1","timestamp":"0","payload":""}}', "schema"),
        ('{"event":"mark","mark":{"name":5}}', "schema"),
        ('{"event":"dtmf","dtmf":{"digit":"x"}}', "value"),
        ('{"sequenceNumber":"2"}', "schema"),
        ('{"event":7}', "schema"),
        ("[]", "schema"),
    ],
)
def test_malformed_frames_counted_by_reason(frame: str, reason: str) -> None:
    codec = MediaStreamCodec()
    assert codec.decode(frame) is None
    assert codec.malformed == 1 and codec.malformed_by_reason == {reason: 1}


def test_oversize_payload_rejected() -> None:
    codec = MediaStreamCodec(max_payload_b64=1024)
    big = base64.b64encode(bytes(3000)).decode()
    frame = '{"event":"media","media":{"chunk":"1","timestamp":"0","payload":"%s"}}' % big
    assert codec.decode(frame) is None
    assert codec.malformed_by_reason == {"oversize": 1}
    ok = base64.b64encode(bytes(768)).decode()  # exactly 1024 base64 chars
    assert isinstance(codec.decode(frame.replace(big, ok)), Media)


# ---- encoders ----


def test_encode_media_exact_fields() -> None:
    codec = started()
    text = codec.encode_media(bytes(160))
    msg = json.loads(text)
    b64 = msg["media"]["payload"]
    assert msg == {"event": "media", "streamSid": SID, "media": {"payload": b64}}
    assert len(b64) == 216 and "\n" not in text
    assert base64.b64decode(b64) == bytes(160)


def test_encode_mark_and_clear_exact_fields() -> None:
    codec = started()
    assert json.loads(codec.encode_mark('r7:c12 "q"')) == {
        "event": "mark",
        "streamSid": SID,
        "mark": {"name": 'r7:c12 "q"'},
    }
    assert json.loads(codec.encode_clear()) == {"event": "clear", "streamSid": SID}


def test_encoders_need_a_stream_sid() -> None:
    codec = MediaStreamCodec()
    with pytest.raises(StreamNotStarted):
        codec.encode_media(b"\xff")
    with pytest.raises(StreamNotStarted):
        codec.encode_clear()
    preset = MediaStreamCodec(stream_sid=SID)
    assert json.loads(preset.encode_clear())["streamSid"] == SID


def test_extensions_refused_unless_announced() -> None:
    codec = started(START)  # a Twilio peer announces nothing
    with pytest.raises(ExtensionNotNegotiated, match="transfer"):
        codec.encode_transfer({"type": "queue", "queue": "q"}, "r", "s", {})
    with pytest.raises(ExtensionNotNegotiated, match="hangup"):
        codec.encode_hangup("completed")


def test_extension_messages_exact_shape() -> None:
    codec = started(ROZPER_START)
    target = {"type": "queue", "queue": "support-tier1"}
    msg = json.loads(
        codec.encode_transfer(
            target, "caller_requested_human", "Refund request for order A-17", {"order_id": "A-17"}
        )
    )
    assert msg == {
        "event": "transfer",
        "streamSid": SID,
        "transfer": {
            "target": target,
            "reason": "caller_requested_human",
            "summary": "Refund request for order A-17",
            "context": {"order_id": "A-17"},
        },
    }
    assert json.loads(codec.encode_hangup("completed")) == {
        "event": "hangup",
        "streamSid": SID,
        "hangup": {"reason": "completed"},
    }
    with pytest.raises(ValueError):
        codec.encode_transfer({"type": "carrier-pigeon"}, "r", "s", {})


def test_encode_decode_round_trip_through_simulated_peer() -> None:
    codec = started()
    out = json.loads(codec.encode_media(PAYLOAD))
    echoed = dict(out, sequenceNumber="2")
    echoed["media"] = dict(out["media"], chunk="1", timestamp="0", track="inbound")
    assert codec.decode(json.dumps(echoed)) == Media(PAYLOAD, 0, 1, "inbound")
