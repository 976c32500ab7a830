"""Liveness: calls whose party vanished end after a grace period, presence
rows with nobody behind them go offline, and a stalled relay does not hold
up REST writes (the kick is fire-and-forget).

Time bounds here only guard against hangs: the grace and staleness periods
are shortened through the environment instead of timed."""

import os
import signal
import threading
import time

from wsclient import (call_row, connect_user, sample_candidate,
    set_status, start_call, wait_call_status, wait_until)

GRACE = {"CALL_DISCONNECT_GRACE_S": "1", "PRESENCE_STALE_S": "2"}
ENDED_KEYS = {"type", "call_id", "channel", "reason", "seq"}


def peer_gone(call_id):
    return lambda m: (m.get("type") == "webrtc_call_ended" and
        m.get("call_id") == call_id and
        m.get("reason") == "peer_disconnected")


def check_peer_gone(m, call_id):
    assert set(m) == ENDED_KEYS, m
    assert m["channel"] == call_id, m
    assert isinstance(m["seq"], int), m


def candidate(to, call_id, i=0):
    return {"type": "webrtc_ice_candidate", "to": to, "channel": call_id,
        "candidate": sample_candidate(i)}


def last_seq(c):
    return max(m["seq"] for m in c.log if "seq" in m)


def presence(s, user):
    (row,) = s.sql("SELECT is_online, status FROM users WHERE id = ?",
        (user["id"],))
    return (int(row[0] or 0), row[1])


def answered_for(s, call_id, seconds):
    """Wait until the call has been answered for at least seconds."""
    wait_call_status(s, call_id, "answered")
    time.sleep(seconds)


# ---- calls whose party vanishes --------------------------------------------


def test_answered_call_ends_when_caller_vanishes(start):
    s = start(env=GRACE)
    a, b = s.make_user(), s.make_user()
    with connect_user(s, a) as ca, connect_user(s, b) as cb:
        call_id = start_call(s, a, b, ca, cb)
        answered_for(s, call_id, 2.2)
        ca.close()
        m = cb.wait_for(peer_gone(call_id), timeout=15,
            what="peer_disconnected end")
        check_peer_gone(m, call_id)
        row = wait_call_status(s, call_id, "ended", timeout=15)
        assert row["end_time"] and row["end_time"] >= row["answer_time"]
        assert row["duration"] >= 2, row
        # The call is forgotten: signalling to the vanished party is
        # refused.
        cb.send(candidate(a["extension"], call_id))
        cb.wait_type("error", ref="webrtc_ice_candidate")


def test_ringing_call_cancelled_when_caller_vanishes(start):
    s = start(env=GRACE)
    a, b = s.make_user(), s.make_user()
    with connect_user(s, a) as ca, connect_user(s, b) as cb:
        call_id = start_call(s, a, b, ca, cb, accept=False)
        ca.close()
        check_peer_gone(cb.wait_for(peer_gone(call_id), timeout=15,
            what="peer_disconnected end"), call_id)
        row = wait_call_status(s, call_id, "cancelled", timeout=15)
        assert row["answer_time"] is None and row["end_time"], row
        assert row["duration"] == 0, row


def test_ringing_call_whose_callee_vanishes_is_missed(start):
    s = start(env=dict(GRACE, CALL_RING_TIMEOUT_S="3"))
    a, b = s.make_user(), s.make_user()
    with connect_user(s, a) as ca:
        cb = connect_user(s, b)
        call_id = start_call(s, a, b, ca, cb, accept=False)
        cb.close()
        m = ca.wait_for(lambda m: m.get("type") == "webrtc_call_ended" and
            m.get("call_id") == call_id, timeout=15, what="call end")
        assert m["reason"] == "no_answer", m
        wait_call_status(s, call_id, "missed", timeout=15)


def test_reconnect_within_grace_keeps_the_call(start):
    s = start(env={"CALL_DISCONNECT_GRACE_S": "3"})
    a, b = s.make_user(), s.make_user()
    ca = connect_user(s, a, name="a1")
    cb = connect_user(s, b)
    ca2 = None
    try:
        call_id = start_call(s, a, b, ca, cb)
        wait_call_status(s, call_id, "answered")
        # One of two sockets closing is no absence at all.
        extra = connect_user(s, b, name="b2")
        extra.close()
        ca.close()
        # Really gone (not replaced by the next socket before the relay
        # saw this one close).
        cb.wait_type("user_status_changed", user_id=a["id"],
            status="offline")
        ca2 = connect_user(s, a, name="a2")
        time.sleep(4)  # past the grace
        m = candidate(a["extension"], call_id, 1)
        cb.send(m)
        got = ca2.wait_type("webrtc_ice_candidate", channel=call_id)
        assert got["candidate"] == m["candidate"]
        ca2.send(candidate(b["extension"], call_id, 2))
        cb.wait_type("webrtc_ice_candidate", channel=call_id)
        assert call_row(s, call_id)["status"] == "answered"
        assert not [x for x in cb.log + ca2.log
            if x.get("type") == "webrtc_call_ended"]
        # Ends normally afterwards.
        ca2.send({"type": "webrtc_call_ended", "call_id": call_id,
            "channel": call_id, "to": b["extension"]})
        cb.wait_type("webrtc_call_ended", channel=call_id)
        wait_call_status(s, call_id, "ended")
    finally:
        for c in (ca, cb, ca2):
            if c is not None:
                c.close()


def test_answered_call_ends_after_relay_crash(start):
    s = start(env=GRACE)
    a, b = s.make_user(), s.make_user()
    ca, cb = connect_user(s, a), connect_user(s, b)
    try:
        call_id = start_call(s, a, b, ca, cb)
        answered_for(s, call_id, 2.2)
        seq = last_seq(cb)
        s.relay_kill(signal.SIGKILL)
        ca.wait_closed()
        cb.wait_closed()
        s.relay_start()
        # Nobody came back within the grace: the row ends; its duration
        # runs at least to the crash.
        row = wait_call_status(s, call_id, "ended", timeout=15)
        assert row["duration"] >= 2, row
        assert row["end_time"] >= row["answer_time"], row
        # The callee, back later, is replayed why the call ended.
        with connect_user(s, b, since=seq) as cb2:
            check_peer_gone(cb2.wait_for(peer_gone(call_id),
                what="replayed peer_disconnected"), call_id)
    finally:
        ca.close()
        cb.close()


def test_call_survives_relay_restart_when_both_return(start):
    s = start(env={"CALL_DISCONNECT_GRACE_S": "5"})
    a, b = s.make_user(), s.make_user()
    ca, cb = connect_user(s, a), connect_user(s, b)
    ca2 = cb2 = None
    try:
        call_id = start_call(s, a, b, ca, cb)
        wait_call_status(s, call_id, "answered")
        s.relay_kill(signal.SIGKILL)
        s.relay_start()
        ca2, cb2 = connect_user(s, a), connect_user(s, b)
        time.sleep(6)  # past the grace
        assert call_row(s, call_id)["status"] == "answered"
        cb2.send(candidate(a["extension"], call_id))
        ca2.wait_type("webrtc_ice_candidate", channel=call_id)
        assert not [x for x in ca2.log + cb2.log
            if x.get("type") == "webrtc_call_ended"]
    finally:
        for c in (ca, cb, ca2, cb2):
            if c is not None:
                c.close()


# ---- stale presence ---------------------------------------------------------


class Heartbeat(threading.Thread):
    """POST /protected/heartbeat for user every period seconds, as the
    frontend does (every 30 s there)."""

    def __init__(self, s, user, period=0.3):
        super().__init__(daemon=True)
        self.s, self.user, self.period = s, user, period
        self.halt = threading.Event()
        self.failures = []

    def run(self):
        while not self.halt.is_set():
            try:
                r = self.s.req("POST", "/protected/heartbeat",
                    token=self.user["token"])
                if r.status_code != 200:
                    self.failures.append((r.status_code, r.text))
            except Exception as ex:  # noqa: BLE001 - reported below
                self.failures.append(repr(ex))
            self.halt.wait(self.period)

    def stop(self):
        self.halt.set()
        self.join(10)
        assert not self.failures, self.failures


def test_stale_presence_goes_offline_after_crash(start):
    s = start(env=GRACE)
    obs, idle, busy, sock, fresh = (s.make_user() for _ in range(5))
    hb = Heartbeat(s, fresh)
    hb.start()
    co = connect_user(s, obs, name="observer")
    cs = connect_user(s, sock, name="sock")
    try:
        set_status(s, busy, "busy")
        co.wait_type("user_status_changed", user_id=busy["id"],
            status="busy")
        co.wait_type("user_status_changed", user_id=sock["id"],
            status="online")
        seq = last_seq(co)
        # Logged in long ago, never a socket (or none since the crash).
        old = "2020-01-01T00:00:00.000000Z"
        for u in (idle, busy):
            s.sql("UPDATE users SET last_seen = ? WHERE id = ?",
                (old, u["id"]))
        s.relay_kill(signal.SIGKILL)
        co.close()
        cs.close()
        # sock's row still says online, with nothing behind it.
        assert presence(s, sock) == (1, "online")
        time.sleep(2.5)  # sock's last_seen (its connect) is now stale
        s.relay_start()
        for u in (idle, busy, sock):
            wait_until(lambda: presence(s, u) == (0, "offline"),
                what="%s offline" % u["username"])
        # The heartbeat kept this one fresh: not flapped.
        assert presence(s, fresh) == (1, "online")
        hb.stop()

        # Everyone hears it as a disconnect (the observer, back with its
        # last seq, is replayed what it missed).
        with connect_user(s, obs, since=seq) as co2:
            for u in (idle, busy, sock):
                m = co2.wait_type("user_status_changed", user_id=u["id"],
                    status="offline")
                assert m["is_online"] is False and m["client_count"] == 0
                assert m["ws_connected"] is False, m
                assert m["username"] == u["username"], m
                assert m["extension"] == u["extension"], m
            co2.ping()
            assert not [x for x in co2.log
                if x.get("type") == "user_status_changed" and
                x.get("user_id") == fresh["id"]]
        # last_seen is when they were last seen, not when they were swept.
        (row,) = s.sql("SELECT last_seen FROM users WHERE id = ?",
            (idle["id"],))
        assert row[0] == old
    finally:
        hb.halt.set()
        co.close()
        cs.close()


# ---- kicks do not wait for the relay ----------------------------------------


def test_status_change_does_not_wait_for_a_stopped_relay(start):
    s = start()
    obs, u = s.make_user(), s.make_user()
    pid = s.relay_pid()
    with connect_user(s, obs) as co:
        co.ping()
        os.kill(pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            r = s.req("PUT", "/protected/status", token=u["token"],
                json={"status": "busy"})
            took = time.monotonic() - t0
            assert r.status_code == 200, (r.status_code, r.text)
            assert took < 2, took  # a hang guard, not a measurement
        finally:
            os.kill(pid, signal.SIGCONT)
        m = co.wait_type("user_status_changed", user_id=u["id"],
            status="busy")
        assert m["is_online"] is True, m
