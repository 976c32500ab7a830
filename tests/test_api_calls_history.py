"""A deleted user's calls stay in the other party's history: the rows keep
their other side, the deleted side becomes NULL, and GET
/protected/call/logs shows that party as deleted."""

from harness import expect
from wsclient import connect_user, start_call, wait_call_status

USER_KEYS = ["id", "username", "email", "extension", "status", "role",
             "is_online", "last_login", "last_seen", "created_at",
             "updated_at", "online"]
DELETED = {"id": 0, "username": "", "email": "", "extension": "",
           "status": "deleted", "role": "", "is_online": False,
           "last_login": None, "last_seen": None,
           "created_at": "0001-01-01T00:00:00Z",
           "updated_at": "0001-01-01T00:00:00Z", "online": False}


def add_log(sb, caller, callee, created, status="ended"):
    sb.sql("INSERT INTO call_logs (caller_id, callee_id, start_time, status, "
           "channel, direction, created_at) VALUES (?, ?, ?, ?, ?, "
           "'outbound', ?)", (caller, callee, created, status,
                              f"webrtc-call-{created}", created))
    return sb.sql("SELECT max(id) FROM call_logs")[0][0]


def delete_user(sb, u):
    expect(sb.req("DELETE", f"/protected/admin/users/{u['id']}",
                  token=sb.admin_token()), 200)


def test_deleted_party_keeps_the_others_history(sb):
    gone, stays, third = sb.make_user(), sb.make_user(), sb.make_user()
    out = add_log(sb, gone["id"], stays["id"], "2026-03-01T10:00:00.000000Z")
    back = add_log(sb, stays["id"], gone["id"], "2026-03-02T10:00:00.000000Z",
                   "missed")
    other = add_log(sb, third["id"], stays["id"],
                    "2026-03-03T10:00:00.000000Z")
    delete_user(sb, gone)

    rows = sb.sql("SELECT id, caller_id, callee_id, status FROM call_logs "
                  "WHERE id IN (?, ?, ?) ORDER BY id", (out, back, other))
    assert rows == [(out, None, stays["id"], "ended"),
                    (back, stays["id"], None, "missed"),
                    (other, third["id"], stays["id"], "ended")]

    r = sb.req("GET", "/protected/call/logs", token=stays["token"])
    logs = expect(r, 200)["call_logs"]
    assert [x["id"] for x in logs] == [other, back, out]
    by_id = {x["id"]: x for x in logs}
    assert by_id[out]["caller_id"] == 0
    assert list(by_id[out]["caller"]) == USER_KEYS
    assert by_id[out]["caller"] == DELETED
    assert by_id[out]["callee"]["username"] == stays["username"]
    assert by_id[back]["callee_id"] == 0 and by_id[back]["callee"] == DELETED
    assert by_id[back]["caller"]["id"] == stays["id"]
    assert by_id[other]["caller"]["username"] == third["username"]


def test_both_parties_deleted_rows_stay(sb):
    a, b = sb.make_user(), sb.make_user()
    log = add_log(sb, a["id"], b["id"], "2026-03-04T10:00:00.000000Z")
    delete_user(sb, a)
    delete_user(sb, b)
    assert sb.sql("SELECT caller_id, callee_id, status FROM call_logs "
                  "WHERE id = ?", (log,)) == [(None, None, "ended")]


def test_deleted_caller_of_a_real_call(sb):
    """A call made and ended through the system, then its caller deleted:
    the callee's history still lists it, with its duration."""
    a, b = sb.make_user(), sb.make_user()
    with connect_user(sb, a) as ca, connect_user(sb, b) as cb:
        call_id = start_call(sb, a, b, ca, cb)
        expect(sb.req("POST", "/protected/call/hangup", token=a["token"],
                      json={"channel": call_id}), 200)
        wait_call_status(sb, call_id, "ended")
    delete_user(sb, a)
    r = sb.req("GET", "/protected/call/logs", token=b["token"])
    logs = [x for x in expect(r, 200)["call_logs"]
            if x["channel"] == call_id]
    assert len(logs) == 1, logs
    assert logs[0]["status"] == "ended"
    assert logs[0]["caller"] == DELETED and logs[0]["caller_id"] == 0
    assert logs[0]["callee"]["id"] == b["id"]
