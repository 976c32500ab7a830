"""The relay's control socket: replies to bad requests, keeps serving."""

import os
import socket
import stat

from wsclient import connect_user, ctl, initiate

BAD = [
    b"garbage\n",
    b"{\n",
    b"[]\n",
    b"[1,2,3]\n",
    b"\"op\"\n",
    b"42\n",
    b"null\n",
    b"{}\n",
    b"{\"op\":42}\n",
    b"{\"op\":\"no_such_op\"}\n",
    b"{\"op\":\"deliver\"}\n",
    b"{\"op\":\"deliver\",\"extension\":\"1001\"}\n",
    b"{\"op\":\"deliver\",\"extension\":\"1001\",\"message\":\"x\"}\n",
    b"{\"op\":\"call_invite\"}\n",
    b"{\"op\":\"call_invite\",\"call_id\":\"c\",\"caller_extension\":\"1\"}\n",
    b"{\"op\":\"call_end\"}\n",
    b"{\"op\":\"call_end\",\"call_id\":7}\n",
    b"\x00\xff\xfe\n",
]


def relay_ok(sb, client):
    client.ping()
    w = ctl(sb, {"op": "who"})
    assert w["ok"] is True, w
    return w


def test_socket_is_private(sb):
    st = os.stat(os.path.join(sb.run_dir, "ctl.sock"))
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) & 0o077 == 0, oct(st.st_mode)


def test_malformed_requests_get_ok_false(sb):
    u = sb.make_user()
    with connect_user(sb, u) as c:
        for line in BAD:
            r = ctl(sb, line)
            assert isinstance(r, dict), (line, r)
            assert r.get("ok") is False, (line, r)
            assert isinstance(r.get("error"), str) and r["error"], r
        relay_ok(sb, c)


def test_abrupt_and_oversized_requests(sb):
    u = sb.make_user()
    path = os.path.join(sb.run_dir, "ctl.sock")
    with connect_user(sb, u) as c:
        # Connect and go away; half a line and go away.
        for data in (b"", b"{\"op\":\"wh"):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            if data:
                s.sendall(data)
            s.close()
        # Idle connections do not stall the loop.
        idle = []
        for _ in range(40):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            idle.append(s)
        relay_ok(sb, c)
        # A line past the limit: an error reply or a close, no crash.
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(path)
        try:
            s.sendall(b"{\"op\":\"who\",\"pad\":\"" + b"y" * (300 * 1024)
                + b"\"}\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            reply = s.recv(65536)
        except (ConnectionResetError, socket.timeout):
            reply = b""
        s.close()
        if reply:
            import json
            r = json.loads(reply.split(b"\n")[0])
            assert r.get("ok") is False, r
        for s in idle:
            s.close()
        relay_ok(sb, c)


def test_who_deliver_stats(sb):
    a = sb.make_user()
    with connect_user(sb, a) as c1, connect_user(sb, a) as c2:
        w = relay_ok(sb, c1)
        assert w["extensions"].get(a["extension"]) == 2, w
        assert isinstance(w["total_clients"], int)
        assert w["total_clients"] >= 2
        msg = {"type": "ctl_test", "n": 1, "deep": {"a": [1, "b"]}}
        r = ctl(sb, {"op": "deliver", "extension": a["extension"],
            "message": msg})
        assert r == {"ok": True, "delivered": 2}, r
        for c in (c1, c2):
            m = c.wait_type("ctl_test")
            assert {k: v for k, v in m.items() if k != "seq"} == msg
        r = ctl(sb, {"op": "deliver", "extension": "000000",
            "message": msg})
        assert r == {"ok": True, "delivered": 0}, r
        r = ctl(sb, {"op": "stats"})
        assert r["ok"] is True, r
        r = ctl(sb, {"op": "kick"})
        assert r["ok"] is True, r
        r = ctl(sb, {"op": "call_end", "call_id": "webrtc-call-none",
            "by_extension": a["extension"]})
        assert r == {"ok": True, "known": False}, r


def test_call_invite_checked_against_the_log(sb):
    """The relay rings only for an initiated log row with those parties."""
    a, b = sb.make_user(), sb.make_user()
    with connect_user(sb, a) as ca, connect_user(sb, b) as cb:
        r = initiate(sb, a, b["extension"])
        assert r.status_code == 200, r.text
        call_id = r.json()["call_id"]
        cb.wait_type("webrtc_call_invitation", call_id=call_id)

        def invite(cid, caller, callee):
            return ctl(sb, {"op": "call_invite", "call_id": cid,
                "caller_extension": caller, "callee_extension": callee,
                "invitation": {"type": "webrtc_call_invitation",
                    "call_id": cid}})

        refusals = [
            invite(call_id, b["extension"], a["extension"]),  # parties
            invite(call_id, a["extension"], b["extension"]),  # known
            invite("webrtc-call-none", a["extension"], b["extension"]),
            invite(call_id, a["extension"], "000000"),
            invite("x" * 64, a["extension"], b["extension"]),
        ]
        r = sb.req("POST", "/protected/call/hangup", token=a["token"],
            json={"channel": call_id})
        assert r.status_code == 200, r.text
        refusals.append(invite(call_id, a["extension"], b["extension"]))
        for rep in refusals:
            assert rep.get("ok") is False, rep
            assert isinstance(rep.get("error"), str) and rep["error"], rep
        relay_ok(sb, cb)
        ca.ping()
        assert len([m for m in cb.log if m.get("type") ==
            "webrtc_call_invitation"]) == 1, cb.log
