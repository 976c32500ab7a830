"""The web client in a real (headless Chromium) browser, beyond the call:
the admin console, a socket lost and caught up, the keyboard alone,
accessibility (axe-core) and screenshots of every main screen.

See tests/browser/run.mjs for what each scenario does on the page.
Skipped with the reason when chromium, node or tests/browser/node_modules
is missing, and in the PostgreSQL pass.
"""

import contextlib
import csv
import datetime
import io
import secrets
import signal
import sqlite3
import sys

from harness import REPO

sys.path.insert(0, str(REPO / "tests" / "browser"))
from browser_driver import (run_scenario, skip_if_missing,  # noqa: E402
                            user_args)
from wsclient import call_row, connect_user, start_call  # noqa: E402

ABSENT = (404, 501, 502, 503)
UTC = datetime.timezone.utc
CSV_HEADER = ["ID", "Caller", "Caller Extension", "Callee",
              "Callee Extension", "Start Time", "End Time", "Duration",
              "Status", "Direction", "Channel"]


def utc_text(t):
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_admin_creates_user_who_logs_in(sb, tmp_path):
    """The admin creates a user in the console; the user logs in in a
    browser of their own; the admin edits them and deletes them, and the
    user's page ends its session in words. Parts whose routes this server
    lacks say "not available"; the export downloads when it has one."""
    skip_if_missing()
    admin = {"username": sb.admin_username, "password": sb.admin_password}
    name = f"web{secrets.token_hex(3)}"
    new = {"username": name, "email": f"{name}@example.test",
           "extension": sb.free_extension(),
           "password": secrets.token_urlsafe(12)}
    r = sb.req("GET", "/protected/admin/export/call-logs?format=csv",
               token=sb.admin_token())
    export_expected = r.status_code == 200
    out = run_scenario(sb.base, "admin",
                       {"admin": admin, "newUser": new,
                        "exportExpected": export_expected}, tmp_path)

    assert out["created"] == f"User {name} created.", out
    assert out["user"]["username"] == name
    assert out["user"]["role"] == "user"
    assert out["userView"] == {"phone": True, "adminTab": False,
                               "ext": new["extension"]}, out
    rows = sb.sql("SELECT email, role FROM users WHERE username = ?",
                  (name,))
    assert rows == [], rows  # deleted at the end
    assert name in out["confirm"] and new["extension"] in out["confirm"]
    assert out["gone"] == "Your session has ended; log in again.", out

    # Each live part either shows figures or says it is not available,
    # matching what the server answers.
    routes = {"stats-card": "/protected/admin/stats",
              "health-card": "/protected/admin/health",
              "active-card": "/protected/admin/active-calls",
              "admin-backups": "/protected/admin/backups"}
    for card, path in routes.items():
        status = sb.req("GET", path, token=sb.admin_token()).status_code
        state = out["cards"][card]
        if status in ABSENT:
            assert "not available on this server" in state["state"], state
            assert "unavailable" in state["kind"], state
        else:
            assert status == 200, (path, status)
            assert "not available" not in state["state"], state
            assert "error" not in state["kind"], state

    if export_expected:
        assert out["download"]["name"].endswith(".csv"), out["download"]
        assert out["download"]["first_line"].startswith("ID,Caller"), out
        assert out["export"]["text"].startswith("Downloaded "), out
    else:
        assert out["download"] is None
        assert "Export is not available on this server" in \
            out["export"]["text"], out["export"]


def test_admin_live_export_and_backups(start, tmp_path):
    """The console's live parts on a system of known data: statistics and
    health as the server counts them, the active call (a real WebRTC call)
    listed and ended from the console, the call logs exported in a time
    zone, and a backup made, downloaded (the SQLite file) and restored,
    with the database checked after each."""
    skip_if_missing()
    s = start(env={"TZ": "UTC"})  # "today" is the UTC day
    a, b = s.make_user(), s.make_user()
    now = datetime.datetime.now(datetime.timezone.utc)
    # Two calls today, two long before (their New York offsets differ).
    logs = [(now - datetime.timedelta(seconds=2), "ended", 42),
            (now - datetime.timedelta(seconds=1), "missed", 0),
            (datetime.datetime(2025, 7, 4, 16, 0, tzinfo=UTC), "ended", 60),
            (datetime.datetime(2025, 1, 15, 12, 0, tzinfo=UTC), "ended", 5)]
    ids = [s.sql("INSERT INTO call_logs (caller_id, callee_id, start_time, "
                 "end_time, duration, status, channel, direction, "
                 "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'outbound', ?) "
                 "RETURNING id",
                 (a["id"], b["id"], utc_text(t), utc_text(t), d, st,
                  f"webrtc-call-seed-{i}", utc_text(t)))[0][0]
           for i, (t, st, d) in enumerate(logs)]
    admin = {"username": s.admin_username, "password": s.admin_password}
    late = f"late{secrets.token_hex(3)}"

    def backed_up(data):
        # Written after the backup: the restore takes it away again.
        s.sql("DELETE FROM call_logs WHERE id = ?", (ids[3],))
        s.sql("INSERT INTO users (username, email, password, extension, "
              "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
              (late, f"{late}@example.test", "!" + secrets.token_hex(16),
               s.free_extension(), utc_text(now), utc_text(now)))
        return {}

    with connect_user(s, a) as ca, connect_user(s, b) as cb:
        call_id = start_call(s, a, b, ca, cb)
        users = s.sql("SELECT count(*) FROM users")[0][0]
        out = run_scenario(s.base, "admin_live", {
            "admin": admin, "callId": call_id, "tz": "America/New_York",
            "backupName": "before-restore",
            # a's, b's and the console's own.
            "expect": {"sockets": 3}}, tmp_path,
            checkpoints={"backed-up": backed_up})
        # The callee is told the call is over.
        cb.wait_type("call_ended", channel=call_id)
    print(out["_seconds"], "s")
    cards = out["cards"]
    # admin, a and b logged in; the live call is a row of today too.
    assert cards["stats"][:5] == [["Users", str(users)], ["Online", "3"],
                                  ["Active calls", "1"],
                                  ["Calls today", "3"],
                                  ["Open sockets", "3"]], cards
    assert cards["stats"][5][0] == "Uptime", cards
    health = dict(cards["health"])
    assert health["Overall"] == "healthy", health
    assert health["asterisk"] == "not configured", health
    for svc in ("backend", "database", "websocket"):
        assert health[svc] == "healthy", health
    assert health["Database size"].endswith(("B", "KB", "MB")), health
    assert all("error" not in k and "unavailable" not in k
               for k in cards["states"].values()), cards["states"]
    (active,) = [t for i, t in cards["active"] if i == call_id]
    assert active.startswith(f"{a['username']} → {b['username']}, "
                             "connected, since "), active

    assert call_id in out["terminate_ask"], out
    assert out["terminated"] == "Call terminated successfully", out
    row = call_row(s, call_id)
    assert row["status"] == "ended" and row["end_time"] is not None, row
    assert not s.sql("SELECT 1 FROM call_logs WHERE channel = ? AND "
                     "end_time IS NULL", (call_id,))
    audit = s.sql("SELECT details FROM audit_log WHERE action = "
                  "'call.terminate'")
    assert len(audit) == 1 and call_id in audit[0][0], audit

    ex = out["export"]
    assert ex["name"] == "call-logs.csv", ex
    assert ex["state"].startswith("Downloaded call-logs.csv ("), ex
    assert any(q.startswith("GET /protected/admin/export/call-logs?") and
               "format=csv" in q and "tz=America%2FNew_York" in q
               for q in out["asked"]), out["asked"]
    rows = list(csv.reader(io.StringIO(ex["text"], newline="")))
    assert rows[0] == CSV_HEADER, rows[0]
    got = {r[0]: dict(zip(CSV_HEADER, r)) for r in rows[1:]}
    assert len(got) == 5, rows  # the four seeded and the live call
    summer, winter = got[str(ids[2])], got[str(ids[3])]
    assert summer["Start Time"] == "2025-07-04T12:00:00-04:00", summer
    assert winter["Start Time"] == "2025-01-15T07:00:00-05:00", winter
    assert (summer["Caller"], summer["Callee Extension"],
            summer["Duration"]) == (a["username"], b["extension"], "60")
    assert got[str(ids[1])]["Status"] == "missed"
    assert [r[10] for r in rows[1:] if r[10] == call_id] == [call_id]

    assert out["created"] == "The backup is complete.", out
    bk = out["backup"]
    assert bk["text"].startswith("before-restore — "), bk
    assert any(q == "POST /protected/admin/backup" for q in out["asked"])
    assert out["backup_file"] == f"{bk['id']}.sqlite3", out
    assert out["downloaded"] == f"Downloaded {bk['id']}.sqlite3.", out
    path = f"/protected/admin/backup/download/{bk['id']}"
    assert out["types"][path] == "application/vnd.sqlite3", out["types"]
    got_file = tmp_path / "backup-download"
    assert got_file.read_bytes()[:16] == b"SQLite format 3\0"
    with contextlib.closing(sqlite3.connect(got_file)) as db:
        # The copy holds what the system held when it was taken.
        assert db.execute("SELECT count(*) FROM users").fetchone() == (
            users,)
        assert db.execute("SELECT count(*) FROM call_logs").fetchone() == (
            5,)

    assert bk["id"] in out["restore_ask"], out
    assert out["restored"].startswith("Restore completed successfully; "
                                      "the data it replaced is kept as "
                                      "backup "), out
    pre = out["restored"].rsplit(" ", 1)[1].rstrip(".")
    assert pre in out["backups_after"] and bk["id"] in out["backups_after"]
    # Back as it was at the backup.
    assert s.sql("SELECT count(*) FROM users WHERE username = ?",
                 (late,)) == [(0,)]
    assert s.sql("SELECT id FROM call_logs WHERE id = ?",
                 (ids[3],)) == [(ids[3],)]
    assert s.sql("SELECT count(*) FROM users")[0][0] == users


def test_socket_lost_then_caught_up(start, tmp_path):
    """The relay dies under a logged-in page: the page shows
    "reconnecting"; a user's status changes meanwhile; the relay comes
    back and the page replays what it missed (since/epoch) and says so."""
    skip_if_missing()
    s = start()
    a = s.make_user()
    c = s.make_user()

    def stop_relay(_):
        s.relay_kill(signal.SIGKILL)
        return {}

    def while_down(_):
        # Written to the event stream while no relay can deliver it.
        r = s.req("PUT", "/protected/status", token=c["token"],
                  json={"status": "busy"})
        assert r.status_code == 200, r.text
        s.relay_start()
        return {"extension": c["extension"]}

    out = run_scenario(s.base, "reconnect", {"a": user_args(a)}, tmp_path,
                       checkpoints={"stop-relay": stop_relay,
                                    "while-down": while_down})
    assert out["down"] == "reconnecting…", out
    assert out["up"] == "connected", out
    assert "missed event" in out["notice"] and "caught up" in out["notice"]
    busy = [e for e in out["replayed"] if e["status"] == "busy"]
    assert busy and all(e["seq"] > out["seq_before"] for e in busy), out
    assert out["seq_after"] >= max(e["seq"] for e in busy), out


def test_keyboard_only_login_and_call(sb, tmp_path):
    """Tab, type and Enter alone log in and place a call; the callee's
    focus lands on Accept; the caller's on Hang up; the focus ring
    shows."""
    skip_if_missing()
    a = sb.make_user()
    b = sb.make_user()
    out = run_scenario(sb.base, "keyboard", {"a": user_args(a),
                                             "b": user_args(b)}, tmp_path)
    assert out["focus_ring_visible"] is True, out
    assert out["tabs_to_login"] <= 4, out["trail"]
    assert out["tabs_to_dial"] <= 3, out["trail"]
    assert out["focus_after_connect"] == "hangup", out
    assert out["after"]["state"] == "idle", out
    assert out["after"]["text"].startswith("Last call with "), out
    assert out["after"]["focus"] == "dial-ext", out


def test_screens_themes_phone_width_and_axe(sb, tmp_path):
    """Login, phone, history and admin, in the light and dark themes, at
    desktop and phone width: a screenshot of each, no horizontal scroll
    on the phone, and axe-core finds no serious or critical violation."""
    skip_if_missing()
    # Someone online, and eleven calls or more in the admin's history:
    # no screen is empty, and the history has a second page.
    u = sb.make_user()
    for _ in range(11):
        r = sb.req("POST", "/protected/call/initiate?method=webrtc",
                   token=u["token"], json={"target_extension": "1000"})
        assert r.status_code in (200, 500), r.text
    r = sb.req("GET", "/protected/call/logs?limit=500",
               token=sb.admin_token())
    total = len(r.json()["call_logs"])
    assert total >= 11, r.text
    admin = {"username": sb.admin_username, "password": sb.admin_password}
    out = run_scenario(sb.base, "screens", {"admin": admin}, tmp_path,
                       deadline_s=90)
    print(sorted(out["screenshots"]), out["_seconds"])
    assert len(out["screenshots"]) == 16, out["screenshots"]
    for screen in ("login", "phone", "history", "admin"):
        for theme in ("light", "dark"):
            for size in ("desktop", "phone"):
                name = f"{screen}-{theme}-{size}.png"
                assert name in out["screenshots"], name
                assert (tmp_path / name).stat().st_size > 5000, name
    # Ten a page, newest first; Older and Newer move between them.
    pg = out["paging"]
    assert len(pg["first"]["rows"]) == 10 and pg["first"]["older"], pg
    assert not pg["first"]["newer"] and pg["first"]["page"] == "Page 1"
    assert pg["second"]["page"] == "Page 2" and pg["second"]["newer"], pg
    assert len(pg["second"]["rows"]) == min(10, total - 10), pg
    assert not set(pg["first"]["rows"]) & set(pg["second"]["rows"]), pg
    assert pg["back"]["rows"] == pg["first"]["rows"], pg

    bad = [(s["label"], v) for s in out["scans"] for v in s["serious"]]
    assert bad == [], bad
    assert all(s["passes"] > 10 for s in out["scans"]), out["scans"]


def test_register_refused_in_words_then_created(sb, tmp_path):
    """The registration form: a username already taken is refused with the
    server's reason in words; a fresh one creates the account and logs
    in, and a reload keeps the session."""
    skip_if_missing()
    taken = sb.make_user()
    name = f"reg{secrets.token_hex(3)}"
    fresh = {"username": name, "email": f"{name}@example.test",
             "extension": sb.free_extension()[:6],
             "password": secrets.token_urlsafe(12)}
    out = run_scenario(sb.base, "register",
                       {"taken": taken["username"], "fresh": fresh},
                       tmp_path)
    assert out["refused"] == ("Registration failed: Username already "
                              "exists."), out
    assert out["user"]["username"] == name, out
    assert out["user"]["extension"] == fresh["extension"], out
    assert out["notice"] == f"Welcome, {name}: your account is ready.", out
    assert out["reloaded"] == name, out
    assert out["redirected"] == sb.base + "/", out
