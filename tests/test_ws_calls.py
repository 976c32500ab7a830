"""WebRTC calls through REST and the relay, and their call_logs rows."""

import time

import pytest

from harness import start_system
from wsclient import (assert_forwarded, call_row, connect_user, initiate,
    sample_candidate, sample_sdp, start_call, wait_call_status)

INITIATE_KEYS = {"call_id", "channel", "message", "method", "priority",
    "success", "target"}
INVITATION_KEYS = {"call_id", "caller_extension", "caller_id",
    "caller_username", "target_extension", "timestamp", "type"}


def exchange_media(a, b, ca, cb, call_id):
    offer = {"type": "webrtc_offer", "to": b["extension"],
        "from": a["extension"], "channel": call_id,
        "offer": {"type": "offer", "sdp": sample_sdp()}}
    ca.send(offer)
    assert_forwarded(cb.wait_type("webrtc_offer"), offer, a["extension"])
    answer = {"type": "webrtc_answer", "to": a["extension"],
        "from": b["extension"], "channel": call_id,
        "answer": {"type": "answer", "sdp": sample_sdp(3000, 7)}}
    cb.send(answer)
    assert_forwarded(ca.wait_type("webrtc_answer"), answer, b["extension"])
    for i in range(3):
        m = {"type": "webrtc_ice_candidate", "to": a["extension"],
            "channel": call_id, "candidate": sample_candidate(i)}
        cb.send(m)
        assert_forwarded(ca.wait_type("webrtc_ice_candidate"), m,
            b["extension"])


def test_call_flow_ended_over_ws(sb):
    a, b = sb.make_user(), sb.make_user()
    with connect_user(sb, a) as ca, connect_user(sb, b) as cb:
        r = initiate(sb, a, b["extension"])
        assert r.status_code == 200, r.text
        j = r.json()
        assert set(j) == INITIATE_KEYS, j
        call_id = j["call_id"]
        assert call_id and j["channel"] == call_id
        assert j["message"] == "WebRTC call initiated successfully"
        assert j["method"] == "webrtc" and j["priority"] == "1"
        assert j["success"] is True and j["target"] == b["extension"]

        inv = cb.wait_type("webrtc_call_invitation", call_id=call_id)
        assert set(inv) - {"seq"} == INVITATION_KEYS, inv
        assert inv["caller_extension"] == a["extension"]
        assert inv["caller_id"] == a["id"]
        assert inv["caller_username"] == a["username"]
        assert inv["target_extension"] == b["extension"]
        assert isinstance(inv["timestamp"], str) and inv["timestamp"]
        ini = ca.wait_type("webrtc_call_initiated", call_id=call_id)
        assert set(ini) - {"seq"} == {"call_id", "status", "target",
            "type"}, ini
        assert ini["status"] == "calling"
        assert ini["target"] == b["extension"]
        # The invitation is for the callee only, and vice versa.
        assert not [m for m in ca.log if m.get("type") ==
            "webrtc_call_invitation"]

        row = call_row(sb, call_id)
        assert row["status"] == "initiated", row
        assert row["caller_id"] == a["id"]
        assert row["callee_id"] == b["id"]
        assert row["direction"] == "outbound"
        assert row["answer_time"] is None and row["end_time"] is None

        acc = {"type": "webrtc_call_accepted", "call_id": call_id,
            "to": a["extension"], "from": b["extension"],
            "channel": call_id}
        cb.send(acc)
        assert_forwarded(ca.wait_type("webrtc_call_accepted"), acc,
            b["extension"])
        row = wait_call_status(sb, call_id, "answered")
        assert row["answer_time"], row

        exchange_media(a, b, ca, cb, call_id)
        time.sleep(2.2)
        end = {"type": "webrtc_call_ended", "call_id": call_id,
            "to": b["extension"], "from": a["extension"],
            "channel": call_id}
        ca.send(end)
        assert_forwarded(cb.wait_type("webrtc_call_ended"), end,
            a["extension"])
        row = wait_call_status(sb, call_id, "ended")
        assert row["end_time"], row
        assert 2 <= row["duration"] <= 4, row

        # The call is over: signalling between them is refused now.
        ca.send({"type": "webrtc_offer", "to": b["extension"],
            "channel": call_id, "offer": {"type": "offer",
            "sdp": "v=0"}})
        ca.wait_type("error")


def test_call_flow_ended_over_rest(sb):
    a, b = sb.make_user(), sb.make_user()
    with connect_user(sb, a) as ca, connect_user(sb, b) as cb:
        call_id = start_call(sb, a, b, ca, cb)
        wait_call_status(sb, call_id, "answered")
        time.sleep(2.2)
        r = sb.req("POST", "/protected/call/hangup", token=b["token"],
            json={"channel": call_id})
        assert r.status_code == 200, r.text
        j = r.json()
        assert j["channel"] == call_id and j["success"] is True
        assert j["message"] == "Call ended successfully"
        assert isinstance(j["duration"], int)

        def ended(m):
            return (m.get("type") in ("call_ended",
                "webrtc_call_ended") and
                call_id in (m.get("channel"), m.get("call_id")))
        ca.wait_for(ended, what="call end on caller")
        cb.wait_for(ended, what="call end on callee")
        row = wait_call_status(sb, call_id, "ended")
        assert row["end_time"], row
        assert 2 <= row["duration"] <= 4, row


def test_call_rejected(sb):
    a, b = sb.make_user(), sb.make_user()
    with connect_user(sb, a) as ca, connect_user(sb, b) as cb:
        call_id = start_call(sb, a, b, ca, cb, accept=False)
        rej = {"type": "webrtc_call_rejected", "call_id": call_id,
            "to": a["extension"], "from": b["extension"],
            "channel": call_id}
        cb.send(rej)
        assert_forwarded(ca.wait_type("webrtc_call_rejected"), rej,
            b["extension"])
        row = wait_call_status(sb, call_id, "rejected")
        assert row["answer_time"] is None


def test_target_without_socket_fails(sb):
    a, b = sb.make_user(), sb.make_user()
    with connect_user(sb, a) as ca:
        r = initiate(sb, a, b["extension"])
        assert r.status_code == 500, r.text
        assert r.json() == {"error": "Failed to notify target user"}
        rows = sb.sql("SELECT status FROM call_logs WHERE caller_id = ? "
            "AND callee_id = ? ORDER BY id", (a["id"], b["id"]))
        assert [x[0] for x in rows] == ["failed"], rows
        ca.ping()
        assert not [m for m in ca.log if m.get("type") ==
            "webrtc_call_initiated"]


def test_call_yourself_and_unknown_target(sb):
    a = sb.make_user()
    with connect_user(sb, a):
        r = initiate(sb, a, a["extension"])
        assert r.status_code == 400, r.text
        assert r.json() == {"error": "Cannot call yourself"}
        r = initiate(sb, a, "987654")
        assert r.status_code == 404, r.text
        assert r.json() == {"error": "Target extension not found"}
    assert not sb.sql("SELECT id FROM call_logs WHERE caller_id = ?",
        (a["id"],))


def test_call_ids_unique_within_a_second(sb):
    us = [sb.make_user() for _ in range(4)]
    socks = [connect_user(sb, u) for u in us]
    try:
        ids = []
        for _ in range(5):
            t0 = int(time.time())
            r1 = initiate(sb, us[0], us[1]["extension"])
            r2 = initiate(sb, us[2], us[3]["extension"])
            t1 = int(time.time())
            assert r1.status_code == 200 and r2.status_code == 200, \
                (r1.text, r2.text)
            ids += [r1.json()["call_id"], r2.json()["call_id"]]
            for caller, callee, cid in ((0, 1, ids[-2]),
                (2, 3, ids[-1])):
                socks[callee].wait_type("webrtc_call_invitation",
                    call_id=cid)
                socks[caller].send({"type": "webrtc_call_ended",
                    "call_id": cid, "channel": cid,
                    "to": us[callee]["extension"]})
                socks[callee].wait_type("webrtc_call_ended",
                    channel=cid)
            if t0 == t1:
                break
        assert len(set(ids)) == len(ids), ids
        rows = sb.sql("SELECT channel FROM call_logs WHERE caller_id "
            "IN (?, ?)", (us[0]["id"], us[2]["id"]))
        assert sorted(x[0] for x in rows) == sorted(ids)
    finally:
        for s in socks:
            s.close()


@pytest.fixture(scope="module")
def ring2(tmp_path_factory, sb):
    s = start_system(str(tmp_path_factory.mktemp("ring2")),
        env={"CALL_RING_TIMEOUT_S": "2"}, build=sb.build)
    yield s
    s.stop()


def test_unanswered_call_is_missed(ring2):
    a, b = ring2.make_user(), ring2.make_user()
    with connect_user(ring2, a) as ca, connect_user(ring2, b) as cb:
        call_id = start_call(ring2, a, b, ca, cb, accept=False)
        for c in (ca, cb):
            m = c.wait_for(lambda m: m.get("type") ==
                "webrtc_call_ended" and call_id in
                (m.get("call_id"), m.get("channel")), timeout=15,
                what="no_answer end")
            assert m.get("reason") == "no_answer", m
        row = wait_call_status(ring2, call_id, "missed")
        assert row["answer_time"] is None and row["end_time"], row
        # An answered call is not ended by the ring timer.
        call_id = start_call(ring2, a, b, ca, cb, accept=True)
        wait_call_status(ring2, call_id, "answered")
        time.sleep(3.5)
        assert call_row(ring2, call_id)["status"] == "answered"
        ca.send({"type": "webrtc_call_ended", "call_id": call_id,
            "channel": call_id, "to": b["extension"]})
        cb.wait_type("webrtc_call_ended", channel=call_id)
        wait_call_status(ring2, call_id, "ended")
