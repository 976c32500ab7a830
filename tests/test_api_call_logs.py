"""GET /protected/call/logs: the caller's own calls, newest first, in the
CallLog shape with both parties nested as User objects."""

from harness import expect

LOG_KEYS = ["id", "caller_id", "callee_id", "caller", "callee", "start_time",
            "end_time", "duration", "status", "channel", "direction",
            "created_at"]
NESTED_USER_KEYS = ["id", "username", "email", "extension", "status", "role",
                    "is_online", "last_login", "last_seen", "created_at",
                    "updated_at", "online"]


def insert_log(sb, caller, callee, status, channel, created, end=None,
               duration=None):
    sb.sql("INSERT INTO call_logs (caller_id, callee_id, start_time, "
           "end_time, duration, status, channel, direction, created_at) "
           "VALUES (?, ?, ?, ?, ?, ?, ?, 'outbound', ?)",
           (caller, callee, created, end, duration, status, channel, created))
    return sb.sql("SELECT max(id) FROM call_logs")[0][0]


def test_logs_are_mine_newest_first_with_parties(sb):
    a, b, c = sb.make_user(), sb.make_user(), sb.make_user()
    old = insert_log(sb, a["id"], b["id"], "ended", "webrtc-call-1-aa",
                     "2026-01-01T10:00:00.000000Z",
                     "2026-01-01T10:00:42.000000Z", 40)
    new = insert_log(sb, b["id"], a["id"], "missed", "webrtc-call-2-bb",
                     "2026-01-02T10:00:00.000000Z", None, 0)
    insert_log(sb, b["id"], c["id"], "ended", "webrtc-call-3-cc",
               "2026-01-03T10:00:00.000000Z")

    r = sb.req("GET", "/protected/call/logs", token=a["token"])
    expect(r, 200)
    body = r.json()
    assert list(body) == ["call_logs", "success"] and body["success"] is True
    logs = body["call_logs"]
    assert [log["id"] for log in logs] == [new, old]
    first, second = logs[1], logs[0]
    assert list(first) == LOG_KEYS
    assert first["caller_id"] == a["id"] and first["callee_id"] == b["id"]
    assert list(first["caller"]) == NESTED_USER_KEYS
    assert first["caller"]["username"] == a["username"]
    assert first["callee"]["extension"] == b["extension"]
    assert first["duration"] == 40 and first["status"] == "ended"
    assert first["end_time"] == "2026-01-01T10:00:42.000000Z"
    assert first["direction"] == "outbound"
    assert second["end_time"] is None and second["status"] == "missed"
    for log in logs:
        assert "password" not in log["caller"] and "password" not in log["callee"]


def test_logs_limit_and_bad_limit(sb):
    a, b = sb.make_user(), sb.make_user()
    for i in range(3):
        insert_log(sb, a["id"], b["id"], "ended", f"webrtc-call-{i}-dd",
                   f"2026-02-0{i + 1}T10:00:00.000000Z")
    r = sb.req("GET", "/protected/call/logs?limit=2", token=a["token"])
    expect(r, 200)
    assert len(r.json()["call_logs"]) == 2
    # The page is the newest across both roles, equal times newest id
    # first, however the calls made and received interleave.
    c = sb.make_user()
    same = "2026-02-05T10:00:00.000000Z"
    made = [insert_log(sb, c["id"], b["id"], "ended", f"webrtc-call-m{i}",
                       f"2026-02-0{i + 1}T10:00:00.000000Z")
            for i in range(4)]
    got = [insert_log(sb, b["id"], c["id"], "missed", f"webrtc-call-g{i}",
                      f"2026-02-0{i + 1}T11:00:00.000000Z")
           for i in range(4)]
    tie = [insert_log(sb, *pair, "ended", f"webrtc-call-t{i}", same)
           for i, pair in enumerate([(c["id"], b["id"]), (b["id"], c["id"]),
                                     (c["id"], b["id"])])]
    newest = tie[::-1] + [got[3], made[3], got[2], made[2], got[1]]
    for n in (1, 3, 5, 8):
        r = sb.req("GET", f"/protected/call/logs?limit={n}",
                   token=c["token"])
        assert [x["id"] for x in expect(r, 200)["call_logs"]] == newest[:n]
    for bad in ["0", "-1", "x", "501", "2x"]:
        r = sb.req("GET", f"/protected/call/logs?limit={bad}",
                   token=a["token"])
        expect(r, 400, {"error": "Invalid request format", "field": "limit"})


def test_logs_empty_and_unauthenticated(sb):
    u = sb.make_user()
    r = sb.req("GET", "/protected/call/logs", token=u["token"])
    expect(r, 200, {"call_logs": [], "success": True})
    r = sb.req("GET", "/protected/call/logs")
    expect(r, 401, {"error": "Authorization header required"})
