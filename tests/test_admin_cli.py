"""switchboard cdr export: the cron export, with a watermark so each run
exports each settled record exactly once."""

import csv
import io
import json
from datetime import datetime, timezone

from harness import expect

HEADER = ["ID", "Caller", "Caller Extension", "Callee", "Callee Extension",
          "Start Time", "End Time", "Duration", "Status", "Direction",
          "Channel"]


def add_log(s, a, b, created, ended=True, status="ended"):
    return s.sql(
        "INSERT INTO call_logs (caller_id, callee_id, start_time, end_time, "
        "duration, status, channel, direction, created_at) VALUES "
        "(?, ?, ?, ?, 30, ?, 'webrtc-call-cli', 'outbound', ?) RETURNING id",
        (a, b, created, created if ended else None, status, created))[0][0]


def read_csv(path):
    rows = list(csv.reader(io.StringIO(path.read_text(), newline="")))
    assert rows[0] == HEADER
    return rows[1:]


def test_watermark_exports_each_record_once(start):
    s = start()
    a, b = s.make_user(), s.make_user()
    out, wm = s.workdir / "cdr.csv", s.workdir / "cdr.watermark"
    first = [add_log(s, a["id"], b["id"], f"2026-04-0{i}T10:00:00.000000Z")
             for i in range(1, 4)]
    # A call still ringing now, and one after it that ended: both wait
    # until the ringing one is over, so that each goes out complete.
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    ringing = add_log(s, a["id"], b["id"], now, ended=False,
                      status="initiated")
    after = add_log(s, a["id"], b["id"], "2026-04-05T10:00:00.000000Z")

    args = ["cdr", "export", "--format", "csv", "--output", str(out),
            "--watermark", str(wm), "--tz", "UTC"]
    r = s.cli(*args)
    assert r.returncode == 0, s.log_text("cli")[-500:]
    rows = read_csv(out)
    assert [int(x[0]) for x in rows] == first  # oldest first
    assert rows[0][1] == a["username"] and rows[0][5].endswith("+00:00")
    assert wm.read_text().strip() == str(first[-1])

    # Run twice: nothing new, nothing exported.
    r = s.cli(*args)
    assert r.returncode == 0
    assert read_csv(out) == []
    assert wm.read_text().strip() == str(first[-1])

    # The ringing call ends: it and the one after it go out, once.
    s.sql("UPDATE call_logs SET end_time = start_time, status = 'missed' "
          "WHERE id = ?", (ringing,))
    r = s.cli(*args)
    assert r.returncode == 0
    assert [int(x[0]) for x in read_csv(out)] == [ringing, after]
    r = s.cli(*args)
    assert read_csv(out) == []
    assert not list(s.workdir.glob("cdr.csv.tmp*"))


def test_range_json_and_stdout(start):
    s = start()
    a, b = s.make_user(), s.make_user()
    ids = [add_log(s, a["id"], b["id"], t) for t in (
        "2026-03-07T12:00:00.000000Z", "2026-03-08T12:00:00.000000Z",
        "2026-03-09T12:00:00.000000Z")]
    r = s.cli("cdr", "export", "--format", "json", "--since", "2026-03-08",
              "--until", "2026-03-08", "--tz", "America/New_York")
    assert r.returncode == 0, s.log_text("cli")[-500:]
    data = json.loads(r.stdout)
    assert list(data) == ["call_logs", "exported_at", "success"]
    assert [x["id"] for x in data["call_logs"]] == [ids[1]]
    assert data["call_logs"][0]["created_at"] == (
        "2026-03-08T08:00:00.000000-04:00")


def test_failures_exit_non_zero(start):
    s = start()
    for args in (["cdr", "export", "--tz", "Nowhere/Else"],
                 ["cdr", "export", "--format", "xml"],
                 ["cdr", "export", "--since", "soon"],
                 ["cdr", "export", "--output",
                  str(s.workdir / "no" / "such" / "dir.csv")],
                 ["cdr", "frobnicate"]):
        r = s.cli(*args)
        assert r.returncode != 0, args
    bad = s.workdir / "bad.watermark"
    bad.write_text("not a number\n")
    r = s.cli("cdr", "export", "--watermark", str(bad), "--output",
              str(s.workdir / "x.csv"))
    assert r.returncode != 0
    assert "watermark" in s.log_text("cli")
    assert not (s.workdir / "x.csv").exists()
    expect(s.req("GET", "/protected/admin/stats", token=s.admin_token()),
           200)
