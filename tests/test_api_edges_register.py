"""POST /api/register on the public surface: names and emails unique
whatever their case, no blanks at the ends, no control characters, no lone
surrogates, and a limit per client address, in nginx and in the
database."""

import concurrent.futures

import pytest
import requests

from harness import expect, snapshot
from test_api_auth import reg_body
from test_api_edges_login import post_from

INVALID = "Invalid request format"


def users(sb):
    return sb.sql("SELECT count(*) FROM users")[0][0]


def test_register_names_and_emails_are_unique_whatever_the_case(sb):
    u = sb.make_user()
    cases = [
        ({"username": "Admin"}, "Username already exists"),
        ({"username": "ADMIN"}, "Username already exists"),
        ({"username": u["username"].upper()}, "Username already exists"),
        ({"email": u["email"].upper()}, "Email already exists"),
        ({"email": u["email"].capitalize()}, "Email already exists"),
    ]
    for change, text in cases:
        before = snapshot(sb)
        r = sb.req("POST", "/api/register", json=reg_body(sb, **change))
        expect(r, 409, {"error": text})
        assert snapshot(sb) == before
    # The admin API and a rename go through the same check.
    r = sb.req("POST", "/protected/admin/users", token=sb.admin_token(),
               json=reg_body(sb, username=u["username"].title(),
                             role="user"))
    expect(r, 409, {"error": "Username already exists"})
    v = sb.make_user()
    r = sb.req("PUT", f"/protected/admin/users/{v['id']}",
               token=sb.admin_token(), json={"email": u["email"].upper()})
    expect(r, 409, {"error": "Email already exists"})


@pytest.mark.parametrize("field,value", [
    ("username", "admin "),
    ("username", " admin"),
    ("username", "admin\u00a0"),
    ("username", "\u3000admin"),
    ("username", "adm\u200bin"),
    ("username", "adm\u0085in"),
    ("username", "\ufeffadmin"),
    ("email", "re\u0085g@example.test"),
])
def test_register_refuses_blanks_and_controls(sb, field, value):
    body = reg_body(sb, **{field: value})
    before = snapshot(sb)
    r = sb.req("POST", "/api/register", json=body)
    expect(r, 400, {"error": INVALID, "field": field})
    assert snapshot(sb) == before


@pytest.mark.parametrize("escaped", [
    "ab\\ud800cd", "abcd\\udc00", "\\udbff\\udbffabc", "ab\\ude00\\ud83dcd",
])
@pytest.mark.parametrize("field", ["username", "email", "password"])
def test_register_refuses_lone_surrogates(sb, field, escaped):
    body = reg_body(sb)
    text = ('{"username":"%s","email":"%s","password":"%s",'
            '"extension":"%s"}')
    values = dict(body)
    values[field] = escaped + ("@example.test" if field == "email" else "")
    data = text % (values["username"], values["email"], values["password"],
                   values["extension"])
    before = snapshot(sb)
    n = users(sb)
    r = sb.req("POST", "/api/register", data=data.encode(),
               headers={"Content-Type": "application/json"})
    # Not turned into U+FFFD: refused, and nothing is written.
    expect(r, 400, {"error": INVALID})
    assert snapshot(sb) == before
    assert users(sb) == n
    assert not sb.sql("SELECT 1 FROM users WHERE username LIKE ?",
                      ("%\ufffd%",))


def test_register_limit_per_address(start):
    s = start(env={"REGISTER_PER_ADDR_HOUR": "2"})
    for _ in range(2):
        expect(post_from(s, "127.0.0.1", "/api/register", reg_body(s)), 201)
    # A conflict is answered before anything is counted.
    expect(post_from(s, "127.0.0.1", "/api/register",
                     reg_body(s, username="admin")), 409,
           {"error": "Username already exists"})
    n = users(s)
    r = post_from(s, "127.0.0.1", "/api/register", reg_body(s))
    expect(r, 429, {"error": "Too many registrations"})
    assert 1 <= int(r.headers["Retry-After"]) <= 3600
    assert users(s) == n
    assert s.sql("SELECT addr, count(*) FROM register_attempts "
                 "GROUP BY addr") == [("127.0.0.1", 2)]
    # Another address has its own count.
    expect(post_from(s, "127.0.0.2", "/api/register", reg_body(s)), 201)
    # Parallel requests from a fresh address get exactly the limit.

    def one(_):
        return post_from(s, "127.0.0.3", "/api/register",
                         reg_body(s)).status_code

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        codes = list(pool.map(one, range(6)))
    assert sorted(codes) == [201, 201, 429, 429, 429, 429], codes


def test_register_rate_limit_in_nginx_is_json_429(start):
    # The production rate, the default of cli/nginx-conf.sh.
    s = start(env={"NGINX_REGISTER_RATE": "6r/m"})
    conf = (s.run_dir / "nginx.conf").read_text()
    assert "zone=switchboard_register:10m rate=6r/m;" in conf
    got = []
    for _ in range(14):
        # Malformed: only nginx's limit (burst 10) can say 429.
        r = requests.post(s.base + "/api/register", data="{", timeout=30,
                          headers={"Content-Type": "application/json"})
        got.append((r.status_code, r.headers.get("Content-Type"), r.text))
    codes = [g[0] for g in got]
    assert codes[:11] == [400] * 11, codes
    assert set(codes[11:]) == {429}, codes
    for status, ctype, text in got[11:]:
        assert ctype.startswith("application/json")
        assert text.strip() == '{"error":"Too many requests"}'
    # Login and the rest are not limited by it.
    expect(s.req("GET", "/health"), 200)
    s.login(s.admin_username, s.admin_password)
