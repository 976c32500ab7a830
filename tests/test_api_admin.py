"""Admin routes and role checks: users CRUD, runtime settings."""

import json
import secrets

import pytest

from harness import TIME_RE, USER_KEYS, expect, snapshot

INVALID = "Invalid request format"
ADMIN_REQUIRED = {"error": "Admin access required"}


def notify_max(sb):
    return sb.sql("SELECT coalesce(max(id), 0) FROM notify")[0][0]


def new_body(role=None, sb=None):
    n = secrets.token_hex(4)
    b = {"username": f"a{n}", "email": f"a{n}@example.test",
         "password": "pass-" + n,
         "extension": sb.free_extension() if sb else "99" + n[:4].translate(
             str.maketrans("abcdef", "012345"))}
    if role is not None:
        b["role"] = role
    return b


ADMIN_ROUTES = [
    ("GET", "/protected/admin/users", None),
    ("POST", "/protected/admin/users", new_body()),
    ("PUT", "/protected/admin/users/1", {"email": "x@example.test"}),
    ("DELETE", "/protected/admin/users/2", None),
    ("POST", "/config/update", {"asterisk_host": "pbx.example"}),
]


def error_body(path, method, body):
    """Errors of DELETE users and /config/update carry success:false (keys
    sorted, as the replaced backend's maps serialise)."""
    if (method == "DELETE" and "/users/" in path) or path == "/config/update":
        return {**body, "success": False}
    return body


@pytest.mark.parametrize("method,path,body", ADMIN_ROUTES)
def test_admin_routes_refuse_users(sb, method, path, body):
    u = sb.make_user()
    before = snapshot(sb)
    r = sb.req(method, path, token=u["token"], json=body)
    expect(r, 403, error_body(path, method, ADMIN_REQUIRED))
    r = sb.req(method, path, json=body)
    expect(r, 401, error_body(path, method,
                              {"error": "Authorization header required"}))
    assert snapshot(sb) == before


def test_admin_role_comes_from_the_database(sb):
    a = sb.make_user(role="admin")
    expect(sb.req("GET", "/protected/admin/users", token=a["token"]), 200)
    # Demoted behind the API's back: the old token no longer opens admin
    # routes, though it is still a valid user token.
    sb.sql("UPDATE users SET role = 'user' WHERE id = ?", (a["id"],))
    expect(sb.req("GET", "/protected/admin/users", token=a["token"]), 403,
           ADMIN_REQUIRED)
    expect(sb.req("GET", "/protected/profile", token=a["token"]), 200)
    # And the other way round.
    u = sb.make_user()
    sb.sql("UPDATE users SET role = 'admin' WHERE id = ?", (u["id"],))
    expect(sb.req("GET", "/protected/admin/users", token=u["token"]), 200)


def test_users_list(sb):
    a = sb.make_user()
    data = expect(sb.req("GET", "/protected/admin/users",
                         token=sb.admin_token()), 200)
    assert list(data) == ["extensions", "success", "users"]
    assert data["success"] is True
    rows = sb.sql("SELECT id, extension FROM users ORDER BY id")
    assert [u["id"] for u in data["users"]] == [r[0] for r in rows]
    assert data["extensions"] == [r[1] for r in rows]
    for u in data["users"]:
        assert list(u) == USER_KEYS
    assert a["id"] in [u["id"] for u in data["users"]]
    admin = data["users"][0]
    assert (admin["username"], admin["role"]) == ("admin", "admin")


@pytest.mark.parametrize("role", [None, "user", "admin"])
def test_users_create(sb, role):
    body = new_body(role, sb)
    audit = sb.sql("SELECT coalesce(max(id), 0) FROM audit_log")[0][0]
    r = sb.req("POST", "/protected/admin/users", token=sb.admin_token(),
               json=body)
    data = expect(r, 201)
    assert list(data) == ["message", "success", "user"]
    assert data["message"] == "User created successfully"
    user = data["user"]
    assert list(user) == USER_KEYS
    assert user["username"] == body["username"]
    assert user["email"] == body["email"]
    assert user["extension"] == body["extension"]
    assert user["role"] == (role or "user")
    assert (user["status"], user["is_online"]) == ("offline", False)
    assert TIME_RE.match(user["created_at"])
    (admin_id,) = sb.sql("SELECT id FROM users WHERE username = 'admin'")[0]
    rows = sb.sql("SELECT actor_id, action, target, details FROM audit_log "
                  "WHERE id > ?", (audit,))
    assert len(rows) == 1
    actor, action, target, details = rows[0]
    assert (actor, action, target) == (admin_id, "user.create",
                                       f"user:{user['id']}")
    assert body["password"] not in details and "$y$" not in details
    t = sb.login(body["username"], body["password"])
    expect(sb.req("GET", "/protected/profile", token=t), 200)


CREATE_BAD = [
    ({"role": "root"}, 400, {"error": "Role must be 'user' or 'admin'",
                             "field": "role"}),
    ({"role": ""}, 400, {"error": "Role must be 'user' or 'admin'",
                         "field": "role"}),
    ({"role": 1}, 400, {"error": INVALID, "field": "role"}),
    ({"username": "ab"}, 400, {"error": INVALID, "field": "username"}),
    ({"username": "a\tb\tc"}, 400, {"error": INVALID, "field": "username"}),
    ({"email": "nope"}, 400, {"error": INVALID, "field": "email"}),
    ({"password": "short"}, 400, {"error": INVALID, "field": "password"}),
    ({"extension": "12"}, 400, {"error": INVALID, "field": "extension"}),
    ({"extension": 1234}, 400, {"error": INVALID, "field": "extension"}),
    ({"username": None}, 400, {"error": INVALID, "field": "username"}),
]


@pytest.mark.parametrize("change,status,want", CREATE_BAD)
def test_users_create_bad_input(sb, change, status, want):
    body = new_body()
    body.update(change)
    token = sb.admin_token()
    before = snapshot(sb)
    expect(sb.req("POST", "/protected/admin/users", token=token,
                  json=body), status, want)
    assert snapshot(sb) == before


@pytest.mark.parametrize("body", ["{", "", "[]", "42"])
def test_users_create_malformed(sb, body):
    token = sb.admin_token()
    before = snapshot(sb)
    expect(sb.req("POST", "/protected/admin/users", token=token,
                  data=body, headers={"Content-Type": "application/json"}),
           400, {"error": INVALID})
    assert snapshot(sb) == before


def test_users_create_conflicts(sb):
    u = sb.make_user()
    for change, text in (
            ({"username": u["username"]}, "Username already exists"),
            ({"email": u["email"]}, "Email already exists"),
            ({"extension": u["extension"]}, "Extension already exists")):
        body = new_body(sb=sb)
        body.update(change)
        token = sb.admin_token()
        before = snapshot(sb)
        expect(sb.req("POST", "/protected/admin/users",
                      token=token, json=body), 409,
               {"error": text})
        assert snapshot(sb) == before


def test_users_update_fields(sb):
    u = sb.make_user()
    new_email = "changed-" + u["email"]
    r = sb.req("PUT", f"/protected/admin/users/{u['id']}",
               token=sb.admin_token(), json={"email": new_email})
    data = expect(r, 200)
    assert list(data) == ["message", "success", "user"]
    assert data["message"] == "User updated successfully"
    assert list(data["user"]) == USER_KEYS
    assert data["user"]["email"] == new_email
    assert data["user"]["username"] == u["username"]
    assert sb.sql("SELECT email FROM users WHERE id = ?", (u["id"],)) == [
        (new_email,)]
    # An email change leaves the user's tokens alone.
    expect(sb.req("GET", "/protected/profile", token=u["token"]), 200)


@pytest.mark.parametrize("change", [
    {"role": "admin"}, {"username": None}, {"extension": None}])
def test_users_update_revokes_tokens(sb, change):
    u = sb.make_user()
    change = dict(change)
    if "username" in change:
        change["username"] = "r" + u["username"]
    if "extension" in change:
        change["extension"] = sb.free_extension()
    expect(sb.req("PUT", f"/protected/admin/users/{u['id']}",
                  token=sb.admin_token(), json=change), 200)
    expect(sb.req("GET", "/protected/profile", token=u["token"]), 401,
           {"error": "Invalid token: token has been revoked"})
    username = change.get("username", u["username"])
    t = sb.login(username, u["password"])
    expect(sb.req("GET", "/protected/profile", token=t), 200)


def test_users_update_status_notifies(sb):
    u = sb.make_user()
    mark = notify_max(sb)
    data = expect(sb.req("PUT", f"/protected/admin/users/{u['id']}",
                         token=sb.admin_token(), json={"status": "away"}),
                  200)
    assert data["user"]["status"] == "away"
    rows = sb.sql("SELECT target_kind, payload FROM notify WHERE id > ?",
                  (mark,))
    assert len(rows) == 1
    kind, payload = rows[0]
    p = json.loads(payload)
    assert kind == "all"
    assert (p["type"], p["user_id"], p["status"]) == (
        "user_status_changed", u["id"], "away")


UPDATE_BAD = [
    ("abc", {"email": "a@example.test"}, 400,
     {"error": "Invalid user ID", "field": "id"}),
    ("0", {"email": "a@example.test"}, 400,
     {"error": "Invalid user ID", "field": "id"}),
    ("-1", {"email": "a@example.test"}, 400,
     {"error": "Invalid user ID", "field": "id"}),
    ("999999999", {"email": "a@example.test"}, 404,
     {"error": "User not found"}),
    ("{id}", {"role": "boss"}, 400,
     {"error": "Role must be 'user' or 'admin'", "field": "role"}),
    ("{id}", {"status": "gone"}, 400,
     {"error": "Invalid status. Must be one of: online, offline, busy, "
               "away", "field": "status"}),
    ("{id}", {"email": "bad"}, 400, {"error": INVALID, "field": "email"}),
    ("{id}", {"extension": "12"}, 400,
     {"error": INVALID, "field": "extension"}),
    ("{id}", {"username": 5}, 400, {"error": INVALID, "field": "username"}),
    ("{id}", {"password": "newpass1"}, 200, None),  # ignored: no change
]


@pytest.mark.parametrize("uid,body,status,want", UPDATE_BAD)
def test_users_update_bad_input(sb, uid, body, status, want):
    u = sb.make_user()
    uid = uid.replace("{id}", str(u["id"]))
    (hash_before,) = sb.sql("SELECT password FROM users WHERE id = ?",
                            (u["id"],))[0]
    token = sb.admin_token()
    before = snapshot(sb)
    r = sb.req("PUT", f"/protected/admin/users/{uid}", token=token,
               json=body)
    if status == 200:
        expect(r, 200)
        assert sb.sql("SELECT password FROM users WHERE id = ?",
                      (u["id"],)) == [(hash_before,)]
        sb.login(u["username"], u["password"])
        return
    expect(r, status, want)
    assert snapshot(sb) == before


def test_users_update_malformed(sb):
    u = sb.make_user()
    token = sb.admin_token()
    before = snapshot(sb)
    expect(sb.req("PUT", f"/protected/admin/users/{u['id']}",
                  token=token, data="{",
                  headers={"Content-Type": "application/json"}),
           400, {"error": INVALID})
    assert snapshot(sb) == before


def test_users_update_conflicts(sb):
    u, v = sb.make_user(), sb.make_user()
    for change, text in (
            ({"username": v["username"]}, "Username already exists"),
            ({"email": v["email"]}, "Email already exists"),
            ({"extension": v["extension"]}, "Extension already exists")):
        token = sb.admin_token()
        before = snapshot(sb)
        expect(sb.req("PUT", f"/protected/admin/users/{u['id']}",
                      token=token, json=change), 409,
               {"error": text})
        assert snapshot(sb) == before
    # Its own values are no conflict.
    expect(sb.req("PUT", f"/protected/admin/users/{u['id']}",
                  token=sb.admin_token(),
                  json={"username": u["username"], "email": u["email"],
                        "extension": u["extension"]}), 200)


def test_users_delete(sb):
    u, other = sb.make_user(), sb.make_user()
    now = "2026-01-01T00:00:00.000000Z"
    sb.sql("INSERT INTO call_logs (caller_id, callee_id, start_time, status, "
           "channel, direction, created_at) VALUES (?, ?, ?, 'initiated', "
           "'webrtc-call-1', 'outbound', ?)", (u["id"], other["id"], now, now))
    (admin_id,) = sb.sql("SELECT id FROM users WHERE username = 'admin'")[0]
    mark = notify_max(sb)
    r = sb.req("DELETE", f"/protected/admin/users/{u['id']}",
               token=sb.admin_token())
    data = expect(r, 200)
    assert list(data) == ["message", "success", "user"]
    assert data["message"] == "User deleted successfully"
    assert data["success"] is True
    assert list(data["user"]) == USER_KEYS
    assert data["user"]["id"] == u["id"]
    assert sb.sql("SELECT count(*) FROM users WHERE id = ?", (u["id"],)) == [
        (0,)]
    # The call stays in the other party's history, this side NULL.
    assert sb.sql("SELECT caller_id, callee_id FROM call_logs WHERE "
                  "channel = 'webrtc-call-1' AND callee_id = ?",
                  (other["id"],)) == [(None, other["id"])]
    rows = sb.sql("SELECT target_kind, payload FROM notify WHERE id > ?",
                  (mark,))
    # The revocation that closes the user's sockets, then the deletion.
    assert [(k, json.loads(p)) for k, p in rows] == [
        ("user", {"type": "session_revoked", "user_id": u["id"],
                  "generation": 1}),
        ("all", {"deleted_by": admin_id, "type": "user_deleted",
                 "user_id": u["id"], "username": u["username"]})]
    expect(sb.req("GET", "/protected/profile", token=u["token"]), 401,
           {"error": "Invalid token: user no longer exists"})
    expect(sb.req("POST", "/api/login",
                  json={"username": u["username"],
                        "password": u["password"]}), 401,
           {"error": "Invalid credentials"})
    expect(sb.req("GET", "/protected/profile", token=other["token"]), 200)


@pytest.mark.parametrize("uid,status,text,field", [
    ("abc", 400, "Invalid user ID", "id"),
    ("0", 400, "Invalid user ID", "id"),
    ("999999999", 404, "User not found", None),
])
def test_users_delete_errors(sb, uid, status, text, field):
    token = sb.admin_token()
    before = snapshot(sb)
    want = {"error": text, "field": field, "success": False}
    if not field:
        del want["field"]
    r = sb.req("DELETE", f"/protected/admin/users/{uid}", token=token)
    expect(r, status, want)
    assert snapshot(sb) == before


def test_admin_cannot_be_deleted(sb):
    a = sb.make_user(role="admin")
    token = sb.admin_token()
    before = snapshot(sb)
    r = sb.req("DELETE", f"/protected/admin/users/{a['id']}", token=token)
    expect(r, 403, {"error": "Cannot delete admin users", "success": False})
    assert snapshot(sb) == before
    expect(sb.req("GET", "/protected/profile", token=a["token"]), 200)


@pytest.fixture
def settings_restored(sb):
    yield
    sb.sql("DELETE FROM settings")


def test_config_update(sb, settings_restored):
    r = sb.req("POST", "/config/update", token=sb.admin_token(),
               json={"asterisk_host": "pbx.example.org",
                     "asterisk_ami_port": "5039", "sip_port": "8089"})
    data = expect(r, 200)
    assert list(data) == ["config", "message", "success"]
    assert data["message"] == "Configuration updated successfully"
    assert data["success"] is True
    c = data["config"]
    assert c["asterisk"] == {"host": "pbx.example.org",
                             "ws_url": "ws://pbx.example.org:8089/asterisk/ws"}
    assert c["api_url"] == sb.base
    # Every program sees it: /config is served by another one.
    got = expect(sb.req("GET", "/config"), 200)["config"]
    assert got == c
    # Empty strings leave values as they are.
    data = expect(sb.req("POST", "/config/update", token=sb.admin_token(),
                         json={"asterisk_host": "", "sip_port": ""}), 200)
    assert data["config"]["asterisk"]["host"] == "pbx.example.org"
    rows = sb.sql("SELECT action, target FROM audit_log "
                  "WHERE action = 'config.update'")
    assert rows and rows[-1] == ("config.update", "settings")


@pytest.mark.parametrize("body,field", [
    ({"asterisk_host": "bad host"}, "asterisk_host"),
    ({"asterisk_host": "a/b"}, "asterisk_host"),
    ({"asterisk_ami_port": "70000"}, "asterisk_ami_port"),
    ({"asterisk_ami_port": "0"}, "asterisk_ami_port"),
    ({"sip_port": "80a"}, "sip_port"),
    ({"sip_port": 8089}, "sip_port"),
    ({"asterisk_host": 1}, "asterisk_host"),
])
def test_config_update_bad_input(sb, settings_restored, body, field):
    token = sb.admin_token()
    before = snapshot(sb)
    r = sb.req("POST", "/config/update", token=token, json=body)
    expect(r, 400, {"error": INVALID, "field": field, "success": False})
    assert snapshot(sb) == before


def test_config_update_malformed(sb, settings_restored):
    token = sb.admin_token()
    before = snapshot(sb)
    r = sb.req("POST", "/config/update", token=token, data="{",
               headers={"Content-Type": "application/json"})
    expect(r, 400, {"error": INVALID, "success": False})
    assert snapshot(sb) == before
