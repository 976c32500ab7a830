"""The release relay under valgrind over a short workload: no definite
leaks, clean exit on SIGTERM."""

import os
import shutil
import signal
import subprocess
import time

import pytest

from harness import REPO, connectable, start_system
from wsclient import (connect_user, ctl, sample_candidate, sample_sdp,
    set_status, start_call, wait_call_status, wait_until)

VALGRIND = shutil.which("valgrind")


@pytest.fixture(scope="module")
def rel_build():
    """The release build (SB_REL_BUILD, else build/rel), brought up to date."""
    if VALGRIND is None:
        pytest.skip("valgrind not installed (make deps)")
    b = os.environ.get("SB_REL_BUILD", "build/rel")
    # Not the settings of a make that may be running these tests.
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MODE", "B")}
    r = subprocess.run(["make", "-s", "-C", str(REPO), "B=" + b, "MODE=rel",
                        "all"], env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=900)
    if r.returncode != 0:
        pytest.fail("release build failed:\n" + r.stdout[-2000:])
    return b


def test_relay_no_definite_leaks(tmp_path_factory, rel_build):
    s = start_system(str(tmp_path_factory.mktemp("valgrind")),
        build=rel_build)
    vg = None
    try:
        relay = str(s.build / "bin" / "switchboard-relay")
        s.relay_kill(signal.SIGTERM)
        vlog = s.run_dir / "valgrind-relay.txt"
        with open(s.log_dir / "relay-valgrind.log", "ab") as err:
            vg = subprocess.Popen([VALGRIND, "--leak-check=full",
                "--errors-for-leak-kinds=definite",
                "--error-exitcode=99", "--log-file=" + str(vlog),
                relay], env=s.env, cwd=s.workdir,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=err, start_new_session=True)
        wait_until(lambda: vg.poll() is not None or all(
            connectable(s.run_dir / n) for n in ("relay.sock",
            "ctl.sock")), timeout=120, what="relay under valgrind up")
        assert vg.poll() is None, vlog.read_text()[-3000:]
        workload(s)
        vg.send_signal(signal.SIGTERM)
        rc = vg.wait(timeout=120)
        text = vlog.read_text()
        assert rc == 0, "relay exit %d under valgrind:\n%s" % (rc,
            text[-6000:])
        assert ("definitely lost: 0 bytes" in text or
            "no leaks are possible" in text), text[-6000:]
    finally:
        if vg is not None and vg.poll() is None:
            os.killpg(vg.pid, signal.SIGKILL)
            vg.wait()
        s.stop()


def workload(s):
    t = 60  # valgrind is slow: timeouts only guard against hangs
    a, b, c, m = (s.make_user() for _ in range(4))
    ca = connect_user(s, a, timeout=t)
    cb1 = connect_user(s, b, timeout=t)
    cb2 = connect_user(s, b, timeout=t)
    cc = connect_user(s, c, timeout=t)
    try:
        for x in (ca, cb1, cb2, cc):
            x.ping(timeout=t)
        set_status(s, m, "busy")
        for x in (ca, cb1, cb2, cc):
            x.wait_type("user_status_changed", user_id=m["id"],
                status="busy", timeout=t)
        ca.send({"type": "call_status", "to": c["extension"],
            "status": "x", "from": "spoof"})
        ca.wait_type("error", ref="call_status", timeout=t)
        ca.send({"type": "webrtc_offer", "to": c["extension"],
            "offer": {"sdp": "v=0"}})
        ca.wait_type("error", timeout=t)
        ca.send("not json")
        cx = connect_user(s, c, timeout=t)
        try:
            cx.send({"type": "call_status", "to": b["extension"],
                "pad": "z" * 100000})
            cx.drain(1)
        except Exception:
            pass
        cx.close()

        call_id = start_call(s, a, b, ca, cb1)
        wait_call_status(s, call_id, "answered", timeout=t)
        ca.send({"type": "webrtc_offer", "to": b["extension"],
            "channel": call_id, "offer": {"type": "offer",
            "sdp": sample_sdp()}})
        cb2.wait_type("webrtc_offer", timeout=t)
        for i in range(4):
            cb1.send({"type": "webrtc_ice_candidate",
                "to": a["extension"], "channel": call_id,
                "candidate": sample_candidate(i)})
        for i in range(4):
            ca.wait_type("webrtc_ice_candidate", timeout=t)
        cb1.send({"type": "answer_call", "channel": call_id})
        ca.send({"type": "hangup", "channel": call_id})
        ca.send({"type": "webrtc_call_ended", "to": b["extension"],
            "channel": call_id, "call_id": call_id})
        cb1.wait_type("webrtc_call_ended", timeout=t)
        wait_call_status(s, call_id, "ended", timeout=t)

        call2 = start_call(s, b, c, cb1, cc, accept=False)
        r = s.req("POST", "/protected/call/hangup", token=c["token"],
            json={"channel": call2})
        assert r.status_code == 200, r.text
        # A call left ringing when the relay stops.
        start_call(s, c, a, cc, ca, accept=False)

        for line in (b"garbage\n", b"{\"op\":\"deliver\"}\n",
            b"{\"op\":\"who\"}\n", b"{\"op\":\"stats\"}\n"):
            ctl(s, line, timeout=t)
        ctl(s, {"op": "deliver", "extension": a["extension"],
            "message": {"type": "leak_test"}}, timeout=t)
        ca.wait_type("leak_test", timeout=t)
        r = s.req("GET", "/protected/extensions/connected",
            token=a["token"])
        assert r.status_code == 200, r.text

        seq = max(x["seq"] for x in cc.log if "seq" in x)
        cc.close()
        set_status(s, m, "away")
        ca.wait_type("user_status_changed", user_id=m["id"],
            status="away", timeout=t)
        cc = connect_user(s, c, since=seq, timeout=t)
        cc.wait_type("user_status_changed", user_id=m["id"],
            status="away", timeout=t)
        cb2.close()
        time.sleep(0.5)
    finally:
        for x in (ca, cb1, cc):
            x.close()
