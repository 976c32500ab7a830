"""The relay's WebSocket protocol: welcome, ping, seq, forwarding,
participant checks, frame sizes and framing."""

import json

import pytest

from wsclient import (Closed, assert_forwarded, barrier,
    connect_user, sample_candidate, sample_sdp, start_call)


@pytest.fixture
def marker(sb):
    """A user that never connects, whose status changes are barriers."""
    return sb.make_user()


def test_welcome_pong_carry_no_seq(sb):
    u = sb.make_user()
    with connect_user(sb, u) as c:
        w = c.log[0]
        assert {k: w[k] for k in ("type", "status", "timestamp")} == {
            "type": "welcome", "status": "connected", "timestamp": 0}, w
        # The stream's name and where it stands, not a seq of its own.
        assert "seq" not in w and w["epoch"] == c.epoch, w
        e = sb.sql("SELECT epoch FROM notify_stream")[0][0]
        assert w["epoch"] == e, (w, e)
        assert w["last_seq"] <= sb.sql("SELECT max(id) FROM notify")[0][0]
        p = c.ping()
        assert set(p) == {"type", "timestamp"}, p


def test_events_carry_increasing_seq(sb, marker):
    u = sb.make_user()
    with connect_user(sb, u) as c:
        barrier(sb, marker, "busy", [c])
        barrier(sb, marker, "away", [c])
        barrier(sb, marker, "online", [c])
        seqs = [m["seq"] for m in c.log if m.get("type") not in
            ("welcome", "pong", "error", "resync_required")]
        assert seqs, c.log
        assert all(isinstance(s, int) and not isinstance(s, bool)
            for s in seqs), seqs
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), \
            seqs


def test_call_status_forwarded_with_sender_extension(sb):
    """Raw object, all fields, to every socket of to, within a call the
    relay knows; from is the sender."""
    a, b = sb.make_user(), sb.make_user()
    with connect_user(sb, a) as ca, connect_user(sb, b) as cb1, \
        connect_user(sb, b) as cb2:
        r = sb.req("POST", "/protected/call/initiate?method=webrtc",
            token=a["token"], json={"target_extension": b["extension"]})
        assert r.status_code == 200, r.text
        call_id = r.json()["call_id"]
        for cb in (cb1, cb2):
            cb.wait_type("webrtc_call_invitation", call_id=call_id)
        sent = {"type": "call_status", "to": b["extension"],
            "from": "0000", "channel": call_id, "status": "ringing",
            "extra": {"nested": [1, 2.5, None, True], "s": "\u00e9\u2603"},
            "timestamp": 1700000000123}
        ca.send(sent)
        for cb in (cb1, cb2):
            got = cb.wait_type("call_status", channel=call_id)
            assert_forwarded(got, sent, a["extension"])
            assert cb.frames[cb.log.index(got)] == 1


def test_webrtc_without_call_is_refused(sb, marker):
    a, b = sb.make_user(), sb.make_user()
    with connect_user(sb, a) as ca, connect_user(sb, b) as cb:
        ca.send({"type": "webrtc_offer", "to": b["extension"],
            "channel": "webrtc-call-1", "offer": {"type": "offer",
            "sdp": sample_sdp()}})
        err = ca.wait_type("error")
        assert "seq" not in err, err
        barrier(sb, marker, "busy", [cb])
        assert not [m for m in cb.log if m.get("type") == "webrtc_offer"]


def test_webrtc_to_non_participant_is_refused(sb, marker):
    a, b, c = sb.make_user(), sb.make_user(), sb.make_user()
    with connect_user(sb, a) as ca, connect_user(sb, b) as cb, \
        connect_user(sb, c) as cc:
        call_id = start_call(sb, a, b, ca, cb)
        # The right channel, the wrong peer.
        ca.send({"type": "webrtc_offer", "to": c["extension"],
            "channel": call_id, "offer": {"type": "offer", "sdp": "v=0"}})
        ca.wait_type("error")
        # A third party cannot inject into the call.
        cc.send({"type": "webrtc_ice_candidate", "to": b["extension"],
            "channel": call_id, "candidate": sample_candidate(0)})
        cc.wait_type("error")
        barrier(sb, marker, "busy", [cb, cc])
        assert not [m for m in cc.log if m.get("type", "").startswith(
            "webrtc_offer")]
        assert not [m for m in cb.log if m.get("type") ==
            "webrtc_ice_candidate"]
        ca.send({"type": "webrtc_call_ended", "to": b["extension"],
            "channel": call_id, "call_id": call_id})
        cb.wait_type("webrtc_call_ended")


def test_sdp_and_ice_arrive_intact_one_frame_each(sb):
    a, b = sb.make_user(), sb.make_user()
    with connect_user(sb, a) as ca, connect_user(sb, b) as cb:
        call_id = start_call(sb, a, b, ca, cb)
        offer = {"type": "webrtc_offer", "to": b["extension"],
            "from": a["extension"], "channel": call_id,
            "call_id": call_id,
            "offer": {"type": "offer", "sdp": sample_sdp(5000, 1)}}
        assert len(json.dumps(offer)) > 5000
        ca.send(offer)
        got = cb.wait_type("webrtc_offer")
        assert_forwarded(got, offer, a["extension"])
        assert cb.frames[cb.log.index(got)] == 1
        answer = {"type": "webrtc_answer", "to": a["extension"],
            "from": b["extension"], "channel": call_id,
            "answer": {"type": "answer", "sdp": sample_sdp(4000, 2)}}
        cb.send(answer)
        got = ca.wait_type("webrtc_answer")
        assert_forwarded(got, answer, b["extension"])
        assert ca.frames[ca.log.index(got)] == 1
        # Trickle ICE both ways, interleaved.
        sent_a, sent_b = [], []
        for i in range(8):
            m = {"type": "webrtc_ice_candidate", "to": b["extension"],
                "from": a["extension"], "channel": call_id,
                "candidate": sample_candidate(i, 1)}
            ca.send(m)
            sent_a.append(m)
            m = {"type": "webrtc_ice_candidate", "to": a["extension"],
                "from": b["extension"], "channel": call_id,
                "candidate": sample_candidate(i, 2)}
            cb.send(m)
            sent_b.append(m)
        # End of candidates: no candidate field.
        eoc = {"type": "webrtc_ice_candidate", "to": b["extension"],
            "channel": call_id}
        ca.send(eoc)
        sent_a.append(eoc)
        for rx, sent, sender in ((cb, sent_a, a), (ca, sent_b, b)):
            for m in sent:
                got = rx.wait_type("webrtc_ice_candidate")
                assert_forwarded(got, m, sender["extension"])
                assert rx.frames[rx.log.index(got)] == 1
        # Near the 64 KiB frame limit.
        big = {"type": "webrtc_offer", "to": b["extension"],
            "channel": call_id, "offer": {"type": "offer",
            "sdp": sample_sdp(60000, 3)}}
        assert 60000 < len(json.dumps(big)) < 64 * 1024 - 256
        ca.send(big)
        got = cb.wait_type("webrtc_offer", timeout=20)
        assert_forwarded(got, big, a["extension"])
        assert cb.frames[cb.log.index(got)] == 1
        ca.send({"type": "webrtc_call_ended", "to": b["extension"],
            "channel": call_id, "call_id": call_id})
        cb.wait_type("webrtc_call_ended")


def test_hangup_and_answer_call_reach_participants_only(sb, marker):
    a, b, c = sb.make_user(), sb.make_user(), sb.make_user()
    with connect_user(sb, a) as ca, connect_user(sb, b) as cb, \
        connect_user(sb, c) as cc:
        call_id = start_call(sb, a, b, ca, cb, accept=False)
        cb.send({"type": "answer_call", "channel": call_id,
            "extension": b["extension"], "transport": "transport-ws"})
        m = ca.wait_type("call_answered", channel=call_id)
        assert m["from"] == b["extension"] and m["status"] == "answered"
        ca.send({"type": "hangup", "channel": call_id,
            "timestamp": 1700000000000})
        m = cb.wait_type("call_ended", channel=call_id)
        assert m["from"] == a["extension"] and m["status"] == "ended"
        barrier(sb, marker, "busy", [cc])
        leaked = [m for m in cc.log if m.get("type") in
            ("call_ended", "call_answered", "webrtc_call_invitation",
            "webrtc_call_initiated")]
        assert not leaked, leaked


def test_oversized_frame_does_not_hurt_others(sb):
    a, b = sb.make_user(), sb.make_user()
    with connect_user(sb, b) as cb:
        ca = connect_user(sb, a)
        try:
            ca.send({"type": "call_status", "to": b["extension"],
                "pad": "x" * (200 * 1024)})
            try:
                # Either an error reply or a close; never forwarded.
                while True:
                    m = ca.recv(timeout=10)
                    if m.get("type") == "error":
                        break
            except Closed:
                pass
        finally:
            ca.close()
        cb.ping()
        assert not [m for m in cb.log if m.get("type") == "call_status"]
        with connect_user(sb, a) as ca2:
            ca2.ping()


def test_malformed_client_messages_are_harmless(sb):
    a, b = sb.make_user(), sb.make_user()
    with connect_user(sb, a) as ca, connect_user(sb, b) as cb:
        for raw in ("not json", "[1,2]", "{\"type\":123}", "{}",
            "{\"type\":\"call_status\"}", "{\"type\":\"webrtc_offer\"}",
            "{\"type\":\"no_such_type\",\"to\":\"%s\"}" % b["extension"],
            "{\"type\":\"call_status\",\"to\":12}",
            "{\"type\":\"call_status\",\"to\":\"\"}",
            "\"just a string\"", "{\"type\":\"ping\"} {\"type\":\"ping\"}"):
            ca.send(raw)
        try:
            ca.ping()
        except Closed:
            pass
        cb.ping()
        bad = [m for m in cb.log if m.get("type") in ("no_such_type",
            "call_status")]
        assert not bad, bad


def test_64k_message_boundary(sb):
    """65,536 bytes is forwarded; one byte more closes the sender (1009)."""
    a, b = sb.make_user(), sb.make_user()
    with connect_user(sb, b) as cb, connect_user(sb, a) as ca0:
        call_id = start_call(sb, a, b, ca0, cb)
        for size in (64 * 1024, 64 * 1024 + 1):
            ca = connect_user(sb, a)
            try:
                m = {"type": "call_status", "to": b["extension"],
                    "channel": call_id, "size": size, "pad": ""}
                m["pad"] = "p" * (size - len(json.dumps(m)))
                assert len(json.dumps(m)) == size
                ca.send(m)
                if size == 64 * 1024:
                    got = cb.wait_type("call_status", size=size)
                    assert_forwarded(got, m, a["extension"])
                    assert cb.frames[cb.log.index(got)] == 1
                    ca.ping()
                else:
                    assert ca.wait_closed() == 1009
            finally:
                ca.close()
        cb.ping()
        assert len([x for x in cb.log if x.get("type") ==
            "call_status"]) == 1
