"""AMI event to browser latency through the relay (make bench, section 5).

A fake Asterisk (tests/fakeami.py) keeps the relay's manager link busy
with a steady event rate (the transcript's Newexten, which the link reads,
queues and hands to the call state, which ignores it), while calls that
are up end one by one: the fake writes a call's Hangup events at t0, and
t1 is when the caller's browser socket (through nginx) has the
call_status "ended" that Asterisk's events caused. Between the two: the
link's read and queue, the call state, the outbox's transaction, the
notify stream, the fanout, nginx.

    /usr/bin/python3 tests/bench/amilat.py --build build/rel
"""

import argparse
import secrets
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from fakeami import FakeAMI  # noqa: E402
from harness import REPO, start_system  # noqa: E402
from wsclient import Closed, connect_user  # noqa: E402

RATE = 2000  # events per second through the link, all told


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def run(build, workdir, probes=300, rate=RATE, say=print):
    ami = FakeAMI(username="sbbench", secret=secrets.token_hex(16)).start()
    sb = None
    try:
        sb = start_system(str(workdir), build=str(build), env={
            "AMI_HOST": "127.0.0.1", "AMI_PORT": str(ami.port),
            "AMI_USERNAME": ami.username, "AMI_SECRET": ami.secret,
            "AMI_EVENTS": "call,cdr,dialplan", "AMI_PING_S": "3600",
            "CALL_ATTEMPTS_PER_MIN": "0", "FCGI_CHILDREN": "2"})
        deadline = time.monotonic() + 20
        while sb.req("GET", "/health?detail=1").json()["ami"]["state"] \
                != "connected":
            if time.monotonic() > deadline:
                raise RuntimeError("AMI link not up")
            time.sleep(0.05)
        a, b = sb.make_user(), sb.make_user()
        ami.outcomes[a["extension"]] = "up"
        ca = connect_user(sb, a)
        got = {}
        cond = threading.Condition()
        stop = threading.Event()

        def reader():
            while not stop.is_set():
                try:
                    got_one = ca._read_one(time.monotonic() + 0.2)
                except Closed:
                    return
                m = got_one[0] if got_one is not None else None
                if m is None or m.get("type") != "call_status":
                    continue
                with cond:
                    got[(m.get("call_id"), m.get("status"))] = \
                        time.monotonic()
                    cond.notify_all()

        def wait_for(key, timeout=20):
            end = time.monotonic() + timeout
            with cond:
                while key not in got:
                    left = end - time.monotonic()
                    if left <= 0:
                        raise RuntimeError(f"no {key}")
                    cond.wait(left)
                return got[key]

        threading.Thread(target=reader, daemon=True).start()
        ids = []
        for _ in range(probes):
            r = sb.req("POST", "/protected/call/initiate", token=a["token"],
                       json={"target_extension": b["extension"]})
            r.raise_for_status()
            ids.append(r.json()["call_id"])
        for cid in ids:
            wait_for((cid, "connected"))
        with ami._lock:
            calls = list(ami.calls)
        if len(calls) != probes:
            raise RuntimeError(f"{len(calls)} live calls, not {probes}")

        # The probes' own events count towards the rate: one call ends
        # every `gap` seconds, the flood makes up the rest.
        gap = 0.02
        per_call = len(ami.tpl["hangup"].messages) - 1  # less the Response
        probe_rate = per_call / gap
        seconds = probes * gap + 1.0
        h0 = sb.req("GET", "/protected/diagnostics", token=a["token"]) \
            .json()["diagnostics"]["ami"]
        t_start = time.monotonic()
        flood = ami.flood(max(rate - probe_rate, 0), seconds)
        time.sleep(0.5)
        sent = {}
        for call in calls:
            with ami._lock:
                ami.calls.remove(call)
            evs = ami._hangup_events(call, None)[1:]
            t0 = time.monotonic()
            ami._emit_all(evs)
            sent[call] = t0
            time.sleep(gap)
        flood.join()
        elapsed = time.monotonic() - t_start
        # Each probe's call id: its channel is in the call's rewrite; the
        # relay's ended message names the call id. Match by order: the
        # calls end in creation order, and so do the ids.
        lat = []
        order = sorted(calls, key=lambda c: sent[c])
        for call, cid in zip(order, ids):
            t1 = wait_for((cid, "ended"))
            lat.append((t1 - sent[call]) * 1e6)
        stop.set()
        h1 = sb.req("GET", "/protected/diagnostics", token=a["token"]) \
            .json()["diagnostics"]["ami"]
        ca.close()
        events = h1["events"] - h0["events"]
        return {"probes": len(lat), "p50_us": pct(lat, 50),
                "p90_us": pct(lat, 90), "p99_us": pct(lat, 99),
                "max_us": max(lat), "events": events,
                "events_per_s": events / elapsed,
                "dropped": h1["events_dropped"] - h0["events_dropped"]}
    finally:
        if sb is not None:
            sb.stop(check_logs=False)
        ami.stop()


def main():
    import tempfile
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build/rel")
    ap.add_argument("--probes", type=int, default=300)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sb-amilat-"))
    r = run((REPO / args.build).resolve(), work, args.probes)
    print(f"AMI event -> browser: p50 {r['p50_us'] / 1000:.2f} ms, p90 "
          f"{r['p90_us'] / 1000:.2f} ms, p99 {r['p99_us'] / 1000:.2f} ms, "
          f"max {r['max_us'] / 1000:.2f} ms over {r['probes']} calls; "
          f"{r['events_per_s']:.0f} events/s through the link "
          f"({r['dropped']} dropped)")


if __name__ == "__main__":
    main()
