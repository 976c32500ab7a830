"""POST /protected/call/initiate: a repeat while the first call still rings
is that call, and a caller past CALL_ATTEMPTS_PER_MIN gets 429 with
nothing written."""

import threading

from harness import expect
from wsclient import connect_user, initiate, wait_call_status

LIMIT = 20  # CALL_ATTEMPTS_PER_MIN's default


def rows_of(sb, caller):
    return sb.sql("SELECT channel, status FROM call_logs WHERE caller_id = ? "
                  "ORDER BY id", (caller["id"],))


def notify_max(sb):
    return sb.sql("SELECT coalesce(max(id), 0) FROM notify")[0][0]


def at_once(n, fn):
    """fn(i) for i < n in n threads released together; the results."""
    go = threading.Barrier(n)
    out = [None] * n

    def run(i):
        go.wait()
        out[i] = fn(i)

    ts = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


def test_repeat_while_ringing_is_the_same_call(sb):
    a, b = sb.make_user(), sb.make_user()
    with connect_user(sb, a) as ca, connect_user(sb, b) as cb:
        first = expect(initiate(sb, a, b["extension"]), 200)
        call_id = first["call_id"]
        cb.wait_type("webrtc_call_invitation", call_id=call_id)
        again = expect(initiate(sb, a, b["extension"]), 200)
        assert again == first and list(again) == list(first)
        assert rows_of(sb, a) == [(call_id, "initiated")]
        # One invitation, one "initiated": the repeat rang nobody.
        cb.ping()
        ca.ping()
        assert len([m for m in cb.log if m.get("type") ==
                    "webrtc_call_invitation"]) == 1
        assert len([m for m in ca.log if m.get("type") ==
                    "webrtc_call_initiated"]) == 1

        # Over (cancelled), the next initiate is a new call.
        expect(sb.req("POST", "/protected/call/hangup", token=a["token"],
                      json={"channel": call_id}), 200)
        wait_call_status(sb, call_id, "cancelled")
        third = expect(initiate(sb, a, b["extension"]), 200)
        assert third["call_id"] != call_id
        cb.wait_type("webrtc_call_invitation", call_id=third["call_id"])
        assert [s for _, s in rows_of(sb, a)] == ["cancelled", "initiated"]


def test_a_repeat_is_to_the_same_target_within_the_ring(sb):
    a, b, c = sb.make_user(), sb.make_user(), sb.make_user()
    with connect_user(sb, a), connect_user(sb, b), connect_user(sb, c):
        to_b = expect(initiate(sb, a, b["extension"]), 200)["call_id"]
        to_c = expect(initiate(sb, a, c["extension"]), 200)["call_id"]
        assert to_b != to_c
        assert expect(initiate(sb, a, b["extension"]), 200)["call_id"] \
            == to_b
        # Started longer ago than CALL_RING_TIMEOUT_S: no longer ringing.
        sb.sql("UPDATE call_logs SET created_at = "
               "'2020-01-01T00:00:00.000000Z' WHERE channel = ?", (to_b,))
        again = expect(initiate(sb, a, b["extension"]), 200)["call_id"]
        assert again not in (to_b, to_c)
        assert len(rows_of(sb, a)) == 3


def test_two_initiates_at_once_are_one_call(sb):
    """The voip-application frontend sends two initiates per click."""
    a, b = sb.make_user(), sb.make_user()
    with connect_user(sb, a), connect_user(sb, b) as cb:
        rs = at_once(2, lambda i: initiate(sb, a, b["extension"]))
        assert [r.status_code for r in rs] == [200, 200], \
            [r.text for r in rs]
        ids = {r.json()["call_id"] for r in rs}
        assert len(ids) == 1, ids
        (call_id,) = ids
        assert rows_of(sb, a) == [(call_id, "initiated")]
        cb.wait_type("webrtc_call_invitation", call_id=call_id)
        cb.ping()
        assert len([m for m in cb.log if m.get("type") ==
                    "webrtc_call_invitation"]) == 1


def test_attempts_past_the_limit_are_refused_and_write_nothing(sb):
    """50 attempts at once at a callee with no socket: LIMIT of them are
    made (500, a failed row each), the rest get 429 and write nothing."""
    a, b, other = sb.make_user(), sb.make_user(), sb.make_user()
    mark = notify_max(sb)
    rs = at_once(50, lambda i: initiate(sb, a, b["extension"]))
    codes = sorted(r.status_code for r in rs)
    assert codes == [429] * (50 - LIMIT) + [500] * LIMIT, codes
    for r in rs:
        if r.status_code == 429:
            assert r.json() == {"error": "Too many call attempts"}
            assert 1 <= int(r.headers["Retry-After"]) <= 60, r.headers
            assert r.headers["Content-Type"].startswith("application/json")
    assert [s for _, s in rows_of(sb, a)] == ["failed"] * LIMIT
    assert notify_max(sb) == mark

    # Still refused, still nothing written; another caller is not.
    r = initiate(sb, a, other["extension"])
    expect(r, 429, {"error": "Too many call attempts"})
    assert len(rows_of(sb, a)) == LIMIT
    assert initiate(sb, other, b["extension"]).status_code == 500


def test_a_ringing_call_is_still_answered_past_the_limit(sb):
    """A repeat writes nothing, so it is not an attempt."""
    a, b, c = sb.make_user(), sb.make_user(), sb.make_user()
    with connect_user(sb, a), connect_user(sb, b):
        call_id = expect(initiate(sb, a, b["extension"]), 200)["call_id"]
        for _ in range(LIMIT - 1):
            assert initiate(sb, a, c["extension"]).status_code == 500
        assert len(rows_of(sb, a)) == LIMIT
        again = expect(initiate(sb, a, b["extension"]), 200)
        assert again["call_id"] == call_id
        expect(initiate(sb, a, c["extension"]), 429)
        assert len(rows_of(sb, a)) == LIMIT


def test_the_limit_is_configurable(start):
    s = start(env={"CALL_ATTEMPTS_PER_MIN": "2"})
    a, b = s.make_user(), s.make_user()
    assert [initiate(s, a, b["extension"]).status_code
            for _ in range(3)] == [500, 500, 429]
    assert len(rows_of(s, a)) == 2
