"""Run one browser scenario of tests/browser/run.mjs from a pytest test.

run_scenario() starts node on the scenario with the users it needs in the
environment (they carry passwords), answers its checkpoints with the
test's callbacks, and returns its JSON result, failing the test with the
scenario's own account of what went wrong. Screenshots land in the test's
tmp directory and are copied to build/screenshots/ (gitignored).

missing() says why the browser tests cannot run here (no chromium, node
or node_modules), or None.
"""

import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = REPO / "build" / "screenshots"
# Each scenario bounds itself; this only catches a node that hangs.
SLACK_S = 30


def missing():
    if os.environ.get("SB_DB_ENGINE", "sqlite") not in ("", "sqlite"):
        # The client is the same whatever the engine: the browser tests
        # run once, in the SQLite pass of make test.
        return "browser tests run in the SQLite pass only"
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} not installed (apt-get install chromium)"
    if shutil.which("node") is None:
        return "node not installed (apt-get install nodejs npm)"
    for mod in ("playwright-core", "axe-core"):
        if not (HERE / "node_modules" / mod).is_dir():
            return ("tests/browser/node_modules missing "
                    "(npm ci --prefix tests/browser)")
    return None


def skip_if_missing():
    reason = missing()
    if reason:
        pytest.skip(reason)


def user_args(u):
    """What a scenario needs of a harness user."""
    return {"username": u["username"], "password": u["password"],
            "extension": u["extension"]}


def run_scenario(base, name, args, shots, checkpoints=None,
                 deadline_s=60):
    """The scenario's JSON result; pytest.fail with its report when it
    did not pass. checkpoints: {name: fn(data) -> dict}."""
    shots = Path(shots)
    shots.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["SB_ARGS"] = json.dumps(args)
    cmd = [shutil.which("node"), str(HERE / "run.mjs"), name, base,
           "--shots", str(shots), "--deadline-ms", str(deadline_s * 1000)]
    started = time.monotonic()
    p = subprocess.Popen(cmd, env=env, cwd=HERE, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, bufsize=1)
    err = []
    t = threading.Thread(target=lambda: err.append(p.stderr.read()),
                         daemon=True)
    t.start()
    killer = threading.Timer(deadline_s + SLACK_S, p.kill)
    killer.start()
    last = None
    try:
        for line in p.stdout:
            line = line.rstrip("\n")
            if line.startswith("CHECKPOINT "):
                _, cp, data = line.split(" ", 2)
                fn = (checkpoints or {}).get(cp)
                try:
                    answer = fn(json.loads(data)) if fn else {
                        "error": f"no handler for {cp}"}
                except Exception as e:  # reported through the scenario
                    answer = {"error": f"{type(e).__name__}: {e}"}
                p.stdin.write(json.dumps(answer or {}) + "\n")
                p.stdin.flush()
            elif line:
                last = line
        p.wait()
    finally:
        killer.cancel()
        if p.poll() is None:
            p.kill()
            p.wait()
    t.join(5)
    took = time.monotonic() - started
    stderr = "".join(err)[-3000:]
    assert last is not None, (f"{name}: node printed nothing "
                              f"(exit {p.returncode}):\n{stderr}")
    out = json.loads(last)
    out["_seconds"] = round(took, 1)
    copy_screenshots(shots, out.get("screenshots", []))
    if p.returncode != 0 or out.get("ok") is not True:
        pytest.fail(f"browser scenario {name} failed at "
                    f"{out.get('step')!r}: {out.get('reason')}\n"
                    f"{json.dumps(out, indent=1)[:6000]}\n{stderr}")
    return out


def copy_screenshots(src, names):
    """Beside the test output, and in build/screenshots/ for people."""
    try:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for n in names:
            f = Path(src) / n
            if f.is_file():
                shutil.copy2(f, SCREENSHOTS / n)
    except OSError:
        pass  # the copy is a convenience; the tmp directory has them
