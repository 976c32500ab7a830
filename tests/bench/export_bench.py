"""The call-log export benchmark: 1,000,000 rows to CSV by `switchboard cdr
export`, beside `sqlite3 -csv` running the same query on the same file in
the same run. Seconds (best of three) and peak memory (the process's
VmHWM). Part of make bench (bench.py section 5); alone:

    /usr/bin/python3 tests/bench/export_bench.py --build build/rel
"""

import argparse
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from harness import CONFIG_VARS, REPO  # noqa: E402

TARGETS = {"export_s": 1.5, "export_mib": 32.0}
ROWS = 1000000
ZONE = "Europe/Berlin"

# What the export reads, as one query: sqlite3 runs it as it stands.
QUERY = ("SELECT l.id, cu.username, cu.extension, ce.username, "
         "ce.extension, l.start_time, l.end_time, l.duration, l.status, "
         "l.direction, l.channel FROM call_logs l "
         "LEFT JOIN users cu ON cu.id = l.caller_id "
         "LEFT JOIN users ce ON ce.id = l.callee_id ORDER BY l.id DESC")


def env_for(work):
    e = {k: v for k, v in os.environ.items() if k not in CONFIG_VARS}
    e.update({"DB_PATH": str(work / "export.db"),
              "RUN_DIR": str(work / "run"),
              "JWT_SECRET": secrets.token_hex(32),
              "ENV_FILE": str(work / ".env")})
    return e


def seed(db, rows, users=50):
    con = sqlite3.connect(db)
    con.execute("PRAGMA synchronous=OFF")
    ids = []
    for i in range(users):
        cur = con.execute(
            "INSERT INTO users (username, email, password, extension, "
            "created_at, updated_at) VALUES (?, ?, 'x', ?, "
            "'2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z') "
            "RETURNING id",
            (f"agent {i:02d}, team {i % 5}", f"agent{i}@example.test",
             str(2000 + i)))
        ids.append(cur.fetchone()[0])
    t0 = 1767225600  # 2026-01-01T00:00:00Z, a call every 20 s

    def gen():
        for i in range(rows):
            t = t0 + i * 20
            start = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))
            end = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t + 95))
            yield (ids[i % users], ids[(i * 7 + 1) % users],
                   f"{start}.{i % 1000000:06d}Z", f"{end}.000000Z", 95,
                   "ended" if i % 4 else "missed",
                   f"webrtc-call-{t}-{i:08x}", f"{start}.{i % 1000000:06d}Z")

    con.executemany(
        "INSERT INTO call_logs (caller_id, callee_id, start_time, end_time, "
        "duration, status, channel, direction, created_at) VALUES "
        "(?, ?, ?, ?, ?, ?, ?, 'outbound', ?)", gen())
    con.commit()
    con.close()


def hwm_kib(pid):
    """The process's peak RSS so far (VmHWM), None once it has exited."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def timed(argv, env, out):
    """Seconds and peak RSS (KiB) of one run writing to out. The peak is
    VmHWM read while it runs: ru_maxrss would report this script's own
    size, which a forked child keeps across exec."""
    peak = 0
    with open(out, "wb") as f:
        t = time.monotonic()
        p = subprocess.Popen(argv, env=env, stdout=f,
                             stderr=subprocess.PIPE)
        while p.poll() is None:
            k = hwm_kib(p.pid)
            if k is not None:
                peak = max(peak, k)
            time.sleep(0.002)
        secs = time.monotonic() - t
        err = p.stderr.read().decode(errors="replace")
        p.stderr.close()
    if p.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {p.returncode}: {err[-500:]}")
    return secs, peak


def best(argv, env, out, runs=3):
    got = [timed(argv, env, out) for _ in range(runs)]
    return min(s for s, _ in got), max(k for _, k in got)


def run(build, work, rows=ROWS, say=print):
    sb = str(build / "bin" / "switchboard")
    sqlite = shutil.which("sqlite3")
    env = env_for(work)
    r = subprocess.run([sb, "init"], env=env, cwd=work,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       text=True)
    if r.returncode != 0:
        raise RuntimeError(f"switchboard init: {r.stderr[-500:]}")
    t = time.monotonic()
    seed(work / "export.db", rows)
    say(f"   {rows} call_logs rows written in {time.monotonic() - t:.1f} s "
        f"({(work / 'export.db').stat().st_size / 2**20:.0f} MiB database)")
    ours = best([sb, "cdr", "export", "--format", "csv", "--tz", ZONE,
                 "--output", "-"], env, work / "ours.csv")
    with open(work / "ours.csv", "rb") as f:
        lines = sum(1 for _ in f) - 1
    if lines != rows:
        raise RuntimeError(f"export wrote {lines} rows, not {rows}")
    theirs = None
    if sqlite:
        theirs = best([sqlite, "-csv", "-header", str(work / "export.db"),
                       QUERY], env, work / "sqlite.csv")
    res = {"rows": rows, "s": ours[0], "kib": ours[1],
           "bytes": (work / "ours.csv").stat().st_size,
           "sqlite_s": theirs[0] if theirs else None,
           "sqlite_kib": theirs[1] if theirs else None}
    say(f"   switchboard cdr export (CSV, {ZONE}): {res['s']:.2f} s, peak "
        f"{res['kib'] / 1024:.1f} MiB, {res['bytes'] / 2**20:.0f} MiB out "
        f"(targets <= {TARGETS['export_s']} s, < "
        f"{TARGETS['export_mib']:.0f} MiB)")
    if theirs:
        say(f"   sqlite3 -csv, same query:          {theirs[0]:.2f} s, peak "
            f"{theirs[1] / 1024:.1f} MiB (times as stored, no zone)")
    return res


def summary_rows(res):
    rows = [("1M-row CSV export", f"{res['s']:.2f} s",
             f"<= {TARGETS['export_s']} s", res["s"] <= TARGETS["export_s"]),
            ("1M-row CSV export peak memory",
             f"{res['kib'] / 1024:.1f} MiB",
             f"< {TARGETS['export_mib']:.0f} MiB",
             res["kib"] / 1024 < TARGETS["export_mib"])]
    if res["sqlite_s"] is not None:
        rows.append(("export / sqlite3 -csv time",
                     f"{res['s'] / res['sqlite_s']:.2f}x", "<= 1.00x",
                     res["s"] <= res["sqlite_s"]))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build/rel")
    ap.add_argument("--rows", type=int, default=ROWS)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sb-export-"))
    try:
        res = run((REPO / args.build).resolve(), work, args.rows)
        for name, got, tgt, met in summary_rows(res):
            print(f"   {name:<34} {got:>12}   target {tgt:<10} "
                  f"{'met' if met else 'missed'}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
