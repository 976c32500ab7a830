"""A client that stops reading is closed with 4008; others keep going."""

import threading
import time

from wsclient import Closed, connect_user, ctl, raw_connect, raw_frames

PAD = "x" * 32768


def test_stalled_reader_closed_4008_others_served(sb):
    slow, fast = sb.make_user(), sb.make_user()
    sock, rest = raw_connect(sb, slow["token"])
    cf = connect_user(sb, fast, name="fast")
    got = []
    failure = []
    nmarkers = 0

    def reader():
        try:
            while True:
                m = cf.wait_type("bp_marker", timeout=60)
                got.append(m["i"])
                if m.get("last"):
                    return
        except (Closed, AssertionError) as ex:
            failure.append(ex)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        stalled_at = None
        for i in range(4000):
            r = ctl(sb, {"op": "deliver", "extension": slow["extension"],
                "message": {"type": "bp_fill", "i": i, "pad": PAD}})
            assert r and r.get("ok") is True, r
            if r.get("delivered") == 0:
                stalled_at = i
                break
            if i % 10 == 0:
                r = ctl(sb, {"op": "deliver",
                    "extension": fast["extension"],
                    "message": {"type": "bp_marker",
                    "i": nmarkers}})
                assert r == {"ok": True, "delivered": 1}, r
                nmarkers += 1
            if i % 50 == 49:
                w = ctl(sb, {"op": "who"})
                if w["extensions"].get(slow["extension"]) is None:
                    stalled_at = i
                    break
        assert stalled_at is not None, \
            "relay still queues for a reader stalled for 4000 x 32 KiB"
        r = ctl(sb, {"op": "deliver", "extension": fast["extension"],
            "message": {"type": "bp_marker", "i": nmarkers,
            "last": True}})
        assert r == {"ok": True, "delivered": 1}, r
        nmarkers += 1
        t.join(60)
        assert not t.is_alive(), "fast reader stuck: %d of %d" % (
            len(got), nmarkers)
        assert not failure, failure
        assert got == list(range(nmarkers)), got[-5:]

        # Now read what the stalled socket was sent: data, then 4008.
        frames, code = raw_frames(sock, rest, timeout=60)
        assert code == 4008, (code, len(frames))
        fills = [f for f in frames if f[0] == 1]
        assert fills, "nothing reached the stalled client"
        cf.ping()
    finally:
        sock.close()
        cf.close()


def test_stalled_reader_via_forwarding(sb):
    """The same through peer-to-peer forwarding inside a call."""
    a, b, c = sb.make_user(), sb.make_user(), sb.make_user()
    ca = connect_user(sb, a)
    sock, rest = raw_connect(sb, b["token"])
    cc = connect_user(sb, c)
    try:
        r = sb.req("POST", "/protected/call/initiate?method=webrtc",
            token=a["token"], json={"target_extension": b["extension"]})
        assert r.status_code == 200, r.text
        call_id = r.json()["call_id"]
        ca.wait_type("webrtc_call_initiated", call_id=call_id)
        cand = {"type": "webrtc_ice_candidate", "to": b["extension"],
            "channel": call_id, "candidate": {"candidate": PAD[:30000],
            "sdpMid": "0", "sdpMLineIndex": 0}}
        closed = False
        for i in range(4000):
            try:
                ca.send(cand)
            except Exception:
                break
            # Under the sender's own limit (WS_RX_BYTES_PER_S): it is
            # the reader that must be dropped, not the writer.
            time.sleep(0.07)
            if i % 100 == 99:
                # Meanwhile the relay answers others at once.
                cc.ping(timeout=30)
                w = ctl(sb, {"op": "who"})
                if w["extensions"].get(b["extension"]) is None:
                    closed = True
                    break
        assert closed, "stalled callee never dropped"
        frames, code = raw_frames(sock, rest, timeout=60)
        assert code == 4008, (code, len(frames))
        ca.ping()
    finally:
        sock.close()
        ca.close()
        cc.close()
