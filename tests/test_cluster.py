"""Two nodes on one PostgreSQL database: each its own nginx, FastCGI
programs and relay, sharing the database and the token secret, with the
browsers' sockets split between the two relays. What is written through
either node reaches the sockets on both; calls, revocations and presence
work across them; a relay killed with SIGKILL loses nothing for clients
that reconnect to the other one."""

import secrets
import signal
import threading
import time

import pytest

from fakeami import FakeAMI
from harness import DB_ENGINE, start_system
from wsclient import (Closed, assert_forwarded, call_row, connect_user,
    initiate, sample_candidate, sample_sdp, set_status, wait_call_status,
    wait_until)

pytestmark = pytest.mark.skipif(
    DB_ENGINE != "postgres", reason="several relays share PostgreSQL only")


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    a = start_system(tmp_path_factory.mktemp("node-a"))
    b = start_system(tmp_path_factory.mktemp("node-b"), join=a)
    yield a, b
    b.stop()
    a.stop()


def status_event(user, status):
    return lambda m: (m.get("type") == "user_status_changed"
                      and m.get("user_id") == user["id"]
                      and m.get("status") == status)


def test_an_event_written_on_one_node_reaches_sockets_on_both(nodes):
    a, b = nodes
    x, y, marker = a.make_user(), a.make_user(), a.make_user()
    with connect_user(a, x) as cx, connect_user(b, y) as cy:
        set_status(b, marker, "busy")
        mx = cx.wait_for(status_event(marker, "busy"))
        my = cy.wait_for(status_event(marker, "busy"))
        # One stream: the same event has the same seq on both relays.
        assert mx["seq"] == my["seq"]


def test_webrtc_call_between_relays(nodes):
    a, b = nodes
    caller, callee = a.make_user(), a.make_user()
    with connect_user(a, caller) as ca, connect_user(b, callee) as cb:
        r = initiate(a, caller, callee["extension"])
        assert r.status_code == 200, r.text
        call_id = r.json()["call_id"]
        cb.wait_type("webrtc_call_invitation", call_id=call_id)
        ca.wait_type("webrtc_call_initiated", call_id=call_id)

        accept = {"type": "webrtc_call_accepted", "call_id": call_id,
                  "to": caller["extension"], "from": callee["extension"],
                  "channel": call_id}
        cb.send(accept)
        assert_forwarded(ca.wait_type("webrtc_call_accepted",
                                      channel=call_id), accept,
                         callee["extension"])
        wait_call_status(a, call_id, "answered")

        offer = {"type": "webrtc_offer", "to": callee["extension"],
                 "from": caller["extension"], "channel": call_id,
                 "offer": {"type": "offer", "sdp": sample_sdp()}}
        ca.send(offer)
        assert_forwarded(cb.wait_type("webrtc_offer"), offer,
                         caller["extension"])
        answer = {"type": "webrtc_answer", "to": caller["extension"],
                  "from": callee["extension"], "channel": call_id,
                  "answer": {"type": "answer", "sdp": sample_sdp(3000, 7)}}
        cb.send(answer)
        assert_forwarded(ca.wait_type("webrtc_answer"), answer,
                         callee["extension"])
        for i in range(3):
            m = {"type": "webrtc_ice_candidate", "to": caller["extension"],
                 "channel": call_id, "candidate": sample_candidate(i)}
            cb.send(m)
            assert_forwarded(ca.wait_type("webrtc_ice_candidate"), m,
                             callee["extension"])

        time.sleep(1.1)  # a duration of at least a second
        end = {"type": "webrtc_call_ended", "call_id": call_id,
               "to": callee["extension"], "from": caller["extension"],
               "channel": call_id}
        ca.send(end)
        cb.wait_type("webrtc_call_ended", call_id=call_id)
        row = wait_call_status(a, call_id, "ended")
        assert row["duration"] >= 1, row
        # The call ended on the relay that did not start it: the one that
        # did must not later close it another way (no answer, vanished).
        time.sleep(1)
        assert call_row(a, call_id)["status"] == "ended"


def test_callee_on_the_other_relay_rejects(nodes):
    a, b = nodes
    caller, callee = a.make_user(), a.make_user()
    with connect_user(a, caller) as ca, connect_user(b, callee) as cb:
        r = initiate(b, caller, callee["extension"])
        assert r.status_code == 200, r.text
        call_id = r.json()["call_id"]
        cb.wait_type("webrtc_call_invitation", call_id=call_id)
        ca.wait_type("webrtc_call_initiated", call_id=call_id)
        cb.send({"type": "webrtc_call_rejected", "call_id": call_id,
                 "to": caller["extension"], "channel": call_id})
        ca.wait_type("webrtc_call_rejected", call_id=call_id)
        assert wait_call_status(a, call_id, "rejected")


def test_revocation_closes_the_users_sockets_on_every_relay(nodes):
    a, b = nodes
    u = a.make_user()
    with connect_user(a, u) as ca, connect_user(b, u) as cb:
        r = a.req("POST", "/protected/logout", token=u["token"])
        assert r.status_code == 200, r.text
        for c in (ca, cb):
            with pytest.raises(Closed) as got:
                c.wait_for(lambda m: False, what="close")
            assert got.value.code == 4003


def is_online(node, user):
    return node.sql("SELECT is_online FROM users WHERE id = ?",
                    (user["id"],))[0][0] == 1


def test_presence_holds_while_any_relay_holds_a_socket(nodes):
    a, b = nodes
    u = a.make_user()
    ca = connect_user(a, u)
    cb = connect_user(b, u)
    wait_until(lambda: is_online(a, u), what="online")
    ca.close()
    # The socket on the other relay keeps the user online.
    time.sleep(1)
    assert is_online(a, u)
    assert b.sql("SELECT sum(sockets) FROM relay_sockets WHERE user_id = ?",
                 (u["id"],))[0][0] == 1
    cb.close()
    wait_until(lambda: not is_online(a, u), what="offline")


def test_relay_killed_mid_stream_loses_nothing_on_the_other(nodes):
    a, b = nodes
    watcher, writer = a.make_user(), a.make_user()
    statuses = ["busy", "away", "online", "offline"]
    stop = threading.Event()

    def write():
        for i in range(400):
            if stop.is_set():
                break
            set_status((a, b)[i % 2], writer, statuses[i % len(statuses)])

    c = connect_user(a, watcher)
    set_status(b, writer, "online")
    got = [c.wait_for(status_event(writer, "online"))]
    t = threading.Thread(target=write)
    t.start()
    try:
        time.sleep(0.5)
        a.relay_kill(signal.SIGKILL)
        # What reached the socket before the kill counts as received.
        try:
            while True:
                m = c.recv(timeout=0.2)
                if m.get("type") == "user_status_changed":
                    got.append(m)
        except Exception:
            pass
        last = max(m["seq"] for m in got)
        c2 = connect_user(b, watcher, since=last)
        stop.set()
        t.join()
        # Every change the writer made after `last` arrives, in order,
        # with no gap: compare with the stream's own rows.
        want = [r[0] for r in b.sql(
            "SELECT id FROM notify WHERE id > ? AND target_kind = 'all' "
            "AND payload LIKE ? ORDER BY id",
            (last, '%"user_id":' + str(writer["id"]) + ',%'))]
        seen = []
        deadline = time.monotonic() + 20
        while len(seen) < len(want) and time.monotonic() < deadline:
            m = c2.wait_for(lambda m: m.get("type") == "user_status_changed"
                            and m.get("user_id") == writer["id"])
            seen.append(m["seq"])
        assert seen == want, (seen[:5], want[:5])
        c2.close()
    finally:
        stop.set()
        t.join()
        c.close()
        a.relay_start()


def ami_state(node):
    r = node.req("GET", "/health?detail=1")
    assert r.status_code == 200, r.text
    return r.json()["ami"]["state"]


def test_one_relay_drives_asterisk_and_another_takes_over(tmp_path_factory):
    """Two relays configured for the same Asterisk: one logs in, the other
    waits on standby; when the first dies, the second takes the link."""
    ami = FakeAMI(username="sb-relay", secret=secrets.token_hex(16)).start()
    env = {"AMI_HOST": "127.0.0.1", "AMI_PORT": str(ami.port),
           "AMI_USERNAME": ami.username, "AMI_SECRET": ami.secret,
           "AMI_PING_S": "1", "AMI_RECONNECT_MIN_MS": "100",
           "AMI_RECONNECT_MAX_MS": "800"}
    a = start_system(tmp_path_factory.mktemp("ami-a"), env=env)
    b = None
    try:
        b = start_system(tmp_path_factory.mktemp("ami-b"), env=env, join=a)
        wait_until(lambda: ami_state(a) == "connected", what="a connected")
        assert ami_state(b) == "standby"
        time.sleep(3)  # a standby relay's retries log in nowhere
        assert ami.logins == 1 and ami.live_connections() == 1
        # Placing a call through the standby node says who drives it.
        u, v = a.make_user(), a.make_user()
        r = b.req("POST", "/protected/call/initiate", token=u["token"],
                  json={"target_extension": v["extension"]})
        assert r.status_code == 503, r.text

        a.relay_kill(signal.SIGKILL)
        wait_until(lambda: ami_state(b) == "connected", timeout=15,
                   what="b takes the link over")
        assert ami.logins == 2 and ami.live_connections() == 1
        a.relay_start()
        time.sleep(3)
        assert ami_state(a) == "standby" and ami.logins == 2
    finally:
        if b is not None:
            b.stop()
        a.stop()
        ami.stop()
