"""Admin figures: stats, realtime metrics, health; online in user objects;
the live calls and the admin call routes."""

import datetime
import secrets
from zoneinfo import ZoneInfo

import pytest

from fakeami import FakeAMI
from harness import DB_ENGINE, TIME_RE, expect, snapshot
from wsclient import call_row, connect_user, initiate, wait_until

ADMIN_REQUIRED = {"error": "Admin access required"}

# Every admin route of this area, with a body where it takes one; errors
# of the backup routes and admin/call carry success:false.
ROUTES = [
    ("GET", "/protected/admin/stats", None),
    ("GET", "/protected/admin/metrics/realtime", None),
    ("GET", "/protected/admin/health", None),
    ("GET", "/protected/admin/health/fast", None),
    ("DELETE", "/protected/admin/call-logs/1", None),
    ("DELETE", "/protected/admin/call-logs/bulk-delete", {"log_ids": [1]}),
    ("DELETE", "/protected/admin/call-logs/clear-all?confirm=true", None),
    ("DELETE", "/protected/admin/call-logs/bulk-delete-filter",
     {"status": "ended"}),
    ("GET", "/protected/admin/export/call-logs?format=csv", None),
    ("POST", "/protected/admin/backup", {}),
    ("GET", "/protected/admin/backup/status/backup_1", None),
    ("GET", "/protected/admin/backups", None),
    ("GET", "/protected/admin/backup/download/backup_1", None),
    ("DELETE", "/protected/admin/backup/backup_1", None),
    ("POST", "/protected/admin/backup/restore/backup_1", None),
    ("GET", "/protected/admin/active-calls", None),
    ("POST", "/protected/admin/call",
     {"target_extension": "1001", "caller_extension": "1002"}),
    ("POST", "/protected/admin/terminate-call", {"call_id": "x"}),
]


def err_body(path, body):
    if "/backup" in path or path == "/protected/admin/call":
        return {**body, "success": False}
    return body


@pytest.mark.parametrize("method,path,body", ROUTES)
def test_routes_refuse_users(sb, method, path, body):
    u = sb.make_user()
    before = snapshot(sb)
    expect(sb.req(method, path, token=u["token"], json=body), 403,
           err_body(path, ADMIN_REQUIRED))
    expect(sb.req(method, path, json=body), 401,
           err_body(path, {"error": "Authorization header required"}))
    assert snapshot(sb) == before


def add_log(sb, caller, callee, created, status="ended", duration=60,
            end=True, channel=None):
    return sb.sql(
        "INSERT INTO call_logs (caller_id, callee_id, start_time, end_time, "
        "duration, status, channel, direction, created_at) VALUES "
        "(?, ?, ?, ?, ?, ?, ?, 'outbound', ?) RETURNING id",
        (caller, callee, created, created if end else None, duration, status,
         channel or f"webrtc-call-test-{created}", created))[0][0]


def utc_text(dt):
    return dt.astimezone(datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")


def test_stats_shape(sb):
    data = expect(sb.req("GET", "/protected/admin/stats",
                         token=sb.admin_token()), 200)
    assert list(data) == ["stats", "success"] and data["success"] is True
    s = data["stats"]
    assert list(s) == ["active_calls", "calls_today", "online_users",
                       "total_users", "uptime", "ws_connections"]
    assert s["total_users"] == sb.sql("SELECT count(*) FROM users")[0][0]
    assert all(isinstance(s[k], int) for k in s if k != "uptime")
    assert "days" in s["uptime"] and "minutes" in s["uptime"]


def test_stats_after_known_calls_in_tz(start):
    """calls_today counts the calls of the local day of TZ: a call a minute
    after local midnight counts, one a minute before does not, though both
    are on the same UTC date or not as the zone makes them."""
    zone = "Pacific/Kiritimati"  # UTC+14: local and UTC days differ most
    s = start(env={"TZ": zone})
    tok = s.admin_token()
    a, b = s.make_user(), s.make_user()
    now = datetime.datetime.now(ZoneInfo(zone))
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    today = [midnight + datetime.timedelta(minutes=1),
             midnight + datetime.timedelta(hours=3)]
    today = [t for t in today if t <= now] or [now]
    yesterday = [midnight - datetime.timedelta(minutes=1),
                 midnight - datetime.timedelta(hours=20)]
    for t in today + yesterday:
        add_log(s, a["id"], b["id"], utc_text(t))
    add_log(s, a["id"], b["id"], utc_text(today[0]), status="missed",
            duration=0)
    st = expect(s.req("GET", "/protected/admin/stats", token=tok),
                200)["stats"]
    assert st["calls_today"] == len(today) + 1
    # The three users just logged in (admin, a, b) are online.
    assert st["online_users"] == 3
    assert st["total_users"] == 3
    # The relay runs: its figures, no socket open yet.
    assert st["ws_connections"] == 0
    with connect_user(s, a):
        st = expect(s.req("GET", "/protected/admin/stats", token=tok),
                    200)["stats"]
        assert st["ws_connections"] == 1

    m = expect(s.req("GET", "/protected/admin/metrics/realtime", token=tok),
               200)
    assert list(m) == ["call_stats", "metrics", "recent_calls", "success",
                       "timestamp"]
    cs = m["call_stats"]
    assert list(cs) == ["avg_duration_formatted", "avg_duration_seconds",
                        "success_rate", "successful_calls", "total_calls",
                        "total_duration_seconds"]
    n = len(today) + len(yesterday)
    assert cs["total_calls"] == n + 1
    assert cs["successful_calls"] == n
    assert cs["total_duration_seconds"] == 60 * n
    assert cs["avg_duration_seconds"] == 60
    assert cs["avg_duration_formatted"] == "1:00"
    assert abs(cs["success_rate"] - 100.0 * n / (n + 1)) < 1e-6
    mm = m["metrics"]
    assert list(mm) == ["active_calls", "avg_call_duration",
                        "call_success_rate", "calls_today",
                        "connected_extensions", "online_users",
                        "successful_calls", "total_call_logs", "total_users",
                        "ws_connections"]
    assert mm["calls_today"] == len(today) + 1
    assert mm["connected_extensions"] == []
    rc = m["recent_calls"]
    assert len(rc) == n + 1
    assert list(rc[0]) == ["id", "caller_id", "callee_id", "caller", "callee",
                           "start_time", "end_time", "duration", "status",
                           "channel", "direction", "created_at"]
    assert rc[0]["id"] > rc[-1]["id"]  # newest first
    assert TIME_RE.match(rc[0]["created_at"])
    assert rc[0]["caller"]["username"] == a["username"]


SERVICE_KEYS = ["status", "last_check", "response_time_ms"]


def check_health(h):
    assert list(h) == ["timestamp", "status", "services", "system_metrics",
                       "database_health", "uptime", "version", "environment"]
    assert list(h["services"]) == ["asterisk", "backend", "database",
                                   "websocket"]
    for name, svc in h["services"].items():
        assert list(svc)[:3] == SERVICE_KEYS, (name, svc)
    sm = h["system_metrics"]
    assert list(sm) == ["cpu", "memory", "disk", "network"]
    assert list(sm["cpu"]) == ["usage_percent", "cores", "load_avg"]
    assert 0 <= sm["cpu"]["usage_percent"] <= 100
    assert sm["cpu"]["cores"] >= 1
    assert list(sm["memory"]) == ["total_bytes", "used_bytes",
                                  "available_bytes", "usage_percent"]
    assert sm["memory"]["total_bytes"] > sm["memory"]["used_bytes"] > 0
    assert list(sm["disk"]) == ["total_bytes", "used_bytes", "free_bytes",
                                "usage_percent"]
    assert sm["disk"]["total_bytes"] > 0
    assert list(sm["network"]) == ["active_connections", "websocket_clients"]
    dh = h["database_health"]
    assert list(dh) == ["status", "total_users", "active_calls",
                        "call_logs_count", "database_size"]
    # A SQLite file's size; PostgreSQL's files are the server's.
    if DB_ENGINE == "postgres":
        assert dh["database_size"] == "n/a"
    else:
        assert dh["database_size"].endswith("B")
    assert h["version"] == "1.0.0"


@pytest.mark.parametrize("path", ["/protected/health",
                                  "/protected/health/detailed"])
def test_health_for_users(sb, path):
    u = sb.make_user()
    data = expect(sb.req("GET", path, token=u["token"]), 200)
    assert list(data) == ["health", "response_time_ms", "success"]
    h = data["health"]
    check_health(h)
    assert h["status"] == "healthy"
    svc = h["services"]
    assert svc["backend"]["status"] == "healthy"
    assert svc["database"]["status"] == "healthy"
    assert svc["websocket"]["status"] == "healthy"
    # No ASTERISK_HOST: said so, not pretended.
    assert svc["asterisk"]["status"] == "not configured"
    assert h["database_health"]["total_users"] == sb.sql(
        "SELECT count(*) FROM users")[0][0]
    expect(sb.req("GET", path), 401,
           {"error": "Authorization header required"})


@pytest.mark.parametrize("path", ["/protected/admin/health",
                                  "/protected/admin/health/fast"])
def test_admin_health(sb, path):
    data = expect(sb.req("GET", path, token=sb.admin_token()), 200)
    check_health(data["health"])


def test_health_without_relay(start):
    s = start()
    s.relay_kill()
    h = expect(s.req("GET", "/protected/admin/health",
                     token=s.admin_token()), 200)["health"]
    assert h["status"] == "warning"
    assert h["services"]["websocket"]["status"] == "unhealthy"
    assert "relay" in h["services"]["websocket"]["error"]
    assert h["services"]["database"]["status"] == "healthy"
    st = expect(s.req("GET", "/protected/admin/stats",
                      token=s.admin_token()), 200)["stats"]
    assert st["ws_connections"] == 0


def test_online_in_user_objects(sb):
    u = sb.make_user()
    users = expect(sb.req("GET", "/protected/admin/users",
                          token=sb.admin_token()), 200)["users"]
    me = [x for x in users if x["id"] == u["id"]][0]
    assert me["online"] is True and me["is_online"] is True
    # A row that says online with nothing fresh behind it (a browser
    # closed without logging out) is not online.
    sb.sql("UPDATE users SET last_seen = '2001-01-01T00:00:00.000000Z' "
           "WHERE id = ?", (u["id"],))
    users = expect(sb.req("GET", "/protected/admin/users",
                          token=sb.admin_token()), 200)["users"]
    me = [x for x in users if x["id"] == u["id"]][0]
    assert me["online"] is False and me["is_online"] is True
    # A user with an open socket is online whatever its last_seen.
    with connect_user(sb, u):
        sb.sql("UPDATE users SET last_seen = '2001-01-01T00:00:00.000000Z' "
               "WHERE id = ?", (u["id"],))
        users = expect(sb.req("GET", "/protected/admin/users",
                              token=sb.admin_token()), 200)["users"]
        me = [x for x in users if x["id"] == u["id"]][0]
        assert me["online"] is True
        other = sb.make_user()
        online = expect(sb.req("GET", "/protected/users/online",
                               token=other["token"]), 200)["users"]
        assert [x["online"] for x in online if x["id"] == u["id"]] == [True]
    # Its last socket gone, the relay sets it offline; saying online again
    # (which freshens last_seen) makes it so.
    wait_until(lambda: sb.sql("SELECT is_online FROM users WHERE id = ?",
                              (u["id"],))[0][0] == 0, what="offline")
    prof = expect(sb.req("GET", "/protected/profile", token=u["token"]),
                  200)["user"]
    assert prof["online"] is False
    expect(sb.req("PUT", "/protected/status", token=u["token"],
                  json={"status": "online"}), 200)
    prof = expect(sb.req("GET", "/protected/profile", token=u["token"]),
                  200)["user"]
    assert prof["online"] is True


# ---- the live calls and the admin call routes

def test_active_calls_and_terminate(sb):
    tok = sb.admin_token()
    a, b = sb.make_user(), sb.make_user()
    with connect_user(sb, a) as ca, connect_user(sb, b) as cb:
        r = initiate(sb, a, b["extension"])
        assert r.status_code == 200, r.text
        call_id = r.json()["call_id"]
        cb.wait_type("webrtc_call_invitation", call_id=call_id)
        data = expect(sb.req("GET", "/protected/admin/active-calls",
                             token=tok), 200)
        assert list(data) == ["active_calls", "count", "success"]
        mine = [c for c in data["active_calls"] if c["channel"] == call_id]
        assert len(mine) == 1 and data["count"] >= 1
        c = mine[0]
        assert list(c) == ["id", "caller_id", "callee_id", "caller",
                           "callee", "channel", "status", "start_time",
                           "created_at"]
        assert c["status"] == "ringing"
        assert (c["caller_id"], c["callee_id"]) == (a["id"], b["id"])
        assert c["caller"]["extension"] == a["extension"]
        assert c["callee"]["username"] == b["username"]

        r = sb.req("POST", "/protected/admin/terminate-call", token=tok,
                   json={"call_id": call_id})
        d = expect(r, 200)
        assert d["call_id"] == call_id and d["success"] is True
        assert call_row(sb, call_id)["status"] == "cancelled"
        # Both parties are told the call is over.
        cb.wait_type("call_ended", channel=call_id)
        data = expect(sb.req("GET", "/protected/admin/active-calls",
                             token=tok), 200)
        assert not [c for c in data["active_calls"]
                    if c["channel"] == call_id]
        audit = sb.sql("SELECT actor_id, details FROM audit_log WHERE "
                       "action = 'call.terminate' ORDER BY id DESC LIMIT 1")
        assert audit and call_id in audit[0][1]
        # Ended: there is nothing left to terminate.
        expect(sb.req("POST", "/protected/admin/terminate-call", token=tok,
                      json={"call_id": call_id}), 404,
               {"error": "Active call not found"})


def test_terminate_call_errors(sb):
    tok = sb.admin_token()
    before = snapshot(sb)
    expect(sb.req("POST", "/protected/admin/terminate-call", token=tok,
                  json={}), 400,
           {"error": "Call ID is required", "field": "call_id"})
    expect(sb.req("POST", "/protected/admin/terminate-call", token=tok,
                  json={"call_id": "webrtc-call-0-none"}), 404,
           {"error": "Active call not found"})
    expect(sb.req("POST", "/protected/admin/terminate-call", token=tok,
                  json={"call_id": "PJSIP/1000-0001"}), 404,
           {"error": "Active call not found"})
    assert snapshot(sb) == before


def test_admin_call_without_asterisk(sb):
    tok = sb.admin_token()
    a, b = sb.make_user(), sb.make_user()
    before = snapshot(sb)
    expect(sb.req("POST", "/protected/admin/call", token=tok,
                  json={"target_extension": a["extension"],
                        "caller_extension": b["extension"]}), 503,
           {"error": "Asterisk is not configured", "success": False})
    expect(sb.req("POST", "/protected/admin/call", token=tok,
                  json={"target_extension": "9999999",
                        "caller_extension": b["extension"]}), 404,
           {"error": "Target extension not found", "success": False})
    expect(sb.req("POST", "/protected/admin/call", token=tok,
                  json={"target_extension": a["extension"]}), 400,
           {"error": "Invalid request format", "field": "caller_extension",
            "success": False})
    assert snapshot(sb) == before


def test_admin_call_with_ami_host(start):
    """With AMI_HOST set the call goes to the relay's manager link; while
    Asterisk cannot be reached the rows written for it are removed and the
    answer is 503."""
    s = start(env={"AMI_HOST": "127.0.0.1", "AMI_PORT": "9"})
    a, b = s.make_user(), s.make_user()
    before = snapshot(s)
    r = s.req("POST", "/protected/admin/call", token=s.admin_token(),
              json={"target_extension": a["extension"],
                    "caller_extension": b["extension"]})
    expect(r, 503, {"error": "Asterisk is not connected", "success": False})
    assert snapshot(s) == before
    h = expect(s.req("GET", "/protected/admin/health",
                     token=s.admin_token()), 200)["health"]
    assert h["services"]["asterisk"]["status"] != "not configured"


def ami_state(sb):
    return expect(sb.req("GET", "/health?detail=1"), 200)["ami"]["state"]


def test_admin_call_and_terminate_through_asterisk(start):
    """An admin places a call between two other users' extensions: the
    caller's device is originated towards the target, as the caller's own
    click would; the admin then ends it, a Hangup on its live channel."""
    ami = FakeAMI(username="sbadm", secret="s3-" + secrets.token_hex(12))
    ami.start()
    try:
        s = start(env={"AMI_HOST": "127.0.0.1", "AMI_PORT": str(ami.port),
                       "AMI_USERNAME": ami.username,
                       "AMI_SECRET": ami.secret, "AMI_PING_S": "3600",
                       "AMI_RECONNECT_MIN_MS": "100",
                       "AMI_RECONNECT_MAX_MS": "400"})
        wait_until(lambda: ami_state(s) == "connected", 15, "AMI link up")
        tok = s.admin_token()
        a, b = s.make_user(), s.make_user()
        ami.outcomes[b["extension"]] = "up"
        with connect_user(s, b) as cb:
            d = expect(s.req("POST", "/protected/admin/call", token=tok,
                             json={"target_extension": a["extension"],
                                   "caller_extension": b["extension"]}),
                       200)
            assert list(d) == ["call_id", "caller_extension", "message",
                               "success", "target_extension"]
            call_id = d["call_id"]
            assert call_id.startswith("pbx-call-")
            assert d["caller_extension"] == b["extension"]
            assert d["target_extension"] == a["extension"]
            assert d["message"] == "Call initiated successfully"
            o = ami.wait_for(
                lambda: [x for x in ami.actions_named("Originate")
                         if x.get("Variable") ==
                         f"SWITCHBOARD_CALL_ID={call_id}"],
                what="the Originate")[0]
            assert o.get("Channel") == f"PJSIP/{b['extension']}"
            assert o.get("Exten") == a["extension"]
            assert b["extension"] in o.get("CallerID")
            # The rows are the caller's, as its own call's would be.
            assert s.sql("SELECT caller_id, callee_id FROM call_logs WHERE "
                         "channel = ?", (call_id,)) == [(b["id"], a["id"])]
            assert s.sql("SELECT caller_id, callee_id FROM active_calls "
                         "WHERE channel = ?", (call_id,)) == [
                             (b["id"], a["id"])]
            cb.wait_type("call_status", timeout=15, call_id=call_id,
                         status="connected")
            wait_until(lambda: call_row(s, call_id)["status"] == "answered",
                       15, "answered")
            with ami._lock:
                chans = [ch for c in ami.calls for ch in c.channels
                         if ch.startswith(f"PJSIP/{b['extension']}-")]
            assert chans
            data = expect(s.req("GET", "/protected/admin/active-calls",
                                token=tok), 200)
            assert [c["channel"] for c in data["active_calls"]] == [call_id]

            n = len(ami.actions_named("Hangup"))
            d = expect(s.req("POST", "/protected/admin/terminate-call",
                             token=tok, json={"call_id": call_id}), 200)
            assert d["call_id"] == call_id and d["success"] is True
            assert d["message"] == "Call terminated successfully"
            sent = ami.wait_for(lambda: ami.actions_named("Hangup")[n:],
                                what="Hangup")
            assert {h.get("Channel") for h in sent} <= set(chans)
            cb.wait_type("call_status", timeout=15, call_id=call_id,
                         status="ended")
        wait_until(lambda: call_row(s, call_id)["end_time"] is not None, 15,
                   "call closed")
        assert call_row(s, call_id)["status"] == "ended"
        assert not s.sql("SELECT 1 FROM active_calls WHERE channel = ?",
                         (call_id,))
        acts = s.sql("SELECT action, actor_id, details FROM audit_log WHERE "
                     "action IN ('call.originate', 'call.terminate') "
                     "ORDER BY id")
        assert [x[0] for x in acts] == ["call.originate", "call.terminate"]
        assert all(call_id in x[2] for x in acts)
        # Over: nothing left to end.
        expect(s.req("POST", "/protected/admin/terminate-call", token=tok,
                     json={"call_id": call_id}), 404,
               {"error": "Active call not found"})
    finally:
        ami.stop()
