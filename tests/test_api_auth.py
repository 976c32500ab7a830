"""Login, register, refresh, tokens and login throttling."""

import secrets
import time

import pytest

from harness import (TIME_RE, USER_KEYS, expect, make_token, snapshot,
                     token_parts)

INVALID = "Invalid request format"


def claims_of(sb, user):
    return token_parts(user["token"])[1]


def user_row(sb, uid):
    return sb.sql("SELECT status, is_online, last_login, last_seen, password "
                  "FROM users WHERE id = ?", (uid,))[0]


# ---- login

def test_login_success_shape(sb):
    u = sb.make_user()
    sb.sql("UPDATE users SET status = 'offline', is_online = 0 WHERE id = ?",
           (u["id"],))
    before = int(time.time())
    r = sb.req("POST", "/api/login",
               json={"username": u["username"], "password": u["password"]})
    data = expect(r, 200)
    assert list(data) == ["message", "success", "token", "user"]
    assert data["message"] == "Login successful"
    assert data["success"] is True
    user = data["user"]
    assert list(user) == USER_KEYS
    assert user["id"] == u["id"]
    assert user["username"] == u["username"]
    assert user["email"] == u["email"]
    assert user["extension"] == u["extension"]
    assert user["role"] == "user"
    assert user["status"] == "online"
    assert user["is_online"] is True
    assert TIME_RE.match(user["last_login"])
    assert user["last_seen"] == user["last_login"]
    assert TIME_RE.match(user["created_at"])

    header, claims = token_parts(data["token"])
    assert header["alg"] == "HS256"
    assert claims["user_id"] == u["id"]
    assert claims["username"] == u["username"]
    assert claims["sub"] == u["username"]
    assert claims["extension"] == u["extension"]
    assert claims["role"] == "user"
    assert claims["iss"] == "voip-backend"
    assert before - 1 <= claims["iat"] <= time.time() + 1
    assert claims["nbf"] <= claims["iat"] + 1
    assert claims["exp"] - claims["iat"] == 24 * 3600
    assert len(claims["jti"]) == 32 and int(claims["jti"], 16) >= 0
    assert isinstance(claims["gen"], int)

    status, online, last_login, last_seen, _ = user_row(sb, u["id"])
    assert (status, online) == ("online", 1)
    assert last_login == user["last_login"] and last_seen == last_login


def test_login_token_works(sb):
    u = sb.make_user()
    data = expect(sb.req("GET", "/protected/profile", token=u["token"]), 200)
    assert data["user"]["id"] == u["id"]


@pytest.mark.parametrize("who", ["wrong-password", "unknown-user"])
def test_login_bad_credentials(sb, who):
    u = sb.make_user()
    name = u["username"] if who == "wrong-password" else "nobody" + u["username"]
    n = sb.sql("SELECT count(*) FROM login_attempts")[0][0]
    before = snapshot(sb)
    r = sb.req("POST", "/api/login",
               json={"username": name, "password": u["password"] + "x"})
    expect(r, 401, {"error": "Invalid credentials"})
    assert snapshot(sb) == before
    assert sb.sql("SELECT count(*) FROM login_attempts")[0][0] == n + 1
    assert sb.sql("SELECT username, addr FROM login_attempts "
                  "ORDER BY id DESC LIMIT 1") == [(name, "127.0.0.1")]


LOGIN_BAD = [
    ("{", None),
    ("", None),
    ("[]", None),
    ('"text"', None),
    ("null", None),
    ('{"username":"a","password":"b"} x', None),
    ('{"password":"secret1"}', "username"),
    ('{"username":"admin"}', "password"),
    ('{"username":1,"password":"secret1"}', "username"),
    ('{"username":"admin","password":123456}', "password"),
    ('{"username":"admin","password":null}', "password"),
    ('{"username":"","password":"secret1"}', "username"),
    ('{"username":"admin","password":""}', "password"),
    ('{"username":["admin"],"password":"x"}', "username"),
]


@pytest.mark.parametrize("body,field", LOGIN_BAD)
def test_login_bad_input(sb, body, field):
    before = snapshot(sb)
    n = sb.sql("SELECT count(*) FROM login_attempts")[0][0]
    r = sb.req("POST", "/api/login", data=body,
               headers={"Content-Type": "application/json"})
    want = {"error": INVALID}
    if field:
        want["field"] = field
    expect(r, 400, want)
    assert snapshot(sb) == before
    assert sb.sql("SELECT count(*) FROM login_attempts")[0][0] == n


# ---- throttling

def test_login_throttled_after_five_failures(sb):
    u = sb.make_user()
    for _ in range(5):
        r = sb.req("POST", "/api/login",
                   json={"username": u["username"], "password": "wrong-pw"})
        expect(r, 401, {"error": "Invalid credentials"})
    # Counted in SQLite, whichever of the two workers answered.
    assert sb.sql("SELECT count(*) FROM login_attempts WHERE username = ?",
                  (u["username"],)) == [(5,)]
    before = snapshot(sb)
    r = sb.req("POST", "/api/login",
               json={"username": u["username"], "password": u["password"]})
    expect(r, 429, {"error": "Too many failed login attempts"})
    retry = int(r.headers["Retry-After"])
    assert 1 <= retry <= 300
    assert snapshot(sb) == before
    # Another user from the same address is not affected.
    v = sb.make_user()
    sb.login(v["username"], v["password"])
    # Once the failures are gone, the right password works again.
    sb.sql("DELETE FROM login_attempts WHERE username = ?", (u["username"],))
    sb.login(u["username"], u["password"])


def test_login_success_forgets_failures(sb):
    u = sb.make_user()
    for _ in range(4):
        expect(sb.req("POST", "/api/login",
                      json={"username": u["username"], "password": "nope00"}),
               401)
    sb.login(u["username"], u["password"])
    assert sb.sql("SELECT count(*) FROM login_attempts WHERE username = ?",
                  (u["username"],)) == [(0,)]
    for _ in range(4):
        expect(sb.req("POST", "/api/login",
                      json={"username": u["username"], "password": "nope00"}),
               401)
    sb.login(u["username"], u["password"])


def test_login_throttled_per_address(sb):
    u = sb.make_user()
    for i in range(20):
        expect(sb.req("POST", "/api/login",
                      json={"username": f"ghost{i}{u['username']}",
                            "password": "wrong-pw"}), 401)
    r = sb.req("POST", "/api/login",
               json={"username": u["username"], "password": u["password"]})
    expect(r, 429, {"error": "Too many failed login attempts"})
    assert 1 <= int(r.headers["Retry-After"]) <= 300


# ---- register

def reg_body(sb, **kw):
    n = secrets.token_hex(4)
    b = {"username": f"reg{n}", "email": f"reg{n}@example.test",
         "password": "secret1", "extension": sb.free_extension()}
    b.update(kw)
    return b


def test_register_success(sb):
    body = reg_body(sb, role="admin")
    r = sb.req("POST", "/api/register", json=body)
    data = expect(r, 201)
    assert list(data) == ["message", "success", "user"]
    assert data["message"] == "User registered successfully"
    assert data["success"] is True
    user = data["user"]
    assert list(user) == USER_KEYS
    assert user["username"] == body["username"]
    assert user["email"] == body["email"]
    assert user["extension"] == body["extension"]
    assert user["role"] == "user"  # never what the body says
    assert user["status"] == "offline"
    assert user["is_online"] is False
    assert user["last_login"] is None and user["last_seen"] is None
    assert TIME_RE.match(user["created_at"])
    (pw,) = sb.sql("SELECT password FROM users WHERE id = ?", (user["id"],))[0]
    assert pw.startswith("$y$") and "secret1" not in pw
    assert sb.login(body["username"], "secret1")


REGISTER_BAD = [
    ({"username": "ab"}, "username"),
    ({"username": "x" * 51}, "username"),
    ({"username": 123}, "username"),
    ({"username": None}, "username"),
    ({"email": "not-an-email"}, "email"),
    ({"email": "a@b"}, "email"),
    ({"email": 5}, "email"),
    ({"password": "12345"}, "password"),
    ({"password": 123456}, "password"),
    ({"extension": "123"}, "extension"),
    ({"extension": "1234567"}, "extension"),
    ({"extension": "12a4"}, "extension"),
    ({"extension": 12345}, "extension"),
    ({"extension": ""}, "extension"),
]


@pytest.mark.parametrize("change,field", REGISTER_BAD)
def test_register_bad_input(sb, change, field):
    body = reg_body(sb)
    body.update(change)
    before = snapshot(sb)
    r = sb.req("POST", "/api/register", json=body)
    expect(r, 400, {"error": INVALID, "field": field})
    assert snapshot(sb) == before


@pytest.mark.parametrize("missing", ["username", "email", "password",
                                     "extension"])
def test_register_missing_field(sb, missing):
    body = reg_body(sb)
    del body[missing]
    before = snapshot(sb)
    expect(sb.req("POST", "/api/register", json=body), 400,
           {"error": INVALID, "field": missing})
    assert snapshot(sb) == before


@pytest.mark.parametrize("body", ["{", "", "[1]", '{"username":"abc"'])
def test_register_malformed(sb, body):
    before = snapshot(sb)
    expect(sb.req("POST", "/api/register", data=body,
                  headers={"Content-Type": "application/json"}),
           400, {"error": INVALID})
    assert snapshot(sb) == before


def test_register_conflicts_in_order(sb):
    u = sb.make_user()
    fresh = reg_body(sb)
    cases = [
        # all three taken: username is reported first
        ({"username": u["username"], "email": u["email"],
          "extension": u["extension"]}, "Username already exists"),
        ({"email": u["email"], "extension": u["extension"]},
         "Email already exists"),
        ({"extension": u["extension"]}, "Extension already exists"),
    ]
    for change, text in cases:
        body = dict(fresh, **change)
        before = snapshot(sb)
        expect(sb.req("POST", "/api/register", json=body), 409,
               {"error": text})
        assert snapshot(sb) == before


# ---- refresh

def test_refresh_new_jti_old_token_valid_until_logout(sb):
    u = sb.make_user()
    old = u["token"]
    data = expect(sb.req("POST", "/api/refresh", token=old), 200)
    assert list(data) == ["success", "token"]
    assert data["success"] is True
    new = data["token"]
    c_old, c_new = token_parts(old)[1], token_parts(new)[1]
    assert c_new["jti"] != c_old["jti"]
    assert c_new["user_id"] == c_old["user_id"]
    assert c_new["gen"] == c_old["gen"]
    assert c_new["exp"] >= c_old["exp"]
    for t in (old, new):
        expect(sb.req("GET", "/protected/profile", token=t), 200)
    expect(sb.req("POST", "/protected/logout", token=new), 200)
    for t in (old, new):
        expect(sb.req("GET", "/protected/profile", token=t), 401,
               {"error": "Invalid token: token has been revoked"})
        expect(sb.req("POST", "/api/refresh", token=t), 401,
               {"error": "Invalid token: token has been revoked"})


def test_refresh_errors(sb):
    expect(sb.req("POST", "/api/refresh"), 401,
           {"error": "Authorization header required"})
    expect(sb.req("POST", "/api/refresh", headers={"Authorization": "Bear"}),
           401, {"error": "Invalid authorization header format"})
    expect(sb.req("POST", "/api/refresh", token="junk"), 401,
           {"error": "Invalid token: token is malformed"})


# ---- tokens

def forged(sb, user, alg="HS256", secret=None, **changes):
    claims = dict(claims_of(sb, user))
    claims.update(changes)
    for k in [k for k, v in changes.items() if v is None]:
        del claims[k]
    return make_token(secret or sb.env["JWT_SECRET"], claims, alg=alg)


def test_forged_token_with_the_secret_is_accepted(sb):
    # The control for the cases below: the hand-built token format is right.
    u = sb.make_user()
    now = int(time.time())
    t = forged(sb, u, iat=now, nbf=now, exp=now + 600, jti="ab" * 16)
    expect(sb.req("GET", "/protected/profile", token=t), 200)


HEADER_CASES = [
    (None, "Authorization header required"),
    ("", "Authorization header required"),
    ("Basic dXNlcjpwYXNz", "Invalid authorization header format"),
    ("bearer {token}", "Invalid authorization header format"),
    ("BEARER {token}", "Invalid authorization header format"),
    ("Bearer{token}", "Invalid authorization header format"),
    ("Token {token}", "Invalid authorization header format"),
    # Through nginx, which trims trailing blanks, "Bearer " is "Bearer":
    # a header with nothing after the scheme.
    ("Bearer", "Token required"),
    ("Bearer ", "Token required"),
    ("Bearer   ", "Token required"),
    # "Bearer <token>" has exactly one blank.
    ("Bearer {token} extra", "Invalid authorization header format"),
    ("Bearer  {token}", "Invalid authorization header format"),
]


@pytest.mark.parametrize("header,text", HEADER_CASES)
def test_authorization_header_forms(sb, header, text):
    u = sb.make_user()
    h = {} if header is None else {
        "Authorization": header.format(token=u["token"])}
    expect(sb.req("GET", "/protected/profile", headers=h), 401,
           {"error": text})


def test_token_cases(sb):
    u = sb.make_user()
    now = int(time.time())
    cases = [
        ("garbage", "token is malformed"),
        ("a.b.c", "token is malformed"),
        (u["token"] + "x", "signature is invalid"),
        (forged(sb, u, secret="another-secret-of-some-length-000"),
         "signature is invalid"),
        (forged(sb, u, alg="none"), "signing method none is invalid"),
        (forged(sb, u, alg="HS512"), "signing method HS512 is invalid"),
        (forged(sb, u, alg="HS384"), "signing method HS384 is invalid"),
        (forged(sb, u, iat=now - 7200, nbf=now - 7200, exp=now - 10),
         "token is expired"),
        (forged(sb, u, nbf=now + 3600), "token is not valid yet"),
        (forged(sb, u, gen=claims_of(sb, u)["gen"] + 1),
         "token has been revoked"),
        (forged(sb, u, iss="someone-else"), "token has invalid issuer"),
        (forged(sb, u, gen=None), "token claim 'gen' is missing or invalid"),
        (forged(sb, u, user_id="1"),
         "token claim 'user_id' is missing or invalid"),
        (forged(sb, u, user_id=10 ** 9), "user no longer exists"),
    ]
    # The original payload re-used with an admin role: the signature breaks.
    h, p, sig = u["token"].split(".")
    tampered = forged(sb, u, role="admin").split(".")[1]
    cases.append((f"{h}.{tampered}.{sig}", "signature is invalid"))
    before = snapshot(sb)
    for token, reason in cases:
        r = sb.req("GET", "/protected/profile", token=token)
        expect(r, 401, {"error": f"Invalid token: {reason}"})
    assert snapshot(sb) == before


def test_role_claim_is_not_trusted(sb):
    # A user token re-signed with role admin (as if the secret leaked only
    # to a reader of old tokens): the gate reads the role from the database.
    u = sb.make_user()
    t = forged(sb, u, role="admin")
    expect(sb.req("GET", "/protected/admin/users", token=t), 403,
           {"error": "Admin access required"})


def test_token_of_deleted_user(sb):
    u = sb.make_user()
    sb.sql("DELETE FROM users WHERE id = ?", (u["id"],))
    expect(sb.req("GET", "/protected/profile", token=u["token"]), 401,
           {"error": "Invalid token: user no longer exists"})
    expect(sb.req("POST", "/api/refresh", token=u["token"]), 401,
           {"error": "Invalid token: user no longer exists"})
