"""seq is the notify row id; ?since= replays from the database, whatever
the distance, exactly once, across a relay kill -9; resync_required only
for what the stream no longer holds."""

import secrets
import signal
import time

import pytest

from harness import start_system
from wsclient import (barrier, connect_user, ctl, events, initiate,
    raw_connect, set_status, wait_until)

NO_SEQ = ("welcome", "pong", "error", "resync_required")


def seqd(msgs):
    return [m for m in msgs if m.get("type") not in NO_SEQ]


def last_seq(c):
    s = [m["seq"] for m in seqd(c.log)]
    assert s, c.log
    return max(s)


def offline_in_db(system, user):
    r = system.sql("SELECT is_online FROM users WHERE id = ?",
        (user["id"],))
    return int(r[0][0] or 0) == 0


def test_since_replays_missed_events_in_order(sb):
    a, m = sb.make_user(), sb.make_user()
    c = connect_user(sb, a)
    barrier(sb, m, "busy", [c])
    # user_status follows user_status_changed: read both.
    c.wait_type("user_status", status="busy", **{"from": m["extension"]})
    s0 = last_seq(c)
    c.close()
    wait_until(lambda: offline_in_db(sb, a), what="a offline")
    for st in ("away", "online", "offline", "busy"):
        set_status(sb, m, st)
    with connect_user(sb, a, since=s0) as c2:
        c2.wait_type("user_status", status="busy",
            **{"from": m["extension"]})
        got = seqd(c2.log)
        seqs = [x["seq"] for x in got]
        # The rows of the stream addressed to a, in id order.
        want = [r[0] for r in sb.sql("SELECT id FROM notify WHERE id > ? "
            "AND id <= ? AND (target_kind = 'all' OR (target_kind = "
            "'user' AND target_value = ?)) ORDER BY id",
            (s0, seqs[-1], str(a["id"])))]
        assert seqs == want, (s0, seqs, want)
        mine = [x["status"] for x in events(got, "user_status_changed",
            user_id=m["id"])]
        assert mine == ["away", "online", "offline", "busy"], c2.log
        mine = [x["status"] for x in events(got, "user_status",
            **{"from": m["extension"]})]
        assert mine == ["away", "online", "offline", "busy"], mine
        s1 = last_seq(c2)
    wait_until(lambda: offline_in_db(sb, a), what="a offline")
    # since = the newest seq: nothing old comes back.
    with connect_user(sb, a, since=s1) as c3:
        barrier(sb, m, "away", [c3])
        old = [x for x in seqd(c3.log) if x["seq"] <= s1]
        assert not old, old
        assert len(events(c3.log, "user_status_changed",
            user_id=m["id"], status="away")) == 1


def test_since_far_behind_is_replayed(sb):
    """A socket 340 events behind gets all of them, in order, once."""
    a, m = sb.make_user(), sb.make_user()
    c = connect_user(sb, a)
    barrier(sb, m, "busy", [c])
    s0 = last_seq(c)
    epoch = c.epoch
    c.close()
    wait_until(lambda: offline_in_db(sb, a), what="a offline")
    cycle = ("away", "busy")
    for i in range(170):
        set_status(sb, m, cycle[i % 2])
    with connect_user(sb, a, since=s0, epoch=epoch) as c2:
        barrier(sb, m, "online", [c2])
        assert not events(c2.log, "resync_required"), c2.log[:3]
        mine = [x["status"] for x in events(c2.log, "user_status_changed",
            user_id=m["id"])]
        assert mine == [cycle[i % 2] for i in range(170)] + ["online"], \
            mine[:5]
        seqs = [x["seq"] for x in seqd(c2.log)]
        assert seqs == sorted(set(seqs)) and seqs[0] > s0, seqs[:5]


def test_since_older_than_retention_asks_for_resync(tmp_path, sb):
    """Rows the retention deleted cannot be replayed: resync_required,
    then live events."""
    s = start_system(str(tmp_path), build=sb.build)
    try:
        a, m = s.make_user(), s.make_user()
        c = connect_user(s, a)
        barrier(s, m, "busy", [c])
        s0 = last_seq(c)
        epoch = c.epoch
        c.close()
        set_status(s, m, "away")
        # What the retention does, then a restart to read it.
        s.relay_kill(signal.SIGTERM)
        top = s.sql("SELECT max(id) FROM notify")[0][0]
        s.sql("DELETE FROM notify WHERE id <= ?", (top,))
        s.sql("UPDATE notify_stream SET pruned_through = ?", (top,))
        s.relay_start()
        with connect_user(s, a, since=s0, epoch=epoch) as c2:
            assert c2.epoch == epoch
            r = c2.wait_type("resync_required", timeout=20)
            assert "seq" not in r, r
            assert r["epoch"] == epoch and r["last_seq"] >= top, r
            assert not [x for x in seqd(c2.log) if x["seq"] <= top]
            # Live events flow again after the resync notice.
            barrier(s, m, "online", [c2])
        # At the boundary: replayable.
        with connect_user(s, a, since=top, epoch=epoch) as c3:
            barrier(s, m, "busy", [c3])
            assert not events(c3.log, "resync_required"), c3.log
    finally:
        s.stop()


def test_other_epoch_or_future_since_asks_for_resync(sb):
    a, m = sb.make_user(), sb.make_user()
    with connect_user(sb, a) as c:
        barrier(sb, m, "busy", [c])
        s0 = last_seq(c)
        epoch = c.epoch
    cases = ((s0, "0123456789abcdef", "away"), (s0 + 10**9, epoch, "online"),
        (s0 + 10**9, None, "busy"))
    for since, ep, st in cases:
        with connect_user(sb, a, since=since, epoch=ep) as c2:
            r = c2.wait_type("resync_required")
            assert r["epoch"] == epoch, r
            barrier(sb, m, st, [c2])
            assert not [x for x in seqd(c2.log) if x["seq"] <= s0], \
                c2.log


@pytest.fixture(scope="module")
def restart_sys(tmp_path_factory, sb):
    s = start_system(str(tmp_path_factory.mktemp("restart")),
        build=sb.build)
    yield s
    s.stop()


def test_kill9_then_since_delivers_pending_once(restart_sys):
    s = restart_sys
    a, b, p, d1, d2, z = (s.make_user() for _ in range(6))
    c = connect_user(s, a)
    set_status(s, p, "busy")
    c.wait_type("user_status_changed", user_id=p["id"], status="busy")
    c.wait_type("user_status", status="busy", **{"from": p["extension"]})
    s0 = last_seq(c)

    s.relay_kill(signal.SIGKILL)
    c.wait_closed(timeout=10)
    c.close()
    pending = [(d1, "away"), (d2, "busy"), (d1, "busy")]
    for u, st in pending:
        set_status(s, u, st)
    s.relay_start()

    c2 = connect_user(s, a, since=s0)
    try:
        for u, st in pending:
            c2.wait_type("user_status_changed", user_id=u["id"],
                status=st, timeout=20)
            c2.wait_type("user_status", status=st,
                **{"from": u["extension"]}, timeout=20)
        barrier(s, z, "away", [c2])
        for u, st in pending:
            assert len(events(c2.log, "user_status_changed",
                user_id=u["id"], status=st)) == 1, (u, st, c2.log)
            assert len(events(c2.log, "user_status", status=st,
                **{"from": u["extension"]})) == 1, (u, st)
        assert not events(c2.log, "user_status_changed",
            user_id=p["id"]), c2.log
        assert not events(c2.log, "user_status",
            **{"from": p["extension"]})
        seqs = [x["seq"] for x in seqd(c2.log)]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seqs

        # A fresh connection gets no event delivered before it came.
        with connect_user(s, b) as cb:
            barrier(s, z, "busy", [cb, c2])
            for u in (p, d1, d2):
                assert not events(cb.log, "user_status_changed",
                    user_id=u["id"]), cb.log
                assert not events(cb.log, "user_status",
                    **{"from": u["extension"]}), cb.log
    finally:
        c2.close()


def test_kill9_live_delivery_resumes(restart_sys):
    """
    Events written while the relay is down are consumed after it comes
    back; a socket opened after that gets new events only.
    """
    s = restart_sys
    a, z = s.make_user(), s.make_user()
    s.relay_kill(signal.SIGKILL)
    set_status(s, z, "busy")
    top = s.sql("SELECT max(id) FROM notify")[0][0]
    s.relay_start()
    wait_until(lambda: ctl(s, {"op": "stats"})["notify_cursor"] >= top,
        what="stream read after restart")
    with connect_user(s, a) as c:
        barrier(s, z, "away", [c])
        assert not events(c.log, "user_status_changed", user_id=z["id"],
            status="busy")


def test_a_socket_still_replaying_gets_what_is_outside_the_stream(sb):
    # The callee's only socket asks for a long replay and reads nothing,
    # so it stays in its replay; a call invitation (no seq, never
    # replayed) must still reach it, not be held back with the stream.
    caller, callee = sb.make_user(), sb.make_user()
    epoch, start = sb.sql("SELECT epoch, (SELECT max(id) FROM notify) "
                          "FROM notify_stream")[0]
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    # Ids given: the programs draw them from the stream row, not the
    # table's default, and both engines take explicit ones.
    sb.sql("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
           "WHERE i < 3000) INSERT INTO notify (id, created_at, target_kind, "
           "target_value, payload) SELECT (SELECT COALESCE(max(id), 0) "
           "FROM notify) + i, ?, 'user', ?, "
           "'{\"type\":\"filler\",\"pad\":\"' || ? || '\"}' FROM n",
           (now, str(callee["id"]), secrets.token_hex(200)))
    last = sb.sql("SELECT max(id) FROM notify")[0][0]
    ctl(sb, {"op": "kick"})
    wait_until(lambda: ctl(sb, {"op": "stats"})["notify_cursor"] >= last,
               what="relay caught up with the rows")
    sock, _ = raw_connect(sb, callee["token"], since=start, epoch=epoch)
    try:
        r = initiate(sb, caller, callee["extension"])
        assert r.status_code == 200, r.text
    finally:
        sock.close()
