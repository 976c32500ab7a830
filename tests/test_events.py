"""GET /protected/events: the event stream by long-poll, for clients (and
hosts) without the relay's WebSocket. Same messages, order and seq as the
socket; the same epoch and resync rules."""

import threading
import time

from harness import expect
from wsclient import connect_user, set_status


def poll(sb, user, **query):
    q = "&".join(f"{k}={v}" for k, v in query.items())
    r = sb.req("GET", "/protected/events" + ("?" + q if q else ""),
               token=user["token"])
    return r


def begin(sb, user):
    d = expect(poll(sb, user), 200)
    assert set(d) == {"epoch", "last_seq", "events"}, d
    assert d["events"] == []
    assert isinstance(d["last_seq"], int) and d["last_seq"] > 0
    return d


def poll_in_background(sb, user, start, wait=20):
    """A poll from start's place in a thread: (thread, box); the reply
    lands in box["r"]."""
    box = {}

    def waiter():
        box["r"] = poll(sb, user, since=start["last_seq"],
                        epoch=start["epoch"], wait=wait)

    t = threading.Thread(target=waiter)
    t.start()
    return t, box


def follow(sb, user, since, epoch, until_seq, wait=2):
    """Every event up to until_seq, by as many polls as it takes."""
    got = []
    deadline = time.monotonic() + 30
    while since < until_seq and time.monotonic() < deadline:
        d = expect(poll(sb, user, since=since, epoch=epoch, wait=wait), 200)
        assert d["epoch"] == epoch
        got += d["events"]
        assert d["last_seq"] >= since
        since = d["last_seq"]
    return got, since


def comparable(m):
    # The relay fills these in from its live sockets; without one they
    # stay as the REST program wrote them.
    if m.get("type") == "user_status_changed":
        return {k: v for k, v in m.items()
                if k not in ("client_count", "ws_connected")}
    return m


def test_same_messages_order_and_seq_as_the_socket(sb):
    me, a, b = sb.make_user(), sb.make_user(), sb.make_user()
    d = begin(sb, me)
    with connect_user(sb, me) as ws:
        set_status(sb, a, "busy")
        set_status(sb, b, "away")
        r = sb.req("PUT", "/protected/status", token=a["token"],
                   json={"status": "online"})
        assert r.status_code == 200
        r = sb.req("DELETE", f"/protected/admin/users/{b['id']}",
                   token=sb.admin_token())
        assert r.status_code == 200, r.text
        last = ws.wait_type("user_deleted", username=b["username"])
        on_socket = [m for m in ws.take_all(lambda m: "seq" in m)]
        on_socket.append(last)
    on_socket = [m for m in on_socket if m["seq"] > d["last_seq"]]
    polled, _ = follow(sb, me, d["last_seq"], d["epoch"], last["seq"])
    polled = [m for m in polled if m["seq"] <= last["seq"]]
    assert [m["seq"] for m in polled] == [m["seq"] for m in on_socket]
    assert [comparable(m) for m in polled] == \
        [comparable(m) for m in on_socket]
    seqs = [m["seq"] for m in polled]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    types = {m["type"] for m in polled}
    assert {"user_status", "user_status_changed", "user_deleted"} <= types


def test_waits_for_the_next_event(sb):
    me, other = sb.make_user(), sb.make_user()
    d = begin(sb, me)
    t, box = poll_in_background(sb, me, d)
    time.sleep(1)
    assert t.is_alive(), "the poll answered before there was an event"
    set_status(sb, other, "busy")
    t.join(25)
    assert not t.is_alive()
    body = expect(box["r"], 200)
    assert body["events"], body
    assert body["events"][0]["seq"] > d["last_seq"]
    assert body["last_seq"] == body["events"][-1]["seq"]


def test_nothing_new_answers_empty_after_the_wait(sb):
    me = sb.make_user()
    d = begin(sb, me)
    # Events for others only: the cursor still moves past them.
    sb.notify_insert("user", "0", '{"type":"nobody"}')
    body = expect(poll(sb, me, since=d["last_seq"], epoch=d["epoch"],
                       wait=0), 200)
    assert body["events"] == []
    assert body["last_seq"] > d["last_seq"]


def test_rows_past_the_retention_are_pruned_and_resync(start):
    # A system of its own: the retention cuts the stream for everyone.
    sb = start()
    me = sb.make_user()
    sb.notify_insert("all", "", '{"type":"ancient"}',
                     created_at="2000-01-01T00:00:00.000000Z")
    old = sb.sql("SELECT max(id) FROM notify")[0][0]
    # A worker's first request prunes what is past the retention (no relay
    # needed), and then one a minute ...
    d = begin(sb, me)
    assert sb.sql("SELECT count(*) FROM notify WHERE id = ?",
                  (old,))[0][0] == 0
    # ... and a since before it can no longer be replayed.
    body = expect(poll(sb, me, since=old - 1, epoch=d["epoch"], wait=0),
                  200)
    assert [m["type"] for m in body["events"]] == ["resync_required"]


def test_old_epoch_and_future_since_get_resync(sb):
    me = sb.make_user()
    d = begin(sb, me)
    for q in ({"since": d["last_seq"], "epoch": "0123456789abcdef"},
              {"since": d["last_seq"] + 10**9, "epoch": d["epoch"]}):
        body = expect(poll(sb, me, wait=0, **q), 200)
        assert body["events"] == [{"type": "resync_required",
                                   "epoch": d["epoch"],
                                   "last_seq": body["last_seq"]}], body


def test_bad_parameters_and_credentials(sb):
    me = sb.make_user()
    for q, field in (({"since": "x"}, "since"), ({"since": "-1"}, "since"),
                     ({"since": "1", "wait": "26"}, "wait"),
                     ({"since": "1", "wait": "1.5"}, "wait"),
                     ({"since": "1", "epoch": "e" * 64}, "epoch")):
        body = expect(poll(sb, me, **q), 400)
        assert body["field"] == field, body
    expect(sb.req("GET", "/protected/events"), 401)
    expect(sb.req("POST", "/protected/events", token=me["token"]), 405)


def test_revocation_ends_the_wait_with_401(sb):
    me = sb.make_user()
    d = begin(sb, me)
    t, box = poll_in_background(sb, me, d)
    time.sleep(0.5)
    r = sb.req("POST", "/protected/logout", token=me["token"])
    assert r.status_code == 200
    t.join(25)
    assert not t.is_alive()
    expect(box["r"], 401)
