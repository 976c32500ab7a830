"""Public routes, nginx's own answers (static page, 404/405/413/429 as
JSON, security headers), and CORS."""

import concurrent.futures
import os
import signal
import time

import pytest
import requests

from harness import expect, snapshot

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def assert_security_headers(r):
    for k, v in SECURITY_HEADERS.items():
        assert r.headers.get(k) == v, f"{k}: {r.headers.get(k)!r}"


def test_health(sb):
    before = int(time.time())
    r = sb.req("GET", "/health")
    data = expect(r, 200)
    assert list(data) == ["response_time_ms", "service", "status",
                          "timestamp"]
    assert data["response_time_ms"] == 0
    assert data["service"] == "voip-backend"
    assert data["status"] == "ok"
    assert isinstance(data["timestamp"], int)
    assert before - 1 <= data["timestamp"] <= time.time() + 1
    assert_security_headers(r)


def test_config_points_at_nginx_origin(sb):
    data = expect(sb.req("GET", "/config"), 200)
    assert list(data) == ["config", "success"]
    assert data["success"] is True
    c = data["config"]
    assert list(c) == ["api_url", "ws_url", "asterisk", "environment",
                       "debug", "service"]
    assert c["api_url"] == sb.base
    assert c["ws_url"] == sb.ws_url
    assert list(c["asterisk"]) == ["host", "ws_url"]
    host = c["asterisk"]["host"]
    assert c["asterisk"]["ws_url"] == f"ws://{host}:8088/asterisk/ws"
    assert c["environment"] == "development"
    assert c["debug"] is False
    assert c["service"] == "voip-backend"


def test_config_ignores_forwarded_headers_of_an_untrusted_peer(sb):
    # No TRUSTED_PROXIES: anyone could send these.
    r = sb.req("GET", "/config", headers={"X-Forwarded-Proto": "https",
                                          "X-Forwarded-Host": "evil.example"})
    c = expect(r, 200)["config"]
    assert c["api_url"] == sb.base
    assert c["ws_url"] == sb.ws_url


def test_config_ignores_host_header(sb):
    # A reply built from Host (ws://evil.example/ws) would be worth
    # poisoning a cache with; it comes from the configuration and the
    # address the request came in on, and is never stored.
    r = sb.req("GET", "/config", headers={"Host": "evil.example:8443"})
    c = expect(r, 200)["config"]
    assert c["api_url"] == sb.base
    assert c["ws_url"] == sb.ws_url
    assert r.headers["Cache-Control"] == "no-store"


def test_static_index(sb):
    r = sb.req("GET", "/")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/html")
    assert "<title>switchboard</title>" in r.text
    assert r.headers.get("Content-Security-Policy") == "default-src 'self'"
    assert_security_headers(r)
    r = sb.req("GET", "/index.html")
    assert r.status_code == 200 and "switchboard" in r.text


UNKNOWN = [
    ("GET", "/nope"),
    ("GET", "/index.htm"),
    ("POST", "/nope"),
    ("DELETE", "/"),
    ("PUT", "/index.html"),
    ("GET", "/api/nope"),
    ("POST", "/api/login/extra"),
    ("GET", "/api"),
    ("GET", "/health/x"),
    ("GET", "/config/"),
    ("GET", "/protected"),
    ("GET", "/protected/nope"),
    ("DELETE", "/protected/nope"),
    ("GET", "/protected/admin/nope"),
    ("GET", "/protected/admin/users/1/extra"),
    ("GET", "/protected/users/"),
    ("GET", "/ws/x"),
]


@pytest.mark.parametrize("method,path", UNKNOWN)
def test_unknown_route_is_json_404(sb, method, path):
    r = sb.req(method, path)
    expect(r, 404, {"error": "Not found"})
    assert_security_headers(r)


@pytest.mark.parametrize("prefix", ["/protected/call/", "/protected/extensions/"])
def test_unknown_calls_route_is_json_404(sb, prefix):
    if "calls" not in sb.programs():
        pytest.skip("the calls program is not built")
    expect(sb.req("GET", prefix + "nope"), 404, {"error": "Not found"})


WRONG_METHOD = [
    ("GET", "/api/login", {"POST"}),
    ("PUT", "/api/register", {"POST"}),
    ("GET", "/api/refresh", {"POST"}),
    ("DELETE", "/health", {"GET"}),
    ("POST", "/config", {"GET"}),
    ("GET", "/config/update", {"POST"}),
    ("GET", "/protected/logout", {"POST"}),
    ("DELETE", "/protected/profile", {"GET"}),
    ("POST", "/protected/status", {"PUT"}),
    ("GET", "/protected/heartbeat", {"POST"}),
    ("DELETE", "/protected/admin/users", {"GET", "POST"}),
    ("GET", "/protected/admin/users/1", {"PUT", "DELETE"}),
]


@pytest.mark.parametrize("method,path,allow", WRONG_METHOD)
def test_wrong_method_is_json_405(sb, method, path, allow):
    token = sb.admin_token()
    before = snapshot(sb)
    r = sb.req(method, path, token=token)
    expect(r, 405, {"error": "Method not allowed"})
    got = {m.strip() for m in r.headers.get("Allow", "").split(",")}
    # HEAD and OPTIONS may be listed besides the route's own methods.
    assert allow <= got <= allow | {"HEAD", "OPTIONS"}, r.headers.get("Allow")
    assert snapshot(sb) == before


def test_body_over_64k_is_json_413(sb):
    before = snapshot(sb)
    pad = "x" * (64 * 1024)
    r = sb.req("POST", "/api/register",
               data='{"username":"big413","password":"secret1",'
                    '"email":"big413@example.test","extension":"41399",'
                    '"pad":"' + pad + '"}',
               headers={"Content-Type": "application/json"})
    expect(r, 413, {"error": "Request body too large"})
    assert_security_headers(r)
    assert snapshot(sb) == before


def test_header_too_large_is_json_400(sb):
    before = snapshot(sb)
    r = sb.req("GET", "/protected/profile",
               headers={"Authorization": "Bearer " + "a" * 9000})
    expect(r, 400, {"error": "Request header too large"})
    assert_security_headers(r)
    assert snapshot(sb) == before


def test_chunked_body_over_64k_is_json_413(sb):
    def chunks():
        yield b'{"status":"busy","pad":"'
        for _ in range(20):
            yield b"y" * 4096
        yield b'"}'

    u = sb.make_user()
    before = snapshot(sb)
    r = sb.req("PUT", "/protected/status", token=u["token"], data=chunks(),
               headers={"Content-Type": "application/json"})
    expect(r, 413, {"error": "Request body too large"})
    assert snapshot(sb) == before


def test_body_of_exactly_64k_is_accepted(sb):
    u = sb.make_user()
    head = '{"status":"away","pad":"'
    tail = '"}'
    body = head + "z" * (64 * 1024 - len(head) - len(tail)) + tail
    assert len(body) == 64 * 1024
    r = sb.req("PUT", "/protected/status", token=u["token"], data=body,
               headers={"Content-Type": "application/json"})
    assert expect(r, 200)["user"]["status"] == "away"


def test_login_rate_limit_in_nginx_is_json_429(start):
    # The production rate (the default of cli/nginx-conf.sh).
    s = start(env={"NGINX_LOGIN_RATE": "10r/s"})
    conf = (s.run_dir / "nginx.conf").read_text()
    assert "zone=switchboard_login:10m rate=10r/s;" in conf
    # Malformed bodies: refused by the program without counting a failed
    # login, so only nginx's per-address limit (burst 50) can say 429.
    def one(_):
        # One connection per request: a Session is not for threads.
        r = requests.post(s.base + "/api/login", data="{", timeout=30,
                          headers={"Content-Type": "application/json"})
        return r.status_code, r.headers.get("Content-Type"), r.text, \
            r.headers.get("Retry-After")

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        got = list(pool.map(one, range(150)))
    codes = [g[0] for g in got]
    assert set(codes) <= {400, 429}, set(codes)
    assert codes.count(400) >= 50
    limited = [g for g in got if g[0] == 429]
    assert limited, "nginx never limited 150 logins in a burst"
    for _, ctype, text, retry in limited:
        assert ctype.startswith("application/json")
        assert text.strip() == '{"error":"Too many requests"}'
        assert retry == "1"
    # Other routes are not limited.
    expect(s.req("GET", "/health"), 200)


def test_cors_default_origins(sb):
    ok = "http://localhost:3000"
    r = sb.req("GET", "/health", headers={"Origin": ok})
    assert r.status_code == 200
    assert r.headers.get("Access-Control-Allow-Origin") == ok
    assert r.headers.get("Access-Control-Allow-Credentials") == "true"
    r = sb.req("GET", "/health", headers={"Origin": "http://evil.example"})
    assert r.status_code == 200
    assert "Access-Control-Allow-Origin" not in r.headers
    r = sb.req("GET", "/health")
    assert "Access-Control-Allow-Origin" not in r.headers


def test_cors_configured_origins_and_preflight(start):
    s = start(env={"CORS_ORIGINS": "https://app.example.org, http://x.test:81"})
    for origin in ("https://app.example.org", "http://x.test:81"):
        r = s.req("GET", "/health", headers={"Origin": origin})
        assert r.headers.get("Access-Control-Allow-Origin") == origin
    for origin in ("http://localhost:3000", "https://app.example.org.evil",
                   "http://x.test", "null"):
        r = s.req("GET", "/health", headers={"Origin": origin})
        assert "Access-Control-Allow-Origin" not in r.headers, origin

    origin = "https://app.example.org"
    r = s.req("OPTIONS", "/api/login", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,authorization"})
    assert r.status_code == 204, (r.status_code, r.text)
    assert r.headers.get("Access-Control-Allow-Origin") == origin
    methods = {m.strip() for m in
               r.headers.get("Access-Control-Allow-Methods", "").split(",")}
    assert {"GET", "POST", "PUT", "DELETE", "OPTIONS"} <= methods
    headers = {h.strip().lower() for h in
               r.headers.get("Access-Control-Allow-Headers", "").split(",")}
    assert {"content-type", "authorization"} <= headers
    # A preflight needs no token, even for a protected route.
    r = s.req("OPTIONS", "/protected/profile", headers={
        "Origin": origin, "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization"})
    assert r.status_code == 204, (r.status_code, r.text)
    assert r.headers.get("Access-Control-Allow-Origin") == origin
    # A preflight from elsewhere gets no grant.
    r = s.req("OPTIONS", "/api/login", headers={
        "Origin": "http://evil.example",
        "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in r.headers
    # An error reply to an allowed origin still carries the grant, so the
    # browser lets the page read the error.
    r = s.req("GET", "/protected/profile", headers={"Origin": origin})
    expect(r, 401, {"error": "Authorization header required"})
    assert r.headers.get("Access-Control-Allow-Origin") == origin


PROTECTED = [
    ("GET", "/protected/profile"),
    ("POST", "/protected/logout"),
    ("PUT", "/protected/status"),
    ("POST", "/protected/heartbeat"),
    ("GET", "/protected/users/online"),
    ("GET", "/protected/users/1000"),
    ("GET", "/protected/debug/auth"),
    ("GET", "/protected/admin/users"),
    ("POST", "/protected/admin/users"),
    ("PUT", "/protected/admin/users/1"),
    ("POST", "/api/refresh"),
    ("POST", "/protected/call/initiate"),
    ("POST", "/protected/call/hangup"),
    ("GET", "/protected/extensions/connected"),
    ("GET", "/protected/extensions/status"),
]


@pytest.mark.parametrize("method,path", PROTECTED)
def test_protected_routes_need_a_token(sb, method, path):
    if path.startswith(("/protected/call/", "/protected/extensions/")) and \
            "calls" not in sb.programs():
        pytest.skip("the calls program is not built")
    before = snapshot(sb)
    expect(sb.req(method, path, json={}), 401,
           {"error": "Authorization header required"})
    expect(sb.req(method, path, json={}, token="x.y.z"), 401,
           {"error": "Invalid token: token is malformed"})
    assert snapshot(sb) == before


def test_backend_down_is_json_502(start):
    s = start()
    s.relay_kill()
    r = s.req("GET", "/ws?extension=1000",
              headers={"Upgrade": "websocket", "Connection": "Upgrade",
                       "Sec-WebSocket-Version": "13",
                       "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    expect(r, 502, {"error": "Service unavailable"})
    s.relay_start()
    # A program that is gone: its socket no longer answers.
    os.killpg(s.pid("user"), signal.SIGKILL)
    s.procs["user"].wait()
    r = s.req("GET", "/protected/profile", token=s.admin_token())
    expect(r, 502, {"error": "Service unavailable"})
    assert_security_headers(r)
    expect(s.req("GET", "/health"), 200)
