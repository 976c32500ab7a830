"""Two people in two real (headless Chromium) browsers call each other.

tests/browser/call.mjs drives nginx/html/phone.html in two browser
contexts: B sees A come online through a presence event, A calls B by
extension, B accepts, the pages exchange offer, answer and ICE candidates
through the relay until audio flows both ways, and A hangs up after a hold
of about two seconds. This test checks what the script measured and then
the call's log row: ended, answered, and as long as the call really was.

Needs Debian's chromium, node and `npm ci --prefix tests/browser`
(`make test` installs them); skipped with the reason when one is missing.
"""

import json
import os
import shutil
import subprocess
import time
from datetime import datetime, timezone

import pytest

from harness import REPO, TIME_RE

BROWSER_DIR = REPO / "tests" / "browser"
CHROMIUM = "/usr/bin/chromium"
HOLD_MS = 2000
SCRIPT_TIMEOUT_S = 90  # the script bounds itself at 60 s


def _missing():
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} not installed (apt-get install chromium)"
    if shutil.which("node") is None:
        return "node not installed (apt-get install nodejs npm)"
    if not (BROWSER_DIR / "node_modules" / "playwright-core").is_dir():
        return ("tests/browser/node_modules missing "
                "(npm ci --prefix tests/browser)")
    return None


def _unix(stamp):
    assert stamp is not None and TIME_RE.match(stamp), stamp
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=timezone.utc).timestamp()


def _run_call(sb, a, b, shots):
    env = dict(os.environ)
    env.update({"PHONE_A_USER": a["username"],
                "PHONE_A_PASSWORD": a["password"],
                "PHONE_B_USER": b["username"],
                "PHONE_B_PASSWORD": b["password"]})
    try:
        r = subprocess.run(
            [shutil.which("node"), str(BROWSER_DIR / "call.mjs"), sb.base,
             "--hold-ms", str(HOLD_MS), "--screenshots", str(shots)],
            env=env, cwd=BROWSER_DIR, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=SCRIPT_TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"call.mjs still running after {SCRIPT_TIMEOUT_S} s:\n"
                    f"{e.stdout}\n{e.stderr}")
    lines = r.stdout.strip().splitlines()
    assert lines, f"call.mjs printed nothing (exit {r.returncode}):\n" \
                  f"{r.stderr[-3000:]}"
    out = json.loads(lines[-1])
    assert r.returncode == 0 and out.get("ok") is True, (
        f"call.mjs failed at {out.get('step')!r}: {out.get('reason')}\n"
        f"{json.dumps(out, indent=1)[:6000]}\n{r.stderr[-2000:]}")
    return out


def test_two_browsers_call_each_other(sb, tmp_path):
    reason = _missing()
    if reason:
        pytest.skip(reason)
    a = sb.make_user()
    b = sb.make_user()

    out = _run_call(sb, a, b, tmp_path)
    figures = json.dumps({k: out[k] for k in ("a", "b", "ms")})
    print(figures)

    call_id = out["call_id"]
    assert call_id.startswith("webrtc-call-"), call_id
    assert out["a"]["extension"] == a["extension"]
    assert out["b"]["extension"] == b["extension"]
    for side in ("a", "b"):
        s = out[side]
        assert s["state"] == "connected", figures
        assert s["ice"] in ("connected", "completed"), figures
        assert s["bytes_received"] > 0, figures
        assert s["packets_received"] > 0, figures
        assert s["bytes_sent"] > 0, figures
    # What one side sent is what the other received: one audio path.
    assert out["a"]["end"] == "local" and out["b"]["end"] == "remote"

    # Signalling went through the relay in both directions.
    sig = out["signalling"]
    assert sig["a"]["sent"].get("webrtc_offer") == 1, sig
    assert sig["b"]["received"].get("webrtc_offer") == 1, sig
    assert sig["b"]["sent"].get("webrtc_answer") == 1, sig
    assert sig["a"]["received"].get("webrtc_answer") == 1, sig
    assert sig["a"]["sent"].get("webrtc_ice_candidate", 0) > 0, sig
    assert sig["b"]["sent"].get("webrtc_ice_candidate", 0) > 0, sig
    assert sig["b"]["received"].get("webrtc_ice_candidate", 0) > 0, sig
    assert sig["a"]["received"].get("webrtc_ice_candidate", 0) > 0, sig

    rows = sb.sql("SELECT caller_id, callee_id, status, start_time, "
                  "answer_time, end_time, duration, direction "
                  "FROM call_logs WHERE channel = ?", (call_id,))
    assert len(rows) == 1, rows
    caller, callee, status, start, answer, end, duration, direction = rows[0]
    assert (caller, callee) == (a["id"], b["id"]), rows
    assert status == "ended", rows
    assert direction == "outbound", rows
    t_start, t_answer, t_end = _unix(start), _unix(answer), _unix(end)
    assert t_start <= t_answer <= t_end, rows
    talked = t_end - t_answer
    # Whole seconds from the answer to the end, as the server counts.
    assert duration >= HOLD_MS // 1000, rows
    assert -0.01 < talked - duration < 1.01, (talked, rows)
    assert talked < HOLD_MS / 1000 + 30, (talked, rows)

    hangup = out["hangup"]
    assert hangup["success"] is True and hangup["channel"] == call_id
    assert hangup["duration"] == duration, (hangup, rows)

    # Both people's call logs, when the server has the route, show the
    # call with that duration, over REST and on each page.
    for who, user in (("a", a), ("b", b)):
        r = sb.req("GET", "/protected/call/logs", token=user["token"])
        if r.status_code == 404 and out["logs"][who] is None:
            continue
        assert r.status_code == 200, r.text
        mine = [x for x in r.json()["call_logs"] if x["channel"] == call_id]
        assert len(mine) == 1, r.text
        assert mine[0]["status"] == "ended"
        assert mine[0]["duration"] == duration
        page = out["logs"][who]
        assert page == {"status": "ended", "duration": duration,
                        "shown": True}, out["logs"]

    # The browsers are gone: the relay took both people offline again.
    deadline = time.monotonic() + 10
    while True:
        states = sb.sql("SELECT status, is_online FROM users "
                        "WHERE id IN (?, ?)", (a["id"], b["id"]))
        if all(s == ("offline", 0) for s in states):
            break
        assert time.monotonic() < deadline, states
        time.sleep(0.1)
