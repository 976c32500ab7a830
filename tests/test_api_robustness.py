"""Hostile and broken input on every body route, secrets kept out of
replies and logs, and FastCGI workers that die."""

import concurrent.futures
import json
import os
import re
import signal
import time

import pytest
import requests

from harness import expect, snapshot

INVALID = "Invalid request format"

# (method, path template, who may call it, contract flags success:false)
BODY_ROUTES = [
    ("POST", "/api/login", None, False),
    ("POST", "/api/register", None, False),
    ("PUT", "/protected/status", "user", False),
    ("POST", "/protected/admin/users", "admin", False),
    ("PUT", "/protected/admin/users/{id}", "admin", False),
    ("POST", "/config/update", "admin", True),
    ("POST", "/protected/call/initiate?method=webrtc", "user", False),
    ("POST", "/protected/call/hangup", "user", False),
]


def needs_program(sb, path):
    if path.startswith("/protected/call/") and "calls" not in sb.programs():
        pytest.skip("the calls program is not built")

BAD_BODIES = [
    "{",
    "}",
    "",
    " ",
    "nul",
    "[]",
    "[{}]",
    "1",
    "true",
    '"a string"',
    '{"a":1}{"b":2}',
    '{"a":1,}',
    "{'single':'quotes'}",
    '{"a":' * 300 + "1" + "}" * 300,      # too deep
    '{"username":"\xff\xfe"}',           # not UTF-8 (sent as latin-1 bytes)
    "\x00",
]


@pytest.fixture(scope="module")
def callers(sb):
    u = sb.make_user()
    return {"user": u["token"], "admin": sb.admin_token(), "target": u["id"]}


@pytest.mark.parametrize("body", BAD_BODIES,
                         ids=[f"b{i}" for i in range(len(BAD_BODIES))])
@pytest.mark.parametrize("method,path,who,sfalse", BODY_ROUTES,
                         ids=[r[1] for r in BODY_ROUTES])
def test_malformed_bodies(sb, callers, method, path, who, sfalse, body):
    needs_program(sb, path)
    token = callers[who] if who else None
    path = path.replace("{id}", str(callers["target"]))
    before = snapshot(sb)
    data = body.encode("latin-1")
    r = sb.req(method, path, token=token, data=data,
               headers={"Content-Type": "application/json"})
    want = {"error": INVALID}
    if sfalse:
        want = {"error": INVALID, "success": False}
    expect(r, 400, want)
    assert snapshot(sb) == before


@pytest.mark.parametrize("method,path,who,sfalse", BODY_ROUTES,
                         ids=[r[1] for r in BODY_ROUTES])
def test_oversized_bodies(sb, callers, method, path, who, sfalse):
    needs_program(sb, path)
    token = callers[who] if who else None
    path = path.replace("{id}", str(callers["target"]))
    before = snapshot(sb)
    body = '{"x":"' + "a" * (64 * 1024) + '"}'
    r = sb.req(method, path, token=token, data=body,
               headers={"Content-Type": "application/json"})
    expect(r, 413, {"error": "Request body too large"})
    assert snapshot(sb) == before


def test_unicode_and_escapes_round_trip(sb):
    token = sb.admin_token()
    name = "Zoë \u00e9\u4e2d\U0001F600 \"q\" \\ /"
    r = sb.req("POST", "/protected/admin/users", token=token,
               json={"username": name, "email": "unicode@example.test",
                     "password": "secret-1",
                     "extension": sb.free_extension()})
    user = expect(r, 201)["user"]
    assert user["username"] == name
    t = sb.login(name, "secret-1")
    got = expect(sb.req("GET", "/protected/profile", token=t), 200)["user"]
    assert got["username"] == name
    assert sb.sql("SELECT username FROM users WHERE id = ?",
                  (user["id"],)) == [(name,)]


def test_sql_metacharacters_are_data(sb):
    u = sb.make_user()
    evil = "x' OR '1'='1"
    expect(sb.req("POST", "/api/login",
                  json={"username": evil, "password": evil}), 401,
           {"error": "Invalid credentials"})
    expect(sb.req("GET", "/protected/users/1' OR '1'='1",
                  token=u["token"]), 404, {"error": "User not found"})


def test_concurrent_writes_all_succeed(sb):
    users = [sb.make_user() for _ in range(6)]
    statuses = ["online", "busy", "away", "offline"]

    def one(i):
        u = users[i % len(users)]
        # One connection per request: a Session is not for threads.
        r = requests.put(
            sb.base + "/protected/status",
            headers={"Authorization": "Bearer " + u["token"]},
            json={"status": statuses[i % len(statuses)]}, timeout=30)
        return r.status_code

    mark = sb.sql("SELECT coalesce(max(id), 0) FROM notify")[0][0]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(one, range(80)))
    assert codes == [200] * 80
    # Two events per change, none lost.
    assert sb.sql("SELECT count(*) FROM notify WHERE id > ?", (mark,)) == [
        (160,)]


def test_killed_worker_is_replaced(sb):
    parent = sb.pid("auth")
    workers = sb.workers("auth")
    assert len(workers) == 2, workers
    victim = workers[0]
    os.kill(victim, signal.SIGKILL)
    # Service goes on at once through the other worker, then the parent
    # forks a replacement.
    for _ in range(20):
        expect(sb.req("GET", "/health"), 200)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        now = sb.workers("auth")
        if len(now) == 2 and victim not in now:
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f"workers after the kill: {sb.workers('auth')}")
    assert sb.pid("auth") == parent
    for _ in range(10):
        expect(sb.req("GET", "/health"), 200)
    u = sb.make_user()
    expect(sb.req("GET", "/protected/profile", token=u["token"]), 200)


def test_killed_worker_mid_request_load(sb):
    # Kill every worker of the user program while requests keep coming:
    # at most the requests in flight fail, and service comes back.
    u = sb.make_user()
    for pid in sb.workers("user"):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    ok = 0
    while time.monotonic() < deadline and ok < 20:
        r = sb.req("GET", "/protected/profile", token=u["token"])
        if r.status_code == 200:
            ok += 1
        else:
            assert r.status_code == 502, (r.status_code, r.text)
            assert r.json() == {"error": "Service unavailable"}
            time.sleep(0.05)
    assert ok == 20


HASH_RE = re.compile(r"\$(y|2[aby]|gy|7|6|5|1)\$")


def test_no_password_hash_in_any_reply(sb):
    u = sb.make_user()
    token = sb.admin_token()
    texts = [
        sb.req("POST", "/api/login", json={"username": u["username"],
                                           "password": u["password"]}).text,
        sb.req("GET", "/protected/profile", token=u["token"]).text,
        sb.req("GET", "/protected/users/online", token=u["token"]).text,
        sb.req("GET", f"/protected/users/{u['extension']}",
               token=u["token"]).text,
        sb.req("GET", "/protected/admin/users", token=token).text,
        sb.req("PUT", f"/protected/admin/users/{u['id']}", token=token,
               json={"status": "busy"}).text,
        sb.req("PUT", "/protected/status", token=u["token"],
               json={"status": "online"}).text,
        sb.req("GET", "/protected/debug/auth", token=u["token"]).text,
    ]
    v = sb.make_user()
    texts.append(sb.req("DELETE", f"/protected/admin/users/{v['id']}",
                        token=token).text)
    for t in texts:
        assert "password" not in json.loads(t).get("user", {})
        assert not HASH_RE.search(t), t
    # Nor in any notify payload.
    for (payload,) in sb.sql("SELECT payload FROM notify"):
        assert not HASH_RE.search(payload), payload
        assert u["password"] not in payload


def test_no_secrets_in_logs(sb):
    u = sb.make_user()
    expect(sb.req("POST", "/api/login",
                  json={"username": u["username"],
                        "password": "wrong-" + u["password"]}), 401)
    # Something in every program's log.
    expect(sb.req("PUT", "/protected/status", token=u["token"],
                  json={"status": "busy"}), 200)
    time.sleep(0.2)
    secrets_ = [u["password"], sb.admin_password, sb.env["JWT_SECRET"],
                u["token"], u["token"].split(".")[2]]
    hashes = [h for (h,) in sb.sql("SELECT password FROM users")]
    seen = 0
    for f in sorted(sb.log_dir.glob("*.log")):
        text = f.read_text(errors="replace")
        seen += len(text)
        assert not HASH_RE.search(text), f"{f.name}: password hash"
        for s in secrets_ + hashes:
            assert s not in text, f"{f.name} holds a secret"
    assert seen > 0


def test_program_logs_are_json_lines(sb):
    expect(sb.req("GET", "/health"), 200)
    for name in sb.programs():
        text = sb.log_text(name)
        lines = [l for l in text.splitlines() if l.strip()]
        assert lines, name
        for line in lines:
            o = json.loads(line)
            assert o["program"] == name
            assert o["level"] in ("debug", "info", "warn", "error")
            assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$",
                            o["time"])


def test_request_log_names_route_not_path(sb):
    u = sb.make_user()
    expect(sb.req("GET", f"/protected/users/{u['extension']}",
                  token=u["token"]), 200)
    lines = [json.loads(l) for l in sb.log_text("user").splitlines()
             if l.strip()]
    reqs = [l for l in lines if l.get("route") == "/protected/users/:extension"]
    assert reqs, "no request line for the route pattern"
    assert all(u["extension"] not in json.dumps(l) for l in reqs)
    assert all(re.match(r"^[0-9a-f]{32}$", l["request_id"]) for l in reqs)
