"""Backups: create, status, list, download, delete, restore (and the
command-line tool's), consistent while calls are written; a restore brings
the data back, keeps the database it replaced, is audited, and makes
connected browsers resync."""

import json
import re
import sqlite3
import threading
import time

import pytest

from harness import DB_ENGINE, expect, snapshot
from wsclient import connect_user

NOT_FOUND = {"error": "Backup not found", "success": False}
STATUS_KEYS = ["id", "status", "progress", "message", "created_at",
               "completed_at"]


def create(s, name=None):
    body = {"include_database": True, "include_config": True,
            "include_call_logs": True}
    if name is not None:
        body["backup_name"] = name
    data = expect(s.req("POST", "/protected/admin/backup",
                        token=s.admin_token(), json=body), 200)
    assert list(data) == ["backup_id", "message", "status", "success"]
    assert data["message"] == "Backup started successfully"
    assert re.fullmatch(r"backup_\d+(_\d+)?", data["backup_id"])
    assert list(data["status"]) == STATUS_KEYS
    assert data["status"]["status"] == "completed"
    assert data["status"]["progress"] == 100
    return data["backup_id"]


def audit(s, action):
    return s.sql("SELECT actor_id, target, details FROM audit_log "
                 "WHERE action = ? ORDER BY id", (action,))


# Backups copy the SQLite file through its online backup API; a PostgreSQL
# database is backed up with its own tools, and the routes say so.
sqlite_only = pytest.mark.skipif(DB_ENGINE != "sqlite",
                                 reason="backups of the SQLite file")


@pytest.mark.skipif(DB_ENGINE != "postgres", reason="PostgreSQL's answer")
def test_backup_routes_refuse_on_postgres(sb):
    # Logged in first: the login itself writes (online, a notify row).
    tok = sb.admin_token()
    before = snapshot(sb)
    for method, path, body in (
            ("POST", "/protected/admin/backup", {"backup_name": "x"}),
            ("GET", "/protected/admin/backup/status/b1", None),
            ("GET", "/protected/admin/backups", None),
            ("GET", "/protected/admin/backup/download/b1", None),
            ("DELETE", "/protected/admin/backup/b1", None),
            ("POST", "/protected/admin/backup/restore/b1", None)):
        expect(sb.req(method, path, token=tok, json=body), 501,
               {"error": "backups of a PostgreSQL database are taken with "
                         "pg_dump", "success": False})
    assert snapshot(sb) == before


@sqlite_only
def test_backup_routes(sb):
    tok = sb.admin_token()
    bid = create(sb, name="nightly")
    st = expect(sb.req("GET", f"/protected/admin/backup/status/{bid}",
                       token=tok), 200)
    assert list(st) == ["status", "success"]
    assert st["status"]["id"] == bid
    assert st["status"]["status"] == "completed"

    lst = expect(sb.req("GET", "/protected/admin/backups", token=tok), 200)
    assert list(lst) == ["backups", "count", "success"]
    assert lst["count"] == len(lst["backups"])
    (b,) = [x for x in lst["backups"] if x["id"] == bid]
    assert list(b) == ["id", "name", "created_at", "size", "path", "status",
                       "components", "description"]
    assert b["name"] == "nightly" and b["status"] == "completed"
    assert b["components"] is None and b["size"] > 0

    r = sb.req("GET", f"/protected/admin/backup/download/{bid}", token=tok)
    assert r.status_code == 200
    assert r.content.startswith(b"SQLite format 3\0")
    assert len(r.content) == b["size"]
    assert bid in r.headers["Content-Disposition"]
    # The download is a whole database: it opens and holds the users.
    path = sb.workdir / "downloaded.sqlite3"
    path.write_bytes(r.content)
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    assert con.execute("SELECT count(*) FROM users").fetchone()[0] >= 1
    con.close()

    actor, target, details = audit(sb, "backup.create")[-1]
    assert target == f"backup:{bid}"
    assert json.loads(details)["status"] == "completed"

    expect(sb.req("DELETE", f"/protected/admin/backup/{bid}", token=tok),
           200, {"message": "Backup deleted successfully", "success": True})
    assert audit(sb, "backup.delete")[-1][1] == f"backup:{bid}"
    assert not [x for x in expect(sb.req("GET", "/protected/admin/backups",
                                         token=tok), 200)["backups"]
                if x["id"] == bid]
    before = snapshot(sb)
    for method, path in [
            ("GET", f"/protected/admin/backup/status/{bid}"),
            ("GET", f"/protected/admin/backup/download/{bid}"),
            ("DELETE", f"/protected/admin/backup/{bid}"),
            ("POST", f"/protected/admin/backup/restore/{bid}"),
            ("GET", "/protected/admin/backup/status/backup_1.x"),
            ("GET", "/protected/admin/backup/download/BACKUP")]:
        expect(sb.req(method, path, token=tok), 404, NOT_FOUND)
    expect(sb.req("POST", "/protected/admin/backup", token=tok,
                  json={"include_database": "yes"}), 400,
           {"error": "Invalid request format", "field": "include_database",
            "success": False})
    assert snapshot(sb) == before


def writer(s, stop, counter):
    """Calls written one after the other, each its own transaction."""
    con = sqlite3.connect(s.db_path, timeout=30)
    while not stop.is_set():
        con.execute("INSERT INTO call_logs (caller_id, callee_id, "
                    "start_time, status, channel, direction, created_at) "
                    "VALUES (1, 1, '2026-10-01T00:00:00.000000Z', 'ended', "
                    "'webrtc-call-w', 'outbound', "
                    "'2026-10-01T00:00:00.000000Z')")
        con.commit()
        counter[0] += 1
        # A writer that never lets go would starve every other one
        # (SQLite's lock has no queue); calls come a few a millisecond.
        time.sleep(0.001)
    con.close()


@sqlite_only
def test_backup_during_writes_then_restore(start):
    s = start()
    tok = s.admin_token()
    u = s.make_user()
    stop, counter = threading.Event(), [0]
    t = threading.Thread(target=writer, args=(s, stop, counter))
    t.start()
    try:
        # A writer that died (its error is on stderr) would leave this
        # waiting forever: fail instead.
        deadline = time.monotonic() + 60
        while counter[0] < 200:
            assert t.is_alive(), f"the writer stopped after {counter[0]}"
            assert time.monotonic() < deadline, (
                f"the writer wrote {counter[0]} calls in 60 s")
            time.sleep(0.01)
        bid = create(s)
        time.sleep(0.2)
    finally:
        stop.set()
        t.join()
    path = expect(s.req("GET", "/protected/admin/backups", token=tok),
                  200)["backups"][0]["path"]
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    in_backup = con.execute("SELECT count(*) FROM call_logs").fetchone()[0]
    con.close()
    total = s.sql("SELECT count(*) FROM call_logs")[0][0]
    assert 200 <= in_backup < total  # writes went on during and after it

    # After the backup: a user, more calls, a user's tokens revoked (a
    # role change) and a new one issued; a browser connected.
    later = s.make_user()
    old_token = u["token"]
    expect(s.req("PUT", f"/protected/admin/users/{u['id']}", token=tok,
                 json={"role": "admin"}), 200)
    assert s.req("GET", "/protected/profile",
                 token=old_token).status_code == 401
    u["token"] = s.login(u["username"], u["password"])
    epoch = s.sql("SELECT epoch FROM notify_stream")[0][0]
    with connect_user(s, u) as c:
        r = s.req("POST", f"/protected/admin/backup/restore/{bid}", token=tok)
        data = expect(r, 200)
        assert list(data) == ["message", "restore_id", "status", "success"]
        assert data["restore_id"] == f"restore_{bid}"
        assert data["status"]["status"] == "completed"
        pre = data["status"]["pre_restore_backup"]
        # The browser is told to resync, with the new epoch.
        m = c.wait_type("resync_required")
        assert m["epoch"] != epoch
    assert s.sql("SELECT count(*) FROM call_logs")[0][0] == in_backup
    assert not s.sql("SELECT 1 FROM users WHERE id = ?", (later["id"],))
    assert s.sql("SELECT epoch FROM notify_stream")[0][0] == m["epoch"]
    # Every program goes on serving the restored data.
    tok = s.admin_token()
    expect(s.req("GET", "/protected/profile", token=u["token"]), 200)
    assert s.req("GET", "/protected/profile",
                 token=later["token"]).status_code == 401
    # A token revoked before the restore stays revoked after it, though
    # the restored database predates the revocation.
    assert s.req("GET", "/protected/profile",
                 token=old_token).status_code == 401
    # An account made now may get the id of the one the restore took
    # away: the old account's token does not open it.
    again = s.make_user()
    assert again["id"] == later["id"]
    assert s.req("GET", "/protected/profile",
                 token=later["token"]).status_code == 401
    expect(s.req("GET", "/protected/profile", token=again["token"]), 200)
    st = expect(s.req("GET", "/protected/admin/stats", token=tok),
                200)["stats"]
    assert st["total_users"] == s.sql("SELECT count(*) FROM users")[0][0]
    # The database it replaced was kept, listed, and restores in turn.
    ids = [b["id"] for b in expect(s.req("GET", "/protected/admin/backups",
                                         token=tok), 200)["backups"]]
    assert bid in ids and pre in ids
    actor, target, details = audit(s, "backup.restore")[-1]
    assert target == f"backup:{bid}"
    assert json.loads(details) == {"backup": bid,
                                   "pre_restore_backup": pre}
    expect(s.req("POST", f"/protected/admin/backup/restore/{pre}",
                 token=tok), 200)
    assert s.sql("SELECT count(*) FROM call_logs")[0][0] == total
    assert s.sql("SELECT 1 FROM users WHERE id = ?", (later["id"],))


@sqlite_only
def test_cli_backup(start):
    s = start()
    r = s.cli("backup", "create", "--name", "from-cron")
    assert r.returncode == 0, s.log_text("cli")[-500:]
    bid, size, path = r.stdout.strip().split("\t")
    assert int(size) > 0
    u = s.make_user()
    r = s.cli("backup", "list")
    assert r.returncode == 0
    assert any(line.startswith(bid + "\tcompleted\t")
               and line.endswith("\tfrom-cron")
               for line in r.stdout.splitlines())
    r = s.cli("backup", "restore", bid)
    assert r.returncode == 0, s.log_text("cli")[-500:]
    assert r.stdout.startswith(f"restored {bid}")
    assert not s.sql("SELECT 1 FROM users WHERE id = ?", (u["id"],))
    actor, target, _ = audit(s, "backup.restore")[-1]
    assert actor is None and target == f"backup:{bid}"
    r = s.cli("backup", "restore", "backup_0")
    assert r.returncode != 0
    assert "Backup not found" in s.log_text("cli")
    assert s.cli("backup", "frobnicate").returncode != 0


@sqlite_only
def test_restore_while_relay_down(start):
    """A restore made while the relay is down: the browser that comes back
    with the old epoch is told to resync, not replayed."""
    s = start()
    u = s.make_user()
    bid = create(s)
    with connect_user(s, u) as c:
        epoch, seq = c.epoch, c.welcome_seq
    s.relay_kill()
    expect(s.req("POST", f"/protected/admin/backup/restore/{bid}",
                 token=s.admin_token()), 200)
    s.relay_start()
    with connect_user(s, u, since=seq, epoch=epoch) as c:
        m = c.wait_type("resync_required")
        assert m["epoch"] != epoch and m["epoch"] == c.epoch
