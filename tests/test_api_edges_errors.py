"""Strict JSON bodies, Cache-Control on replies that carry a token or a
user's data, and nginx's own errors as JSON."""

import socket

import pytest

from harness import expect, snapshot

INVALID = {"error": "Invalid request format"}


# ---- strict JSON (RFC 8259)

@pytest.mark.parametrize("body", [
    '{"username":"%s","password":"wrong-pw","username":"%s"}',
    '{"username":"%s","password":"wrong-pw","n":1.}',
    '{"username":"%s","password":"wrong-pw","n":-01}',
    '{"username":"%s","password":"wrong-pw","n":1e999}',
    '{"username":"%s","password":"wrong-pw","n":-1e999}',
    '{"username":"%s","password":"wrong-pw","n":99999999999999999999}',
    '{"username":"%s","password":"wrong-pw","o":{"a":1,"a":2}}',
    '{"username":"%s","password":"wrong-pw","\\u0070assword":"x"}',
    '{"username":"%s","password":"wrong-pw","s":"\\ud800"}',
])
def test_login_body_must_be_strict_json(sb, body):
    u = sb.make_user()
    text = body.replace("%s", u["username"])
    before = snapshot(sb)
    n = sb.sql("SELECT count(*) FROM login_attempts")[0][0]
    r = sb.req("POST", "/api/login", data=text.encode(),
               headers={"Content-Type": "application/json"})
    expect(r, 400, INVALID)
    assert snapshot(sb) == before
    # Refused as malformed, not counted as a wrong password.
    assert sb.sql("SELECT count(*) FROM login_attempts")[0][0] == n


def test_duplicate_key_cannot_smuggle_a_role(sb):
    u = sb.make_user()
    r = sb.req("PUT", f"/protected/admin/users/{u['id']}",
               token=sb.admin_token(),
               data=b'{"role":"admin","role":"user"}',
               headers={"Content-Type": "application/json"})
    expect(r, 400, INVALID)
    assert sb.sql("SELECT role FROM users WHERE id = ?",
                  (u["id"],)) == [("user",)]


# ---- Cache-Control

def test_no_store_on_tokens_and_user_data(sb):
    u = sb.make_user()
    replies = {
        "login": sb.req("POST", "/api/login",
                        json={"username": u["username"],
                              "password": u["password"]}),
        "refresh": sb.req("POST", "/api/refresh", token=u["token"]),
        "profile": sb.req("GET", "/protected/profile", token=u["token"]),
        "online": sb.req("GET", "/protected/users/online", token=u["token"]),
        "by extension": sb.req("GET", f"/protected/users/{u['extension']}",
                               token=u["token"]),
        "admin list": sb.req("GET", "/protected/admin/users",
                             token=sb.admin_token()),
        "register": sb.req("POST", "/api/register",
                           json={"username": "nostore" + u["username"],
                                 "email": "nostore" + u["email"],
                                 "password": "secret1",
                                 "extension": sb.free_extension()}),
        "config": sb.req("GET", "/config"),
        "wrong password": sb.req("POST", "/api/login",
                                 json={"username": u["username"],
                                       "password": "wrong-pw"}),
        "no token": sb.req("GET", "/protected/profile"),
        "unknown path": sb.req("GET", "/api/nothing-here"),
    }
    for name, r in replies.items():
        assert r.status_code < 500, (name, r.status_code, r.text)
        assert r.headers.get("Cache-Control") == "no-store", name


# ---- nginx's own errors

def raw(sb, data):
    """Send bytes as they are; (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", sb.port), timeout=10) as s:
        s.sendall(data)
        out = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.decode("latin1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


@pytest.mark.parametrize("request_bytes,status,error", [
    (b"TRACE /api/login HTTP/1.1\r\nHost: x\r\n\r\n", 405,
     "Method not allowed"),
    (b"TRACE /protected/profile HTTP/1.1\r\nHost: x\r\n\r\n", 405,
     "Method not allowed"),
    (b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
     400, "Bad request"),
    (b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
     b"Content-Length: 2\r\n\r\n{}", 400, "Bad request"),
    (b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
     400, "Bad request"),
    (b"GET /api/a%00b HTTP/1.1\r\nHost: x\r\n\r\n", 400, "Bad request"),
    (b"GET /protected/%00 HTTP/1.1\r\nHost: x\r\n\r\n", 400, "Bad request"),
    (b"GET /api/../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", 400,
     "Bad request"),
    (b"GET /../config HTTP/1.1\r\nHost: x\r\n\r\n", 400, "Bad request"),
    (b"GET /api/x%2 HTTP/1.1\r\nHost: x\r\n\r\n", 400, "Bad request"),
    (b"GET /health HTTP/1.1\r\n\r\n", 400, "Bad request"),
    (b"GET /health HTTP/2.5\r\nHost: x\r\n\r\n", 505,
     "HTTP version not supported"),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414,
     "Request URI too long"),
])
def test_nginx_errors_are_json(sb, request_bytes, status, error):
    if b"Connection:" not in request_bytes:
        request_bytes = request_bytes.replace(
            b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1)
    before = snapshot(sb)
    got, headers, body = raw(sb, request_bytes)
    assert got == status, body[:200]
    assert headers["content-type"].startswith("application/json"), headers
    assert body.decode().strip() == '{"error":"%s"}' % error
    assert headers.get("x-content-type-options") == "nosniff"
    assert snapshot(sb) == before
