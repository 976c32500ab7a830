"""The command-line tool against a running system, plain CGI mode, and
where configuration comes from (.env versus the environment)."""

import hashlib
import hmac
import json
import os
import subprocess

import pytest

from harness import (REPO, b64url, expect, make_token, parse_admin_password,
                     token_parts)


def cli_user_add(s, name, email, ext, password, role=None):
    args = ["user", "add", name, email, ext]
    if role:
        args += ["--role", role]
    return s.cli(*args, input=password + "\n")


def test_init_prints_password_once_and_is_idempotent(start):
    s = start()
    # start() ran init once already: the admin exists and logs in.
    expect(s.req("GET", "/protected/admin/users", token=s.admin_token()), 200)
    r = s.cli("init")
    assert r.returncode == 0
    assert parse_admin_password(r.stdout) is None
    assert "password" not in r.stdout.lower()
    assert s.sql("SELECT count(*) FROM users WHERE role = 'admin'") == [(1,)]
    # The first password still works: nothing was reset.
    s.login("admin", s.admin_password)


def test_init_fresh_directory(tmp_path):
    """First run on a bare machine: secret written to the env file (0600),
    database created and migrated, admin password printed once."""
    build = REPO / os.environ.get("SB_BUILD", "build/san")
    env = {k: v for k, v in os.environ.items()
           if k not in ("JWT_SECRET", "DEBUG", "SWITCHBOARD_DEMO")}
    env.update(ENV_FILE=str(tmp_path / "env"), DB_PATH=str(tmp_path / "db" /
                                                           "voip.db"),
               RUN_DIR=str(tmp_path / "run"))

    def run():
        return subprocess.run([str(build / "bin" / "switchboard"), "init"],
                              env=env, cwd=tmp_path, capture_output=True,
                              text=True, timeout=60)

    r = run()
    assert r.returncode == 0, r.stderr
    pw = parse_admin_password(r.stdout)
    assert pw and len(pw) >= 16
    envfile = tmp_path / "env"
    assert oct(envfile.stat().st_mode & 0o777) == "0o600"
    lines = envfile.read_text().splitlines()
    assert len([l for l in lines if l.startswith("JWT_SECRET=")]) == 1
    assert (tmp_path / "db" / "voip.db").exists()
    assert pw not in envfile.read_text()

    r2 = run()
    assert r2.returncode == 0, r2.stderr
    assert parse_admin_password(r2.stdout) is None
    assert envfile.read_text().splitlines() == lines
    assert pw not in r2.stdout + r2.stderr


def test_cli_user_lifecycle(sb):
    name = "cliuser" + os.urandom(3).hex()
    ext = str(200000 + int.from_bytes(os.urandom(2), "big"))
    r = cli_user_add(sb, name, f"{name}@example.test", ext, "first-pass")
    assert r.returncode == 0, sb.log_text("cli")[-500:]
    assert name in r.stdout
    assert "first-pass" not in r.stdout
    (uid, role, pw_hash) = sb.sql("SELECT id, role, password FROM users "
                                  "WHERE username = ?", (name,))[0]
    assert role == "user" and pw_hash.startswith("$y$")
    token = sb.login(name, "first-pass")
    expect(sb.req("GET", "/protected/profile", token=token), 200)

    r = sb.cli("user", "list")
    assert r.returncode == 0
    rows = [l.split() for l in r.stdout.splitlines()]
    assert rows[0][:2] == ["ID", "USERNAME"]
    assert [str(uid), name, f"{name}@example.test", ext, "user"] in \
        [row[:5] for row in rows]
    assert not any("$y$" in l for l in r.stdout.splitlines())

    r = sb.cli("user", "passwd", name, input="second-pass\n")
    assert r.returncode == 0
    expect(sb.req("POST", "/api/login",
                  json={"username": name, "password": "first-pass"}), 401,
           {"error": "Invalid credentials"})
    # The password change revoked the old tokens.
    expect(sb.req("GET", "/protected/profile", token=token), 401,
           {"error": "Invalid token: token has been revoked"})
    token = sb.login(name, "second-pass")

    r = sb.cli("user", "del", name)
    assert r.returncode == 0
    assert sb.sql("SELECT count(*) FROM users WHERE username = ?",
                  (name,)) == [(0,)]
    expect(sb.req("GET", "/protected/profile", token=token), 401,
           {"error": "Invalid token: user no longer exists"})
    expect(sb.req("POST", "/api/login",
                  json={"username": name, "password": "second-pass"}), 401,
           {"error": "Invalid credentials"})


def test_cli_add_admin(sb):
    name = "cliadm" + os.urandom(3).hex()
    r = cli_user_add(sb, name, f"{name}@example.test",
                     str(300000 + int.from_bytes(os.urandom(2), "big")),
                     "admin-pass", role="admin")
    assert r.returncode == 0
    t = sb.login(name, "admin-pass")
    expect(sb.req("GET", "/protected/admin/users", token=t), 200)


@pytest.mark.parametrize("args,password", [
    (["ab", "ab@example.test", "123456"], "long-enough"),       # username
    (["okname", "not-an-email", "123457"], "long-enough"),      # email
    (["okname", "ok@example.test", "12"], "long-enough"),       # extension
    (["okname", "ok@example.test", "123458"], "short"),          # password
    (["okname", "ok@example.test", "123459", "--role", "root"], "long-enough"),
    (["okname", "ok@example.test"], "long-enough"),              # usage
])
def test_cli_add_refuses_bad_input(sb, args, password):
    n = sb.sql("SELECT count(*) FROM users")
    r = sb.cli("user", "add", *args, input=password + "\n")
    assert r.returncode != 0
    assert sb.sql("SELECT count(*) FROM users") == n


def test_cli_add_duplicate_and_unknown(sb):
    u = sb.make_user()
    n = sb.sql("SELECT count(*) FROM users")
    r = cli_user_add(sb, u["username"], "other@example.test", "654321",
                     "long-enough")
    assert r.returncode != 0
    assert sb.sql("SELECT count(*) FROM users") == n
    assert sb.cli("user", "passwd", "no-such-user",
                  input="long-enough\n").returncode != 0
    assert sb.cli("user", "del", "no-such-user").returncode != 0
    assert sb.cli("bogus").returncode != 0


# ---- plain CGI

def cgi(sb, program, method, uri, body=b"", headers=None):
    """Run a program as plain CGI; (status, headers, body)."""
    path, _, query = uri.partition("?")
    env = dict(sb.env)
    env.update(GATEWAY_INTERFACE="CGI/1.1", REQUEST_METHOD=method,
               REQUEST_URI=uri, QUERY_STRING=query, SCRIPT_NAME=path,
               SERVER_PROTOCOL="HTTP/1.1", REMOTE_ADDR="192.0.2.7",
               HTTP_HOST="cgi.example:8000", SERVER_NAME="cgi.example",
               SERVER_PORT="8000")
    if body:
        env.update(CONTENT_LENGTH=str(len(body)),
                   CONTENT_TYPE="application/json")
    for k, v in (headers or {}).items():
        env["HTTP_" + k.upper().replace("-", "_")] = v
    p = subprocess.run([str(sb.build / "cgi-bin" / program)], input=body,
                       env=env, cwd=sb.workdir, capture_output=True,
                       timeout=30)
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    head, _, payload = p.stdout.partition(b"\r\n\r\n")
    hdrs = {}
    for line in head.decode().split("\r\n"):
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    status = int(hdrs.get("status", "200").split()[0])
    return status, hdrs, payload


def test_plain_cgi_health(sb):
    status, hdrs, body = cgi(sb, "auth", "GET", "/health?x=1")
    assert status == 200
    assert hdrs["content-type"].startswith("application/json")
    data = json.loads(body)
    assert list(data) == ["response_time_ms", "service", "status",
                          "timestamp"]
    status, _, body = cgi(sb, "auth", "GET", "/nope")
    assert (status, json.loads(body)) == (404, {"error": "Not found"})


def test_plain_cgi_login_and_profile(sb):
    u = sb.make_user()
    body = json.dumps({"username": u["username"],
                       "password": u["password"]}).encode()
    status, _, out = cgi(sb, "auth", "POST", "/api/login", body)
    assert status == 200, out
    data = json.loads(out)
    assert data["user"]["id"] == u["id"]
    status, _, out = cgi(sb, "user", "GET", "/protected/profile",
                         headers={"Authorization": "Bearer " + data["token"]})
    assert status == 200
    assert json.loads(out)["user"]["username"] == u["username"]
    # Only reachable without nginx (which trims the blank): an empty token.
    status, _, out = cgi(sb, "user", "GET", "/protected/profile",
                         headers={"Authorization": "Bearer "})
    assert (status, json.loads(out)) == (401, {"error": "Token required"})
    # The URLs of /config never come from Host (cgi.example here): with no
    # PUBLIC_URL and no SERVER_ADDR, the server is localhost.
    status, _, out = cgi(sb, "auth", "GET", "/config")
    c = json.loads(out)["config"]
    assert c["api_url"] == "http://localhost:8000"
    assert c["ws_url"] == "ws://localhost:8000/ws"


# ---- .env versus the environment

def test_env_file_and_environment_precedence(start, tmp_path):
    envfile = tmp_path / "switchboard.env"
    envfile.write_text(
        "# comment\n"
        "ASTERISK_HOST=pbx-from-dotenv.example\n"
        "SIP_PORT=7000\n"
        "export SERVICE_NAME=\"from dotenv\"\n"
        "JWT_EXPIRY_HOURS=2   # inline comment\n"
        "JWT_SECRET=dotenv-secret-that-the-environment-overrides\n"
        "CORS_ORIGINS='http://dotenv.example'\n")
    s = start(env={"ENV_FILE": str(envfile), "SIP_PORT": "9000",
                   "CORS_ORIGINS": "http://env.example"})
    c = expect(s.req("GET", "/config"), 200)["config"]
    # From the file:
    assert c["asterisk"]["host"] == "pbx-from-dotenv.example"
    assert c["service"] == "from dotenv"
    # The environment wins over the file:
    assert c["asterisk"]["ws_url"] == \
        "ws://pbx-from-dotenv.example:9000/asterisk/ws"
    r = s.req("GET", "/health", headers={"Origin": "http://env.example"})
    assert r.headers.get("Access-Control-Allow-Origin") == "http://env.example"
    r = s.req("GET", "/health", headers={"Origin": "http://dotenv.example"})
    assert "Access-Control-Allow-Origin" not in r.headers

    token = s.admin_token()
    claims = token_parts(token)[1]
    assert claims["exp"] - claims["iat"] == 2 * 3600
    # Signed with the environment's secret, not the file's.
    signing, sig = token.rsplit(".", 1)
    want = b64url(hmac.new(s.env["JWT_SECRET"].encode(), signing.encode(),
                           hashlib.sha256).digest())
    assert sig == want
    bad = make_token("dotenv-secret-that-the-environment-overrides", claims)
    expect(s.req("GET", "/protected/profile", token=bad), 401,
           {"error": "Invalid token: signature is invalid"})


def test_bad_configuration_stops_a_program(start, tmp_path):
    envfile = tmp_path / "bad.env"
    envfile.write_text("PORT=eighty\n")
    build = REPO / os.environ.get("SB_BUILD", "build/san")
    env = dict(os.environ, ENV_FILE=str(envfile),
               JWT_SECRET="x" * 32, DB_PATH=str(tmp_path / "db"),
               RUN_DIR=str(tmp_path / "run"))
    p = subprocess.run([str(build / "bin" / "switchboard"), "init"], env=env,
                       cwd=tmp_path, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode != 0
    assert "PORT" in p.stderr
