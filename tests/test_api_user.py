"""The signed-in user's routes: profile, logout, status, heartbeat, the
online list, lookups by extension, debug/auth."""

import json
import time

import pytest

from harness import TIME_RE, USER_KEYS, expect, snapshot

INVALID = "Invalid request format"
STATUS_ERROR = "Invalid status. Must be one of: online, offline, busy, away"
STATUS_CHANGED_KEYS = ["client_count", "extension", "is_online", "last_seen",
                       "status", "timestamp", "type", "user_id", "username",
                       "ws_connected"]


def db_user(sb, uid):
    cols = ["id", "username", "email", "extension", "status", "role",
            "is_online", "last_login", "last_seen", "created_at"]
    row = sb.sql(f"SELECT {', '.join(cols)} FROM users WHERE id = ?", (uid,))
    return dict(zip(cols, row[0])) if row else None


def notify_since(sb, last_id):
    rows = sb.sql("SELECT id, target_kind, target_value, payload, created_at "
                  "FROM notify WHERE id > ? ORDER BY id", (last_id,))
    return [(kind, value, json.loads(payload), created)
            for _, kind, value, payload, created in rows]


def notify_max(sb):
    return sb.sql("SELECT coalesce(max(id), 0) FROM notify")[0][0]


def test_profile(sb):
    u = sb.make_user()
    data = expect(sb.req("GET", "/protected/profile", token=u["token"]), 200)
    assert list(data) == ["success", "user"]
    assert data["success"] is True
    user = data["user"]
    assert list(user) == USER_KEYS
    row = db_user(sb, u["id"])
    row["is_online"] = bool(row["is_online"])
    # Just logged in: is_online and a fresh last_seen.
    row["online"] = row["is_online"]
    assert user == row


def test_profile_of_vanished_user_is_refused(sb):
    u = sb.make_user()
    sb.sql("DELETE FROM users WHERE id = ?", (u["id"],))
    expect(sb.req("GET", "/protected/profile", token=u["token"]), 401,
           {"error": "Invalid token: user no longer exists"})


def test_logout_sets_offline_and_revokes(sb):
    u = sb.make_user()
    mark = notify_max(sb)
    r = sb.req("POST", "/protected/logout", token=u["token"])
    expect(r, 200, {"message": "Logged out successfully", "success": True})
    row = db_user(sb, u["id"])
    assert (row["status"], row["is_online"]) == ("offline", 0)
    assert TIME_RE.match(row["last_seen"])
    events = notify_since(sb, mark)
    assert [(k, v, p["type"], p["user_id"], p.get("status"))
            for k, v, p, _ in events] == [
        ("all", "", "user_status_changed", u["id"], "offline"),
        ("user", str(u["id"]), "session_revoked", u["id"], None)]
    for path, method in (("/protected/profile", "GET"),
                         ("/protected/logout", "POST")):
        expect(sb.req(method, path, token=u["token"]), 401,
               {"error": "Invalid token: token has been revoked"})
    # A new login works again.
    t = sb.login(u["username"], u["password"])
    expect(sb.req("GET", "/protected/profile", token=t), 200)


@pytest.mark.parametrize("status,online", [
    ("online", True), ("busy", None), ("away", None), ("offline", False)])
def test_status_update(sb, status, online):
    u = sb.make_user()  # logged in: online
    if online is None:
        # busy/away keep is_online as it was: try both ways.
        sb.sql("UPDATE users SET is_online = 0 WHERE id = ?", (u["id"],))
    mark = notify_max(sb)
    t0 = time.time()
    r = sb.req("PUT", "/protected/status", token=u["token"],
               json={"status": status})
    data = expect(r, 200)
    assert list(data) == ["message", "success", "user"]
    assert data["message"] == "Status updated successfully"
    assert data["success"] is True
    user = data["user"]
    assert list(user) == USER_KEYS
    assert user["status"] == status
    assert user["is_online"] is (False if online is None else online)
    row = db_user(sb, u["id"])
    assert row["status"] == status
    assert row["last_seen"] == user["last_seen"]
    assert TIME_RE.match(user["last_seen"])

    events = notify_since(sb, mark)
    assert [(k, v, p["type"]) for k, v, p, _ in events] == [
        ("all", "", "user_status_changed"), ("all", "", "user_status")]
    changed, st = events[0][2], events[1][2]
    assert list(changed) == STATUS_CHANGED_KEYS
    assert changed["user_id"] == u["id"]
    assert changed["username"] == u["username"]
    assert changed["extension"] == u["extension"]
    assert changed["status"] == status
    assert changed["is_online"] is user["is_online"]
    assert changed["last_seen"] == user["last_seen"]
    assert changed["client_count"] == 0 and changed["ws_connected"] is False
    assert t0 - 2 <= changed["timestamp"] <= time.time() + 2
    assert st == {"type": "user_status", "from": u["extension"],
                  "status": status, "timestamp": 0}
    assert list(st) == ["type", "from", "status", "timestamp"]
    for _, _, _, created in events:
        assert TIME_RE.match(created)


STATUS_BAD = [
    ('{"status":"sleeping"}', {"error": STATUS_ERROR, "field": "status"}),
    ('{"status":"Online"}', {"error": STATUS_ERROR, "field": "status"}),
    ('{"status":""}', {"error": STATUS_ERROR, "field": "status"}),
    ('{"status":1}', {"error": INVALID, "field": "status"}),
    ('{"status":null}', {"error": INVALID, "field": "status"}),
    ('{}', {"error": INVALID, "field": "status"}),
    ('{"state":"busy"}', {"error": INVALID, "field": "status"}),
    ('{', {"error": INVALID}),
    ('', {"error": INVALID}),
    ('["busy"]', {"error": INVALID}),
]


@pytest.mark.parametrize("body,want", STATUS_BAD)
def test_status_bad_input(sb, body, want):
    u = sb.make_user()
    before = snapshot(sb)
    r = sb.req("PUT", "/protected/status", token=u["token"], data=body,
               headers={"Content-Type": "application/json"})
    expect(r, 400, want)
    assert snapshot(sb) == before


def test_status_needs_token(sb):
    before = snapshot(sb)
    expect(sb.req("PUT", "/protected/status", json={"status": "busy"}), 401,
           {"error": "Authorization header required"})
    assert snapshot(sb) == before


def test_heartbeat_returns_previous_values(sb):
    u = sb.make_user()
    sb.sql("UPDATE users SET status = 'away', is_online = 0, "
           "last_seen = '2020-01-01T00:00:00.000000Z' WHERE id = ?",
           (u["id"],))
    r = sb.req("POST", "/protected/heartbeat", token=u["token"])
    data = expect(r, 200)
    assert list(data) == ["is_online", "status", "success", "timestamp"]
    assert data["is_online"] is False
    assert data["status"] == "away"
    assert data["success"] is True
    assert TIME_RE.match(data["timestamp"])
    row = db_user(sb, u["id"])
    assert row["last_seen"] == data["timestamp"]
    # Without a WebSocket nothing promotes the user.
    assert (row["status"], row["is_online"]) == ("away", 0)


def test_heartbeat_offline_without_socket_stays_offline(sb):
    u = sb.make_user()
    sb.sql("UPDATE users SET status = 'offline', is_online = 0 WHERE id = ?",
           (u["id"],))
    data = expect(sb.req("POST", "/protected/heartbeat", token=u["token"]),
                  200)
    assert (data["status"], data["is_online"]) == ("offline", False)
    assert db_user(sb, u["id"])["status"] == "offline"


def test_users_online(sb):
    me, other, busy = sb.make_user(), sb.make_user(), sb.make_user()
    expect(sb.req("PUT", "/protected/status", token=busy["token"],
                  json={"status": "busy"}), 200)
    data = expect(sb.req("GET", "/protected/users/online", token=me["token"]),
                  200)
    assert list(data) == ["success", "users"]
    ids = [u["id"] for u in data["users"]]
    assert other["id"] in ids
    assert me["id"] not in ids and busy["id"] not in ids
    assert ids == sorted(ids)
    for u in data["users"]:
        assert list(u) == USER_KEYS
        assert u["status"] == "online"
    (n,) = sb.sql("SELECT count(*) FROM users WHERE status = 'online' "
                  "AND id != ?", (me["id"],))[0]
    assert len(ids) == n


def test_users_online_empty_is_null(start):
    s = start()
    # Only the admin exists, and it is asking.
    data = expect(s.req("GET", "/protected/users/online",
                        token=s.admin_token()), 200)
    assert data == {"success": True, "users": None}


def test_user_by_extension(sb):
    me, other = sb.make_user(), sb.make_user()
    data = expect(sb.req("GET", f"/protected/users/{other['extension']}",
                         token=me["token"]), 200)
    assert list(data) == ["success", "user"]
    assert list(data["user"]) == USER_KEYS
    assert data["user"]["id"] == other["id"]
    assert data["user"]["username"] == other["username"]
    for ext in ("0000000", "9", "abc"):
        expect(sb.req("GET", f"/protected/users/{ext}", token=me["token"]),
               404, {"error": "User not found"})
    expect(sb.req("GET", f"/protected/users/{other['extension']}"), 401,
           {"error": "Authorization header required"})


def test_debug_auth(sb):
    u = sb.make_user()
    data = expect(sb.req("GET", "/protected/debug/auth", token=u["token"]),
                  200)
    assert list(data) == ["auth_info", "success"]
    assert data["auth_info"] == {
        "extension": u["extension"], "extension_exists": True,
        "is_admin": False, "role": "user", "role_exists": True,
        "user_id": u["id"], "user_id_exists": True,
        "username": u["username"], "username_exists": True}
    assert list(data["auth_info"]) == sorted(data["auth_info"])
    data = expect(sb.req("GET", "/protected/debug/auth",
                         token=sb.admin_token()), 200)
    assert data["auth_info"]["is_admin"] is True
    assert data["auth_info"]["role"] == "admin"
