"""Call-log deletes with their audit rows, and the CSV/JSON export."""

import csv
import io
import json
import secrets

import pytest

from harness import expect, snapshot

EXPORT = "/protected/admin/export/call-logs"
HEADER = ["ID", "Caller", "Caller Extension", "Callee", "Callee Extension",
          "Start Time", "End Time", "Duration", "Status", "Direction",
          "Channel"]


def add_user(sb, username, ext=None):
    ext = ext or sb.free_extension()
    return sb.sql(
        "INSERT INTO users (username, email, password, extension, "
        "created_at, updated_at) VALUES (?, ?, ?, ?, "
        "'2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z') "
        "RETURNING id", (username, f"{secrets.token_hex(6)}@example.test",
                         # No login: a password field no log can hold.
                         "!" + secrets.token_hex(16), ext))[0][0], ext


def add_log(sb, caller, callee, created, status="ended", duration=60,
            channel=None, direction="outbound"):
    return sb.sql(
        "INSERT INTO call_logs (caller_id, callee_id, start_time, end_time, "
        "duration, status, channel, direction, created_at) VALUES "
        "(?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (caller, callee, created, created, duration, status,
         channel or f"webrtc-call-{secrets.token_hex(6)}", direction,
         created))[0][0]


def audit_last(sb, action):
    rows = sb.sql("SELECT actor_id, target, details FROM audit_log "
                  "WHERE action = ? ORDER BY id DESC LIMIT 1", (action,))
    assert rows, f"no audit row {action}"
    actor, target, details = rows[0]
    return actor, target, json.loads(details) if details else None


def admin_id(sb):
    return sb.sql("SELECT id FROM users WHERE username = ?",
                  (sb.admin_username,))[0][0]


def count(sb, where="1=1", params=()):
    return sb.sql(f"SELECT count(*) FROM call_logs WHERE {where}",
                  params)[0][0]


# ---- deletes

def test_delete_one(sb):
    tok = sb.admin_token()
    a, _ = add_user(sb, "del" + secrets.token_hex(3))
    lid = add_log(sb, a, a, "2026-05-01T10:00:00.000000Z")
    expect(sb.req("DELETE", f"/protected/admin/call-logs/{lid}", token=tok),
           200, {"message": "Call log deleted successfully",
                 "success": True})
    assert count(sb, "id = ?", (lid,)) == 0
    actor, target, details = audit_last(sb, "call_logs.delete")
    assert actor == admin_id(sb) and target == "call_logs"
    assert details == {"id": lid, "deleted": 1}
    before = snapshot(sb)
    expect(sb.req("DELETE", f"/protected/admin/call-logs/{lid}", token=tok),
           404, {"error": "Call log not found"})
    expect(sb.req("DELETE", "/protected/admin/call-logs/abc", token=tok),
           400, {"error": "Invalid log ID", "field": "id"})
    assert snapshot(sb) == before


def test_bulk_delete(sb):
    tok = sb.admin_token()
    a, _ = add_user(sb, "bulk" + secrets.token_hex(3))
    ids = [add_log(sb, a, a, "2026-05-02T10:00:00.000000Z")
           for _ in range(3)]
    keep = add_log(sb, a, a, "2026-05-02T10:00:00.000000Z")
    before = snapshot(sb)
    for body in ({}, {"log_ids": []}, {"log_ids": None}):
        expect(sb.req("DELETE", "/protected/admin/call-logs/bulk-delete",
                      token=tok, json=body), 400,
               {"error": "No log IDs provided", "field": "log_ids"})
    for bad in (["x"], [ids[0], -1], [1.5], "1,2"):
        expect(sb.req("DELETE", "/protected/admin/call-logs/bulk-delete",
                      token=tok, json={"log_ids": bad}), 400,
               {"error": "Invalid request format", "field": "log_ids"})
    assert snapshot(sb) == before
    r = sb.req("DELETE", "/protected/admin/call-logs/bulk-delete", token=tok,
               json={"log_ids": ids + [999999999]})
    expect(r, 200, {"deleted_count": 3,
                    "message": "Successfully deleted 3 call logs",
                    "success": True})
    assert count(sb, f"id IN ({','.join(map(str, ids))})") == 0
    assert count(sb, "id = ?", (keep,)) == 1
    _, _, details = audit_last(sb, "call_logs.bulk_delete")
    assert details == {"log_ids": ids, "deleted": 3}


def test_clear_all(start):
    s = start()
    tok = s.admin_token()
    a, _ = add_user(s, "clear")
    for _ in range(4):
        add_log(s, a, a, "2026-05-03T10:00:00.000000Z")
    for q in ("", "?confirm=false", "?confirm=yes"):
        expect(s.req("DELETE", "/protected/admin/call-logs/clear-all" + q,
                     token=tok), 400,
               {"error": "Confirmation required: add ?confirm=true",
                "field": "confirm"})
    assert count(s) == 4
    r = s.req("DELETE", "/protected/admin/call-logs/clear-all?confirm=true",
              token=tok)
    expect(r, 200, {"deleted_count": 4, "message": "Successfully cleared all "
                    "call logs (4 logs deleted)", "success": True})
    assert count(s) == 0
    actor, _, details = audit_last(s, "call_logs.clear_all")
    assert actor == admin_id(s) and details == {"all": True, "deleted": 4}


def test_bulk_delete_filter(sb):
    tok = sb.admin_token()
    status = "st" + secrets.token_hex(4)  # rows of this test only
    a, _ = add_user(sb, "flt" + secrets.token_hex(3))
    old = add_log(sb, a, a, "2020-01-01T10:00:00.000000Z", status=status)
    new = add_log(sb, a, a, "2026-05-04T10:00:00.000000Z", status=status)
    path = "/protected/admin/call-logs/bulk-delete-filter"
    before = snapshot(sb)
    expect(sb.req("DELETE", path, token=tok, json={}), 400,
           {"error": "At least one filter is required"})
    expect(sb.req("DELETE", path, token=tok,
                  json={"status": status, "older_than": "abc"}), 400,
           {"error": "Invalid request format", "field": "older_than"})
    expect(sb.req("DELETE", path, token=tok,
                  json={"status": status, "date_from": "2026-02-30"}), 400,
           {"error": "Invalid date format. Use YYYY-MM-DD",
            "field": "date_from"})
    expect(sb.req("DELETE", path, token=tok,
                  json={"status": status, "caller_id": "x"}), 400,
           {"error": "Invalid request format", "field": "caller_id"})
    assert snapshot(sb) == before
    # Nothing that old with this status in 2019.
    expect(sb.req("DELETE", path, token=tok,
                  json={"status": status, "date_to": "2019-12-31"}), 200,
           {"deleted_count": 0,
            "message": "No call logs match the specified filters",
            "success": True})
    # older_than as the frontend sends it: a string of days.
    r = sb.req("DELETE", path, token=tok,
               json={"status": status, "older_than": "365"})
    expect(r, 200, {"deleted_count": 1,
                    "message": "Successfully deleted 1 call logs",
                    "success": True})
    assert count(sb, "id = ?", (old,)) == 0
    assert count(sb, "id = ?", (new,)) == 1
    _, _, details = audit_last(sb, "call_logs.filter_delete")
    assert details == {"filter": {"older_than": 365, "status": status},
                       "deleted": 1}
    # A date range and the caller, as a number.
    r = sb.req("DELETE", path, token=tok,
               json={"date_from": "2026-05-04", "date_to": "2026-05-04",
                     "caller_id": a})
    assert expect(r, 200)["deleted_count"] == 1
    assert count(sb, "id = ?", (new,)) == 0


# ---- export

def export(sb, query, headers=None):
    r = sb.req("GET", EXPORT + query, token=sb.admin_token(),
               headers=headers)
    assert r.status_code == 200, r.text
    return r


def test_csv_quoting_and_formulas(sb):
    """Names with commas, quotes and newlines come back intact from a real
    CSV parser; cells a spreadsheet would run as formulas are text."""
    tricky = 'Smith, "Jo"\nline2 ' + secrets.token_hex(2)
    formula = "=HYPERLINK(\"x\")" + secrets.token_hex(2)
    a, ea = add_user(sb, tricky)
    b, eb = add_user(sb, formula)
    lid = add_log(sb, a, b, "2026-06-01T12:00:00.123456Z",
                  status="ended", channel="-chan,1")
    r = export(sb, f"?format=csv&extension={ea}")
    assert r.headers["Content-Type"].startswith("text/csv")
    assert r.headers["Content-Disposition"] == (
        "attachment; filename=call-logs.csv")
    assert "\r\n" in r.text  # RFC 4180 line ends
    rows = list(csv.reader(io.StringIO(r.text, newline="")))
    assert rows[0] == HEADER
    assert len(rows) == 2
    row = dict(zip(HEADER, rows[1]))
    assert row["ID"] == str(lid)
    assert row["Caller"] == tricky
    assert row["Caller Extension"] == ea
    assert row["Callee"] == "'" + formula
    assert row["Callee Extension"] == eb
    assert row["Start Time"] == "2026-06-01T12:00:00+00:00"
    assert row["Duration"] == "60"
    assert row["Status"] == "ended"
    assert row["Direction"] == "outbound"
    assert row["Channel"] == "'-chan,1"


def test_export_filters_and_order(sb):
    a, ea = add_user(sb, "ord" + secrets.token_hex(3))
    ids = [add_log(sb, a, a, f"2026-07-0{d}T12:00:00.000000Z",
                   status="ended" if d % 2 else "missed")
           for d in range(1, 6)]
    rows = list(csv.reader(io.StringIO(
        export(sb, f"?extension={ea}").text, newline="")))[1:]
    assert [int(r[0]) for r in rows] == ids[::-1]  # newest first
    rows = list(csv.reader(io.StringIO(
        export(sb, f"?extension={ea}&status=missed").text, newline="")))[1:]
    assert [int(r[0]) for r in rows] == [ids[3], ids[1]]
    q = f"?extension={ea}&date_from=2026-07-02&date_to=2026-07-03&tz=UTC"
    rows = list(csv.reader(io.StringIO(export(sb, q).text, newline="")))[1:]
    assert [int(r[0]) for r in rows] == [ids[2], ids[1]]
    # Accept: text/csv without ?format=.
    r = export(sb, f"?extension={ea}", headers={"Accept": "text/csv"})
    assert r.headers["Content-Type"].startswith("text/csv")


def test_json_export(sb):
    a, ea = add_user(sb, "js\u00e9" + secrets.token_hex(3))
    lid = add_log(sb, a, a, "2026-08-01T09:30:00.250000Z")
    r = export(sb, f"?format=json&extension={ea}&tz=Europe/Berlin")
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.headers["Content-Disposition"] == (
        "attachment; filename=call-logs.json")
    data = r.json()
    assert list(data) == ["call_logs", "exported_at", "success"]
    assert data["success"] is True
    assert data["exported_at"].endswith(("+01:00", "+02:00"))
    (log,) = data["call_logs"]
    assert list(log) == ["id", "caller_id", "callee_id", "caller", "callee",
                         "start_time", "end_time", "duration", "status",
                         "channel", "direction", "created_at"]
    assert log["id"] == lid
    assert log["start_time"] == "2026-08-01T11:30:00.250000+02:00"
    assert log["caller"]["username"].startswith("js\u00e9")
    assert list(log["caller"])[-2:] == ["updated_at", "online"]


def test_dst_boundary(sb):
    """America/New_York springs forward at 2026-03-08 07:00 UTC and falls
    back at 2026-11-01 06:00 UTC: the offset follows each time."""
    a, ea = add_user(sb, "dst" + secrets.token_hex(3))
    times = ["2026-03-08T06:59:59.000000Z", "2026-03-08T07:00:00.000000Z",
             "2026-11-01T05:30:00.000000Z", "2026-11-01T06:30:00.000000Z"]
    for t in times:
        add_log(sb, a, a, t)
    rows = list(csv.reader(io.StringIO(export(
        sb, f"?extension={ea}&tz=America/New_York").text, newline="")))[1:]
    got = [r[5] for r in rows[::-1]]
    assert got == ["2026-03-08T01:59:59-05:00", "2026-03-08T03:00:00-04:00",
                   "2026-11-01T01:30:00-04:00", "2026-11-01T01:30:00-05:00"]
    # A local day across the change is 23 hours long and holds both.
    q = (f"?extension={ea}&tz=America/New_York&date_from=2026-03-08"
         "&date_to=2026-03-08")
    rows = list(csv.reader(io.StringIO(export(sb, q).text, newline="")))[1:]
    assert len(rows) == 2


def test_export_bad_input(sb):
    tok = sb.admin_token()
    cases = [
        ("?format=xml", {"error": "Unsupported format. Use 'csv' or 'json'",
                         "field": "format"}),
        ("?tz=Mars/Olympus", {"error": "Invalid time zone", "field": "tz"}),
        ("?tz=../../etc/passwd", {"error": "Invalid time zone",
                                  "field": "tz"}),
        ("?date_from=2026-13-01", {"error": "Invalid date format. Use "
                                   "YYYY-MM-DD", "field": "date_from"}),
        ("?date_to=yesterday", {"error": "Invalid date format. Use "
                                "YYYY-MM-DD", "field": "date_to"}),
        ("?extension=12a", {"error": "Invalid request format",
                            "field": "extension"}),
    ]
    for q, body in cases:
        expect(sb.req("GET", EXPORT + q, token=tok), 400, body)


def worker_hwm_kib(sb):
    """The largest peak RSS among the admin program's workers."""
    out = 0
    for pid in sb.workers("admin"):
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                out = max(out, int(line.split()[1]))
    return out


def test_large_export_memory_is_flat(start):
    """10,000 then 100,000 rows: a worker that held the export in memory
    would grow by the size of the body (about 20 MB more); a streaming
    one does not grow with the table."""
    # The sanitizer keeps freed blocks in a quarantine (256 MB by default)
    # that would count as growth: each page's result is freed on
    # PostgreSQL, where SQLite reuses its own cache.
    s = start(env={"ASAN_OPTIONS": "abort_on_error=1:detect_leaks=1:"
                                   "quarantine_size_mb=4"})
    a, ea = add_user(s, "big-" + "x" * 60)
    b, eb = add_user(s, "big-peer-" + "y" * 60)

    def fill(n):
        # One statement either engine runs server-side: 100,000 rows one
        # by one would be as many round trips on PostgreSQL.
        s.sql(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
            "WHERE i < ?) "
            "INSERT INTO call_logs (caller_id, callee_id, start_time, "
            "end_time, duration, status, channel, direction, created_at) "
            "SELECT ?, ?, '2026-09-01T10:00:00.000000Z', "
            "'2026-09-01T10:01:00.000000Z', 60, 'ended', "
            "'webrtc-call-' || (100000000000 + i) || '-' || ?, 'outbound', "
            "'2026-09-01T10:00:00.000000Z' FROM n", (n, a, b, "z" * 40))

    def run():
        r = s.req("GET", EXPORT + "?format=csv", token=s.admin_token())
        assert r.status_code == 200
        return r.content.count(b"\r\n") - 1, len(r.content)

    fill(10000)
    assert run()[0] == 10000
    small = worker_hwm_kib(s)
    fill(90000)
    rows, size = run()
    assert rows == 100000 and size > 20 * 1024 * 1024
    big = worker_hwm_kib(s)
    assert big - small < 6 * 1024, (small, big, size)
