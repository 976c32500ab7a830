"""Benchmarks for a release build: REST throughput through nginx, WebSocket
fanout, signalling round trips. Figures only; run by tests/bench/run.sh.

    /usr/bin/python3 tests/bench/bench.py --build build/rel

Everything runs on 127.0.0.1 inside a temporary directory: a system
started by the test harness, plus a second nginx on its own port whose
config is the harness's with bench-only locations (nginx's own `return
200`, a trivial FastCGI program), `reuseport` (so 10,000 sockets spread
over the workers' file limits) and without the login rate limit (the
figure is the login program's, not limit_req's).
"""

import argparse
import json
import os
import queue
import re
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


import requests  # noqa: E402

from harness import (NGINX, REPO, SPAWN_FCGI, free_port,  # noqa: E402
    make_token, pg_cluster_stop, start_system, token_parts)
from wsclient import ctl  # noqa: E402

import export_bench  # noqa: E402
import amilat  # noqa: E402

TARGETS = {
    "profile_vs_trivial": 0.60,
    "call_logs_vs_trivial": 0.40,
    "profile_p99_ms": 5.0,
    "fan_last_ms": {1000: 20.0, 10000: 200.0},
    "rss_per_conn_kib": 8.0,
    "rtt_p99_ms": 5.0,
    "ami_events_per_s": 1_000_000,
    "ami_event_p99_ms": 10.0,
}


def say(*a):
    print(*a, flush=True)


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def wait_until(fn, timeout, what, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(step)
    raise RuntimeError(f"{what}: not within {timeout} s")


# -- processes -----------------------------------------------------------------

class Procs:
    """Processes this script started, each in its own group."""

    def __init__(self):
        self.procs = []

    def start(self, argv, **kw):
        p = subprocess.Popen(argv, start_new_session=True, **kw)
        self.procs.append(p)
        return p

    def stop(self, p, sig=signal.SIGTERM, timeout=10):
        if p.poll() is None:
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()

    def stop_all(self):
        for p in reversed(self.procs):
            self.stop(p)


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_ticks(pid):
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])


def wait_idle(pid, timeout=60):
    """Until pid uses < 2% of a CPU over half a second."""
    hz = os.sysconf("SC_CLK_TCK")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        t0 = cpu_ticks(pid)
        time.sleep(0.5)
        if (cpu_ticks(pid) - t0) / hz < 0.01:
            return True
    return False


# -- the bench nginx -------------------------------------------------------------

def bench_nginx_conf(system, port):
    """The harness's config, moved to port, with the bench locations."""
    run = str(system.run_dir)
    text = (system.run_dir / "nginx.conf").read_text()
    text, n = re.subn(r"(?m)^(\s*)listen\s+\S+;",
        rf"\1listen 127.0.0.1:{port} reuseport backlog=4096;", text)
    assert n == 1, "nginx.conf: expected one listen line"
    text = re.sub(r"(?m)^pid\s+\S+;", f"pid {run}/nginx-bench.pid;", text)
    text = text.replace(f"{run}/nginx/", f"{run}/nginx-bench/")
    text = re.sub(r"(?m)^(\s*)access_log\s+\S+", rf"\1access_log "
        rf"{run}/log/nginx-bench-access.log", text)
    # The login figure is the program's; limit_req would answer 429.
    text = re.sub(r"(?m)^\s*limit_req\s+zone=.*;\n", "", text)
    extra = (
        "\t\tlocation = /bench/nginx {\n"
        "\t\t\tdefault_type application/json;\n"
        "\t\t\treturn 200 '{\"status\":\"ok\",\"success\":true}\\n';\n"
        "\t\t}\n"
        "\t\tlocation = /bench/trivial {\n"
        f"\t\t\tfastcgi_pass unix:{run}/fcgi-trivial.sock;\n"
        "\t\t}\n")
    text, n = re.subn(r"(?m)^(\s*server_name\s+[^;]*;\n)",
        lambda m: m.group(1) + extra, text, count=1)
    assert n == 1, "nginx.conf: no server_name line"
    for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (system.run_dir / "nginx-bench" / d).mkdir(parents=True,
            exist_ok=True)
    path = system.run_dir / "nginx-bench.conf"
    path.write_text(text)
    return path


# -- wrk -------------------------------------------------------------------------

def wrk(base, path, duration, method="GET", body="", token=""):
    env = dict(os.environ, BENCH_METHOD=method, BENCH_BODY=body,
        BENCH_TOKEN=token)
    r = subprocess.run(["wrk", "-t2", "-c32", f"-d{duration}s", "--latency",
        "-s", str(HERE / "wrk.lua"), base + path], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=duration + 60)
    m = re.search(r"^BENCHJSON (.*)$", r.stdout, re.M)
    if r.returncode != 0 or not m:
        raise RuntimeError(f"wrk {path}: {r.returncode}\n{r.stdout}")
    j = json.loads(m.group(1))
    j["rps"] = j["requests"] / (j["duration_us"] / 1e6)
    return j


# -- users and tokens ----------------------------------------------------------

class Users:
    """
    Many users fast: rows inserted directly (they share one known
    password hash) and tokens signed as auth_token_issue signs them,
    checked once against REST; logins when that check fails.
    """

    def __init__(self, system, base, template):
        self.s = system
        self.base = base
        self.t = template  # a make_user() dict
        row = system.sql("SELECT password FROM users WHERE id = ?",
            (template["id"],))
        self.hash = row[0][0]
        _, self.claims = token_parts(template["token"])
        self.forge = True
        self.checked = False
        self.n = 0

    def make(self, count, prefix="b"):
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
        rows = []
        for _ in range(count):
            self.n += 1
            name = f"{prefix}{self.n}{secrets.token_hex(3)}"
            ext = str(700000 + secrets.randbelow(299999))
            rows.append((name, f"{name}@bench.test", self.hash, ext,
                now, now))
        out = []
        for r in rows:
            try:
                self.s.sql("INSERT INTO users (username, email, "
                    "password, extension, status, role, "
                    "created_at, updated_at, is_online) VALUES "
                    "(?, ?, ?, ?, 'offline', 'user', ?, ?, 0)", r)
            except Exception:
                continue  # extension drawn twice
            uid = self.s.sql("SELECT id FROM users WHERE username = ?",
                (r[0],))[0][0]
            out.append({"id": uid, "username": r[0], "extension": r[3]})
        for u in out:
            u["token"] = self.token(u)
        return out

    def token(self, u):
        if self.forge:
            now = int(time.time())
            c = dict(self.claims)
            c.update(user_id=u["id"], username=u["username"],
                extension=u["extension"], sub=u["username"],
                iat=now, nbf=now, exp=now + 6 * 3600,
                jti=secrets.token_hex(16), gen=0)
            tok = make_token(self.s.env["JWT_SECRET"], c)
            if self.checked:
                return tok
            r = requests.get(self.base + "/protected/profile",
                headers={"Authorization": "Bearer " + tok}, timeout=10)
            if r.status_code == 200:
                self.checked = True
                return tok
            say(f"  (signed tokens refused: {r.status_code}; "
                "logging in instead)")
            self.forge = False
        r = requests.post(self.base + "/api/login", json={
            "username": u["username"], "password": self.t["password"]},
            timeout=30)
        r.raise_for_status()
        return r.json()["token"]


# -- call history ----------------------------------------------------------------

CALL_LOGS_ROWS = 10000


def seed_call_logs(system, user, peers, n=CALL_LOGS_ROWS):
    """n ended calls of user's, half made and half received, one a minute
    apart, with peers on the other side; plus as many between the peers,
    which the list must skip."""
    t0 = time.time() - 2 * n * 60
    rows = []
    for i in range(2 * n):
        at = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z",
            time.gmtime(t0 + i * 60))
        p, q = peers[i % len(peers)], peers[(i + 1) % len(peers)]
        if i % 2:
            a, b = (user, p) if i % 4 == 1 else (p, user)
        else:
            a, b = p, q
        rows.append((a["id"], b["id"], at, at, f"webrtc-call-{i}-bench", at))
    system.sql_many("INSERT INTO call_logs (caller_id, callee_id, "
        "start_time, end_time, duration, status, channel, direction, "
        "created_at) VALUES (?, ?, ?, ?, 60, 'ended', ?, 'outbound', ?)",
        rows)
    return system.sql("SELECT count(*) FROM call_logs WHERE "
        "caller_id = ? OR callee_id = ?", (user["id"], user["id"]))[0][0]


# -- WebSocket fanout ------------------------------------------------------------

class Reader(threading.Thread):
    def __init__(self, p):
        super().__init__(daemon=True)
        self.p = p
        self.q = queue.Queue()

    def run(self):
        for line in self.p.stdout:
            self.q.put(line.strip())
        self.q.put(None)

    def expect(self, word, timeout):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                line = self.q.get(timeout=left)
            except queue.Empty:
                return None
            if line is None:
                return None
            if line.startswith(word + " "):
                return line.split()[1:]


def fanout(system, procs, wsfan, port, users, n, nproc=2):
    relay = system.relay_pid()
    trig = users.make(1, prefix="fantrig")[0]
    per_user = max(1, n // 200)
    people = users.make((n + per_user - 1) // per_user)
    tokens = []
    for u in people:
        tokens += [u["token"]] * per_user
    tokens = tokens[:n]
    wait_idle(relay, 20)
    rss0 = rss_kib(relay)
    t_connect = time.monotonic()
    kids, opened, failed = open_fan(procs, wsfan, port, trig, tokens, nproc)
    t_connect = time.monotonic() - t_connect
    who = ctl(system, {"op": "who"})
    wait_idle(relay, 60)
    rss1 = rss_kib(relay)

    sess = requests.Session()
    hdr = {"Authorization": "Bearer " + trig["token"]}
    url = f"http://127.0.0.1:{port}/protected/status"
    sess.get(f"http://127.0.0.1:{port}/health", timeout=10)
    t0 = time.monotonic_ns()
    r = sess.put(url, json={"status": "busy"}, headers=hdr, timeout=30)
    t_rest = time.monotonic_ns() - t0
    r.raise_for_status()
    res = []
    for p, rd in kids:
        got = rd.expect("RESULT", 30)
        if got is None:
            p.stdin.write("END\n")
            p.stdin.flush()
            got = rd.expect("RESULT", 10)
        res.append([int(x) for x in got] if got else [0] * 6)
    for p, _ in kids:
        try:
            p.stdin.close()
        except OSError:
            pass
    for p, _ in kids:
        procs.stop(p, timeout=30)
    got = sum(x[0] for x in res)
    first = min((x[1] for x in res if x[0]), default=0)
    last = max((x[4] for x in res if x[0]), default=0)
    # Let the relay see every close before the next run.
    try:
        wait_until(lambda: ctl(system, {"op": "who"})
            .get("total_clients", 0) <= 2, 120, "sockets closed")
    except RuntimeError:
        pass
    wait_idle(relay, 60)
    return {
        "n": n, "opened": opened, "failed": failed, "received": got,
        "relay_clients": who.get("total_clients"),
        "users": len(people), "per_user": per_user,
        "connect_s": t_connect,
        "rest_ms": t_rest / 1e6,
        "first_ms": (first - t0) / 1e6 if got else float("nan"),
        "last_ms": (last - t0) / 1e6 if got else float("nan"),
        "rss0_kib": rss0, "rss1_kib": rss1,
        "per_conn_kib": (rss1 - rss0) / max(1, opened),
    }


def rtt(system, procs, wsfan, port, count):
    a, b = system.make_user(), system.make_user()
    p = procs.start([wsfan, "rtt", "127.0.0.1", str(port), str(count)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    rd = Reader(p)
    rd.start()
    p.stdin.write("\n".join([a["token"], b["token"], a["extension"],
        b["extension"]]) + "\n")
    p.stdin.flush()
    if rd.expect("READY", 30) is None:
        raise RuntimeError("wsfan rtt: no READY")
    r = requests.post(f"http://127.0.0.1:{port}/protected/call/initiate"
        "?method=webrtc", json={"target_extension": b["extension"]},
        headers={"Authorization": "Bearer " + a["token"]}, timeout=30)
    r.raise_for_status()
    p.stdin.write(f"CALL {r.json()['call_id']}\n")
    p.stdin.flush()
    got = rd.expect("RTT", 300)
    procs.stop(p)
    if got is None:
        raise RuntimeError("wsfan rtt: no result")
    keys = ("n", "p50_us", "p90_us", "p99_us", "max_us", "mean_us")
    return dict(zip(keys, [int(got[0])] + [float(x) for x in got[1:]]))


def open_fan(procs, wsfan, port, trig, tokens, nproc=2):
    """wsfan fan processes holding sockets for tokens, once all are open:
    ([(p, reader)], sockets opened, sockets that failed)."""
    kids = []
    for i in range(nproc):
        p = procs.start([wsfan, "fan", "127.0.0.1", str(port),
            trig["username"]], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True)
        r = Reader(p)
        r.start()
        kids.append((p, r))
        p.stdin.write("\n".join(tokens[i::nproc]) + "\n\n")
        p.stdin.flush()
    opened = failed = 0
    for p, r in kids:
        got = r.expect("READY", 300)
        if got is None:
            raise RuntimeError("wsfan: no READY")
        opened += int(got[0])
        failed += int(got[1])
    return kids, opened, failed


def close_fan(system, procs, kids):
    for p, _ in kids:
        try:
            p.stdin.write("END\n")
            p.stdin.close()
        except OSError:
            pass
    for p, _ in kids:
        procs.stop(p, timeout=30)
    try:
        wait_until(lambda: ctl(system, {"op": "who"})
            .get("total_clients", 0) <= 2, 120, "sockets closed")
    except RuntimeError:
        pass


def insert_rows(system, count, tag):
    """count events for everyone, written in one transaction (ids given:
    the programs draw them from notify_stream, see lib/notify.c)."""
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    system.sql_many("INSERT INTO notify (id, created_at, target_kind, "
        "target_value, payload) VALUES ((SELECT COALESCE(max(id), 0) + 1 "
        "FROM notify), ?, 'all', '', ?)",
        [(now, json.dumps({"type": "bench", "tag": tag, "i": i}))
         for i in range(count)])
    return system.sql("SELECT max(id) FROM notify")[0][0]


def stream_rate(system, procs, wsfan, port, users, n=1000, rows=500):
    """Rows of the stream delivered per second to n sockets: rows written
    at once, timed until the relay has written every frame."""
    trig = users.make(1, prefix="ratetrig")[0]
    people = users.make(n // 5)
    tokens = [u["token"] for u in people for _ in range(5)][:n]
    kids, opened, _ = open_fan(procs, wsfan, port, trig, tokens)
    relay = system.relay_pid()
    wait_idle(relay, 30)
    w0 = ctl(system, {"op": "stats"})["written"]
    t0 = time.monotonic()
    insert_rows(system, rows, "rate")
    ctl(system, {"op": "kick"})
    want = w0 + rows * opened
    wait_until(lambda: ctl(system, {"op": "stats"})["written"] >= want,
        120, "stream delivered", step=0.005)
    dt = time.monotonic() - t0
    close_fan(system, procs, kids)
    return {"n": opened, "rows": rows, "s": dt, "rows_per_s": rows / dt,
            "frames_per_s": rows * opened / dt}


def stream_rate_two(system, procs, wsfan, port, users, work, build, env,
    n=1000, rows=500):
    """stream_rate with a second node (its own nginx, programs and relay)
    joined to the same PostgreSQL database: half the sockets on each
    relay, timed until both relays have written every frame."""
    other = start_system(str(work / "node-b"), build=str(build), env=env,
        join=system)
    try:
        trig = users.make(1, prefix="rate2trig")[0]
        people = users.make(n // 5)
        tokens = [u["token"] for u in people for _ in range(5)][:n]
        half = len(tokens) // 2
        kids_a, opened_a, _ = open_fan(procs, wsfan, port, trig,
            tokens[:half], nproc=1)
        kids_b, opened_b, _ = open_fan(procs, wsfan, other.port, trig,
            tokens[half:], nproc=1)
        for s in (system, other):
            wait_idle(s.relay_pid(), 30)
        w0 = {id(s): ctl(s, {"op": "stats"})["written"]
              for s in (system, other)}
        want = {id(system): w0[id(system)] + rows * opened_a,
                id(other): w0[id(other)] + rows * opened_b}
        t0 = time.monotonic()
        insert_rows(system, rows, "rate2")
        for s in (system, other):
            ctl(s, {"op": "kick"})
        for s in (system, other):
            wait_until(lambda s=s: ctl(s, {"op": "stats"})["written"]
                >= want[id(s)], 120, "stream delivered on both relays",
                step=0.005)
        dt = time.monotonic() - t0
        close_fan(system, procs, kids_a)
        close_fan(other, procs, kids_b)
    finally:
        other.stop(check_logs=False)
    opened = opened_a + opened_b
    return {"n": opened, "rows": rows, "s": dt, "rows_per_s": rows / dt,
            "frames_per_s": rows * opened / dt}


def kill_replay(system, rows=1000):
    """From a relay SIGKILL until a client that reconnects with its last
    seq has every row written meanwhile."""
    from wsclient import connect_user
    u = system.make_user()
    c = connect_user(system, u)
    c.ping()
    last = max([m["seq"] for m in c.log if "seq" in m] +
               [c.welcome_seq])
    epoch = c.epoch
    t0 = time.monotonic()
    system.relay_kill(signal.SIGKILL)
    try:
        c.wait_closed(timeout=10)
    except Exception:
        pass
    c.close()
    top = insert_rows(system, rows, "replay")
    t_rows = time.monotonic() - t0
    system.relay_start()
    t_up = time.monotonic() - t0
    c = connect_user(system, u, since=last, epoch=epoch, timeout=60)
    c.wait_for(lambda m: m.get("seq", 0) >= top, timeout=120,
        what="full replay")
    t_all = time.monotonic() - t0
    got = len([m for m in c.log if m.get("type") == "bench" and
               m.get("tag") == "replay"])
    c.close()
    return {"rows": rows, "got": got, "rows_s": t_rows, "up_s": t_up,
            "total_s": t_all}


def registered_rss(system, procs, wsfan, port, users, registered=10000,
    connected=100):
    """Relay memory with many registered users and few connected."""
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    have = system.sql("SELECT count(*) FROM users")[0][0]
    tag = secrets.token_hex(3)
    system.sql_many("INSERT INTO users (username, email, password, "
        "extension, status, role, created_at, updated_at, is_online) "
        "VALUES (?, ?, 'x', ?, 'offline', 'user', ?, ?, 0)",
        [(f"r{tag}{i}", f"r{tag}{i}@bench.test", f"5{tag}{i}", now,
          now) for i in range(max(0, registered - have - connected))])
    total = system.sql("SELECT count(*) FROM users")[0][0]
    trig = users.make(1, prefix="memtrig")[0]
    people = users.make(connected)
    system.relay_kill(signal.SIGTERM)
    system.relay_start()
    relay = system.relay_pid()
    wait_idle(relay, 30)
    rss0 = rss_kib(relay)
    kids, opened, _ = open_fan(procs, wsfan, port, trig,
        [u["token"] for u in people], nproc=1)
    wait_idle(relay, 30)
    rss1 = rss_kib(relay)
    close_fan(system, procs, kids)
    return {"registered": total + 1 + connected, "connected": opened,
            "rss0_kib": rss0, "rss1_kib": rss1}


# -- main ------------------------------------------------------------------------

def ami_parse(build):
    """lib/ami on one core: the captured transcript's received bytes, fed
    in 16 KB reads again and again for 2 s."""
    out = subprocess.run([str(build / "tests" / "bench" / "amiparse"),
        str(REPO / "tests" / "fixtures" / "ami-transcript.raw"), "2"],
        capture_output=True, text=True, check=True, cwd=REPO).stdout
    f = out.split()
    assert f[0] == "AMIPARSE", out
    return {"events_per_s": float(f[1]), "msgs_per_s": float(f[2]),
            "mb_per_s": float(f[3]), "errors": int(f[4])}


def summary(prof, ratio, logs_ratio, fans, rt, ex=None, ami=None, al=None):
    """Each target next to its figure (figures, not a verdict)."""
    rows = [("profile / trivial throughput", f"{ratio:.1%}",
             f">= {TARGETS['profile_vs_trivial']:.0%}",
             ratio >= TARGETS["profile_vs_trivial"]),
            ("call logs / trivial throughput", f"{logs_ratio:.1%}",
             f">= {TARGETS['call_logs_vs_trivial']:.0%}",
             logs_ratio >= TARGETS["call_logs_vs_trivial"]),
            ("profile p99", f"{prof['p99_us'] / 1000:.2f} ms",
             f"< {TARGETS['profile_p99_ms']:.0f} ms",
             prof["p99_us"] / 1000 < TARGETS["profile_p99_ms"])]
    for f in fans:
        tgt = TARGETS["fan_last_ms"].get(f["n"])
        if tgt is not None:
            rows.append((f"fanout {f['n']} last receipt",
                         f"{f['last_ms']:.1f} ms", f"<= {tgt:.0f} ms",
                         f["last_ms"] <= tgt))
        rows.append((f"relay RSS per idle socket ({f['n']})",
                     f"{f['per_conn_kib']:.2f} KiB",
                     f"<= {TARGETS['rss_per_conn_kib']:.0f} KiB",
                     f["per_conn_kib"] <= TARGETS["rss_per_conn_kib"]))
    if ami is not None:
        rows.append(("AMI events parsed per second",
                     f"{ami['events_per_s']:,.0f}",
                     f">= {TARGETS['ami_events_per_s']:,}",
                     ami["events_per_s"] >= TARGETS["ami_events_per_s"]))
    if al is not None:
        rows.append(("AMI event to browser p99",
                     f"{al['p99_us'] / 1000:.2f} ms",
                     f"< {TARGETS['ami_event_p99_ms']:.0f} ms",
                     al["p99_us"] / 1000 < TARGETS["ami_event_p99_ms"]))
    if rt is not None:
        rows.append(("signalling round trip p99",
                     f"{rt['p99_us'] / 1000:.3f} ms",
                     f"< {TARGETS['rtt_p99_ms']:.0f} ms",
                     rt["p99_us"] / 1000 < TARGETS["rtt_p99_ms"]))
    if ex is not None:
        rows += export_bench.summary_rows(ex)
    say("\nSummary")
    for name, got, tgt, met in rows:
        say(f"   {name:<34} {got:>12}   target {tgt:<10} "
            f"{'met' if met else 'missed'}")
    say("")


def compare(mine, other_path, engine):
    """This run's figures beside those another engine's run saved."""
    try:
        theirs = json.loads(Path(other_path).read_text())
    except (OSError, ValueError):
        return
    say(f"\nSQLite beside PostgreSQL (the same figures, this machine)")
    say(f"   {'figure':<40} {'sqlite':>14} {'postgresql':>14}")
    for key, label, unit in FIGURES:
        a = theirs.get(key) if engine == "postgres" else mine.get(key)
        b = mine.get(key) if engine == "postgres" else theirs.get(key)
        fa = f"{a:.1f} {unit}" if isinstance(a, (int, float)) else "-"
        fb = f"{b:.1f} {unit}" if isinstance(b, (int, float)) else "-"
        say(f"   {label:<40} {fa:>14} {fb:>14}")
    say("")


# The figures both engines' runs report, for compare().
FIGURES = [
    ("profile_rps", "GET /protected/profile", "req/s"),
    ("profile_p99_ms", "  p99", "ms"),
    ("logs_rps", "GET /protected/call/logs", "req/s"),
    ("logs_p99_ms", "  p99", "ms"),
    ("login_rps", "POST /api/login", "req/s"),
    ("fan1000_last_ms", "fanout 1,000: last receipt", "ms"),
    ("rtt_p99_ms", "signalling round trip p99", "ms"),
    ("stream_rows_s", "stream rows/s to 1,000 sockets, 1 relay", "rows/s"),
    ("stream2_rows_s", "the same over 2 relays (500 + 500)", "rows/s"),
]


def fmt_ms(us):
    return f"{us / 1000:.2f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build/rel")
    ap.add_argument("--duration", type=int,
        default=int(os.environ.get("BENCH_DURATION", "8")))
    ap.add_argument("--fan", default=os.environ.get("BENCH_FAN",
        "1000,10000"))
    ap.add_argument("--rtt", type=int, default=2000)
    ap.add_argument("--ami-probes", type=int, default=300)
    ap.add_argument("--keep", action="store_true",
        help="keep the work directory")
    ap.add_argument("--figures-out", help="save the figures as JSON")
    ap.add_argument("--compare", help="print beside another run's figures")
    args = ap.parse_args()

    nofile = raise_nofile()
    build = (REPO / args.build).resolve()
    wsfan = str(build / "tests" / "bench" / "wsfan")
    trivial = str(build / "tests" / "bench" / "trivial")
    work = Path(tempfile.mkdtemp(prefix="sb-bench-"))
    procs = Procs()
    system = None
    engine = os.environ.get("SB_DB_ENGINE", "sqlite")
    pg = engine == "postgres"
    figures = {}
    if pg:
        # The engine's own figures: the sizes and sections that say
        # something about the database, not the relay again.
        args.fan = "1000"
    say(f"switchboard bench: build {args.build}, {os.cpu_count()} CPUs, "
        f"nofile {nofile}, work {work}, database {engine}")
    ami = None
    if not pg:
        ami = ami_parse(build)
        say("\n0. AMI codec (lib/ami, one core, the captured transcript in "
            "16 KB reads)")
        say(f"   {ami['events_per_s']:,.0f} events/s, {ami['msgs_per_s']:,.0f} "
            f"messages/s, {ami['mb_per_s']:.0f} MB/s, {ami['errors']} errors "
            f"(target >= {TARGETS['ami_events_per_s']:,} events/s)")
    try:
        # Many sockets per user and a signalling loop as fast as it can
        # go: the per-user cap and the inbound limits are off here.
        env = {"FCGI_CHILDREN": "2", "WS_MAX_SOCKETS_PER_USER": "100000",
               "WS_RX_FRAMES_PER_S": "0", "WS_RX_BYTES_PER_S": "0"}
        system = start_system(str(work), build=str(build), env=env)
        port = free_port()
        conf = bench_nginx_conf(system, port)
        base = f"http://127.0.0.1:{port}"
        sock = system.run_dir / "fcgi-trivial.sock"
        procs.start([SPAWN_FCGI, "-n", "-s", str(sock), "-M", "0600",
            "--", trivial], env=dict(system.env, FCGI_CHILDREN="2"),
            stdout=subprocess.DEVNULL,
            stderr=open(system.log_dir / "trivial.log", "ab"))
        procs.start([NGINX, "-c", str(conf), "-p",
            str(system.run_dir) + "/", "-e",
            str(system.log_dir / "nginx-bench-error.log"), "-g",
            "daemon off;"], stdout=subprocess.DEVNULL,
            stderr=open(system.log_dir / "nginx-bench.log", "ab"))

        def up():
            try:
                return all(requests.get(base + p, timeout=2)
                    .status_code == 200 for p in ("/bench/nginx",
                    "/bench/trivial", "/health"))
            except requests.RequestException:
                return False
        wait_until(up, 20, "bench nginx")

        u = system.make_user()
        login_body = json.dumps({"username": u["username"],
            "password": u["password"]})
        users = Users(system, base, u)
        nlogs = seed_call_logs(system, u, users.make(20, prefix="peer"))
        d = args.duration
        say(f"\n1. HTTP through nginx (wrk -t2 -c32 -d{d}s, "
            "2 FastCGI workers per program)")
        rows = [
            ("nginx return 200", wrk(base, "/bench/nginx", d)),
            ("trivial FastCGI", wrk(base, "/bench/trivial", d)),
            ("GET /protected/profile", wrk(base, "/protected/profile",
            d, token=u["token"])),
            ("GET /protected/call/logs", wrk(base, "/protected/call/logs",
            d, token=u["token"])),
            ("POST /api/login", wrk(base, "/api/login", d, "POST",
            login_body)),
        ]
        ng = rows[0][1]["rps"]
        say(f"   {'endpoint':<24} {'req/s':>10} {'p50 ms':>8} "
            f"{'p99 ms':>8} {'non-2xx':>8} {'vs nginx':>9}")
        for name, j in rows:
            say(f"   {name:<24} {j['rps']:>10.0f} "
                f"{fmt_ms(j['p50_us']):>8} {fmt_ms(j['p99_us']):>8} "
                f"{j['non2xx']:>8} {j['rps'] / ng:>8.1%}")
        prof, triv, logs = rows[2][1], rows[1][1], rows[3][1]
        figures.update(profile_rps=prof["rps"],
            profile_p99_ms=prof["p99_us"] / 1000, logs_rps=logs["rps"],
            logs_p99_ms=logs["p99_us"] / 1000, login_rps=rows[4][1]["rps"])
        ratio = prof["rps"] / triv["rps"]
        logs_ratio = logs["rps"] / triv["rps"]
        say(f"   profile / trivial: {ratio:.1%} (target >= "
            f"{TARGETS['profile_vs_trivial']:.0%}); profile p99 "
            f"{fmt_ms(prof['p99_us'])} ms (target < "
            f"{TARGETS['profile_p99_ms']:.0f} ms)")
        say(f"   call logs / trivial: {logs_ratio:.1%} (target >= "
            f"{TARGETS['call_logs_vs_trivial']:.0%}); the newest 50 of "
            f"{nlogs} calls of one user, among {2 * nlogs} rows")
        say("   login is slow by design: yescrypt on every attempt "
            "(nginx's limit_req, 10 r/s, removed for this run)")

        fan_sizes = [int(x) for x in args.fan.split(",") if x]
        if fan_sizes:
            say("\n2. WebSocket fanout through nginx (one PUT /protected/"
                "status -> user_status_changed to every socket)")
        fans = []
        for n in fan_sizes:
            f = fanout(system, procs, wsfan, port, users, n)
            fans.append(f)
            figures[f"fan{n}_last_ms"] = f["last_ms"]
            tgt = TARGETS["fan_last_ms"].get(n)
            say(f"   N={n:>6}: opened {f['opened']} (failed "
                f"{f['failed']}, relay counts {f['relay_clients']}) "
                f"in {f['connect_s']:.1f} s over {f['users']} users x "
                f"{f['per_user']}; received {f['received']}")
            say(f"            first {f['first_ms']:.1f} ms, last "
                f"{f['last_ms']:.1f} ms"
                + (f" (target <= {tgt:.0f} ms)" if tgt else "")
                + f"; REST reply {f['rest_ms']:.1f} ms")
            say(f"            relay RSS {f['rss0_kib']} -> "
                f"{f['rss1_kib']} KiB: {f['per_conn_kib']:.2f} KiB "
                f"per idle connection (target <= "
                f"{TARGETS['rss_per_conn_kib']:.0f} KiB)")

        if fans:
            say("   (the first run also pays one-time growth: user state, "
                "SQLite cache, lws tables)")
        for a, b in zip(fans, fans[1:]):
            # The slope between two sizes leaves the one-time growth out.
            say(f"   marginal RSS from N={a['n']} to N={b['n']}: "
                f"{(b['rss1_kib'] - a['rss1_kib']) / (b['n'] - a['n']):.2f}"
                f" KiB per idle connection")

        rt = None
        if args.rtt > 0:
            say(f"\n3. Signalling round trip (webrtc_ice_candidate "
                f"A->B->A through nginx, {args.rtt} times)")
            rt = rtt(system, procs, wsfan, port, args.rtt)
            figures["rtt_p99_ms"] = rt["p99_us"] / 1000
            say(f"   p50 {rt['p50_us'] / 1000:.3f} ms, p90 "
                f"{rt['p90_us'] / 1000:.3f} ms, p99 "
                f"{rt['p99_us'] / 1000:.3f} ms (target < "
                f"{TARGETS['rtt_p99_ms']:.0f} ms), max "
                f"{rt['max_us'] / 1000:.3f} ms, mean "
                f"{rt['mean_us'] / 1000:.3f} ms")

        say("\n4. The event stream")
        sr = stream_rate(system, procs, wsfan, port, users)
        say(f"   {sr['rows']} rows to {sr['n']} sockets in "
            f"{sr['s'] * 1000:.0f} ms: {sr['rows_per_s']:.0f} rows/s "
            f"({sr['frames_per_s']:.0f} frames/s)")
        figures["stream_rows_s"] = sr["rows_per_s"]
        if pg:
            s2 = stream_rate_two(system, procs, wsfan, port, users, work,
                build, env)
            figures["stream2_rows_s"] = s2["rows_per_s"]
            say(f"   two relays on one database: {s2['rows']} rows to "
                f"{s2['n']} sockets (half on each) in "
                f"{s2['s'] * 1000:.0f} ms: {s2['rows_per_s']:.0f} rows/s "
                f"({s2['frames_per_s']:.0f} frames/s)")
            if args.figures_out:
                Path(args.figures_out).write_text(json.dumps(figures))
            if args.compare:
                compare(figures, args.compare, engine)
            return
        kr = kill_replay(system)
        say(f"   relay SIGKILL -> {kr['rows']} rows written while down "
            f"({kr['rows_s'] * 1000:.0f} ms) -> relay up "
            f"({kr['up_s'] * 1000:.0f} ms) -> reconnected client has its "
            f"full replay ({kr['got']} rows): {kr['total_s'] * 1000:.0f} "
            f"ms after the kill")
        mr = registered_rss(system, procs, wsfan, port, users)
        say(f"   relay RSS with {mr['registered']} registered users: "
            f"{mr['rss0_kib']} KiB at start, {mr['rss1_kib']} KiB with "
            f"{mr['connected']} connected")
        say("\n5. Call-log export (switchboard cdr export, 1,000,000 rows "
            "to CSV, beside sqlite3 -csv)")
        (work / "export").mkdir()
        ex = export_bench.run(build, work / "export", say=say)
        say(f"\n6. AMI event to browser (a fake Asterisk at "
            f"{amilat.RATE} events/s; {args.ami_probes} calls end one by "
            "one, Hangup events written -> call_status ended on the "
            "caller's socket through nginx)")
        al = amilat.run(build, work / "amilat", args.ami_probes, say=say)
        say(f"   p50 {al['p50_us'] / 1000:.2f} ms, p90 "
            f"{al['p90_us'] / 1000:.2f} ms, p99 {al['p99_us'] / 1000:.2f} "
            f"ms (target < {TARGETS['ami_event_p99_ms']:.0f} ms), max "
            f"{al['max_us'] / 1000:.2f} ms; {al['events_per_s']:.0f} "
            f"events/s read by the link, {al['dropped']} dropped")
        summary(prof, ratio, logs_ratio, fans, rt, ex, ami, al)
        if args.figures_out:
            Path(args.figures_out).write_text(json.dumps(figures))
        if args.compare:
            compare(figures, args.compare, engine)
    finally:
        procs.stop_all()
        if system is not None:
            system.stop(check_logs=False)
        pg_cluster_stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
