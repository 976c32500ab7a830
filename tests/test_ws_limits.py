"""One client cannot starve the others: inbound rate limits,
coalesced presence, signalling only between call parties, statuses
checked against REST's list, a cap on sockets per user, and offline
users holding no memory in the relay."""

import json
import time

import pytest

from harness import start_system
from test_ws_leaks import rel_build  # noqa: F401 (a fixture)
from wsclient import (connect_user, ctl, start_call, upgrade_refusal,
    wait_until, ws_url)


def test_user_status_flood_costs_only_the_flooder(sb):
    flooder, r1, r2 = sb.make_user(), sb.make_user(), sb.make_user()
    c1, c2 = connect_user(sb, r1), connect_user(sb, r2)
    cf = connect_user(sb, flooder)
    try:
        frames = [json.dumps({"type": "user_status", "status":
            ("busy", "away", "online", "offline")[i % 4]})
            for i in range(1100)]
        before = ctl(sb, {"op": "stats"})["rx_dropped"]
        for f in frames:
            cf.ws.send(f)
        # Past the burst its own messages are dropped, and it is told.
        e = cf.wait_type("error", error="rate limit exceeded")
        assert e == {"type": "error", "error": "rate limit exceeded"}, e
        assert ctl(sb, {"op": "stats"})["rx_dropped"] > before
        for c in (c1, c2):
            c.ping()
            heard = [m for m in c.drain(1.0) + c.log if
                m.get("type") == "user_status" and
                m.get("from") == flooder["extension"]]
            # Coalesced: far fewer than what was sent, the last one
            # a valid status.
            assert 0 < len(heard) < 50, len(heard)
            assert heard[-1]["status"] in ("busy", "away", "online",
                "offline"), heard[-1]
            c.ping()
        for u in (r1, r2, flooder):
            assert ctl(sb, {"op": "who", "extension": u["extension"]}) \
                ["clients"] == 1, u
    finally:
        for c in (c1, c2, cf):
            c.close()


def test_call_status_to_a_non_party_refused(sb):
    attacker, victim = sb.make_user(), sb.make_user()
    cv = connect_user(sb, victim)
    ca = connect_user(sb, attacker)
    try:
        pad = "x" * (60 * 1024)
        for i in range(100):
            ca.send({"type": "call_status", "to": victim["extension"],
                "channel": "webrtc-call-none", "i": i, "pad": pad})
        ca.wait_type("error", error="rate limit exceeded")
        time.sleep(0.5)  # the bucket refills: the sender is heard again
        ca.ping()
        errs = [m for m in ca.log if m.get("type") == "error"]
        assert errs, ca.log[:3]
        assert errs[0]["error"] == "no active call with %s" % \
            victim["extension"] and errs[0]["ref"] == "call_status", errs[0]
        cv.ping()
        assert not [m for m in cv.log if m.get("type") == "call_status"]
    finally:
        ca.close()
        cv.close()


def test_call_status_between_parties_passes(sb):
    a, b = sb.make_user(), sb.make_user()
    with connect_user(sb, a) as ca, connect_user(sb, b) as cb:
        call_id = start_call(sb, a, b, ca, cb)
        ca.send({"type": "call_status", "to": b["extension"],
            "channel": call_id, "status": "ringing"})
        m = cb.wait_type("call_status", channel=call_id)
        assert m["from"] == a["extension"] and "seq" not in m, m


def test_user_status_checked_against_rest_list(sb):
    a, b = sb.make_user(), sb.make_user()
    with connect_user(sb, a) as ca, connect_user(sb, b) as cb:
        for bad in ("lunch", "", "ONLINE", 7, None, "x" * 40):
            ca.send({"type": "user_status", "status": bad})
            e = ca.wait_type("error")
            assert e == {"type": "error", "error": "Invalid status. Must "
                "be one of: online, offline, busy, away",
                "ref": "user_status"}, e
        ca.send({"type": "user_status", "status": "away"})
        m = cb.wait_type("user_status", **{"from": a["extension"]})
        assert m["status"] == "away" and isinstance(m["seq"], int), m
        assert not [x for x in cb.log if x.get("type") == "user_status"
            and x.get("status") != "away"], cb.log


def test_sockets_per_user_capped(sb):
    u = sb.make_user()
    socks = []
    try:
        for _ in range(16):
            socks.append(connect_user(sb, u))
        status, body = upgrade_refusal(ws_url(sb, token=u["token"]))
        assert (status, body) == (429, {"error": "Too many connections"})
        socks.pop().close()
        wait_until(lambda: ctl(sb, {"op": "who", "extension":
            u["extension"]})["clients"] == 15, what="one closed")
        socks.append(connect_user(sb, u))
    finally:
        for c in socks:
            c.close()


@pytest.fixture(scope="module")
def rel_sys(tmp_path_factory, rel_build):
    """The release relay: what it holds, not what a sanitizer keeps."""
    s = start_system(str(tmp_path_factory.mktemp("rel")), build=rel_build)
    yield s
    s.stop()


def test_offline_users_cost_no_memory(rel_sys):
    """Traffic aimed at 171 offline extensions leaves the relay holding
    only its connected users, and its memory where it was."""
    sb = rel_sys
    exts = []
    for i in range(171):
        e = "77%04d" % i
        sb.sql("INSERT INTO users (username, email, password, extension, "
            "role) VALUES (?, ?, 'x', ?, 'user')",
            ("off%d" % i, "off%d@example.test" % i, e))
        exts.append(e)
    attacker = sb.make_user()
    before = ctl(sb, {"op": "stats"})
    pad = "y" * (60 * 1024)
    for k in range(5):
        with connect_user(sb, attacker) as c:
            for i in range(171):
                c.send({"type": "call_status", "to": exts[i],
                    "channel": "webrtc-call-x", "pad": pad})
                c.send({"type": "webrtc_offer", "to": exts[i],
                    "channel": "webrtc-call-x", "pad": pad})
            time.sleep(0.5)
            c.ping(timeout=60)
    wait_until(lambda: ctl(sb, {"op": "stats"})["users"] <=
        before["users"], what="roster back to the connected users")
    after = ctl(sb, {"op": "stats"})
    assert after["rss_kb"] - before["rss_kb"] < 8 * 1024, (before, after)
