"""Plain CGI as on shared hosting: Apache httpd (mod_cgid, mod_rewrite),
started unprivileged on a free loopback port with a config of its own, the
programs copied into the web root's cgi-bin/ and cli/shared-hosting/htaccess
as its .htaccess. The same auth, user and admin checks run against it and
against nginx with FastCGI, and must give the same answers.

Started as root, Apache runs as nobody (it serves nothing as root): its
tree, the programs and the database then belong to nobody."""

import grp
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

from harness import CONFIG_VARS, REPO, System, StartError, expect

APACHE = shutil.which("apache2") or "/usr/sbin/apache2"
MODULES = Path("/usr/lib/apache2/modules")
PROGRAMS = ("auth", "user", "admin", "calls", "events")

# Every route of the five programs, as (method, pattern). The scenario
# below records which it exercised; the last test compares.
ALL_ROUTES = {
    ("GET", "/health"), ("GET", "/config"), ("POST", "/api/login"),
    ("POST", "/api/register"), ("POST", "/api/refresh"),
    ("GET", "/protected/profile"), ("POST", "/protected/logout"),
    ("PUT", "/protected/status"), ("POST", "/protected/heartbeat"),
    ("GET", "/protected/users/online"), ("GET", "/protected/users/:extension"),
    ("GET", "/protected/debug/auth"), ("POST", "/protected/ws-ticket"),
    ("GET", "/protected/events"),
    ("GET", "/protected/call/logs"), ("POST", "/protected/call/initiate"),
    ("POST", "/protected/call/hangup"), ("POST", "/protected/call/answer"),
    ("GET", "/protected/call/active"), ("GET", "/protected/diagnostics"),
    ("GET", "/protected/test-asterisk"), ("POST", "/api/test-asterisk"),
    ("GET", "/protected/extensions/connected"),
    ("GET", "/protected/extensions/status"),
    ("GET", "/protected/admin/users"), ("POST", "/protected/admin/users"),
    ("PUT", "/protected/admin/users/:id"),
    ("DELETE", "/protected/admin/users/:id"), ("POST", "/config/update"),
}
exercised = {"nginx": set(), "apache": set()}


def _as_nobody():
    """(uid, gid) to run Apache as when we are root, else None."""
    if os.geteuid() != 0:
        return None
    return pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid


class ApacheSystem(System):
    """A System whose front end is Apache running the programs as CGI.
    HTTP helpers (req, login, make_user, ...) are System's."""

    def __init__(self, workdir):
        super().__init__(workdir)
        self.www = self.workdir / "www"
        self.conf = self.workdir / "apache"
        self.owner = _as_nobody()

    def _demote(self):
        if self.owner:
            uid, gid = self.owner
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)

    def _start(self):
        (self.www / "cgi-bin").mkdir(parents=True)
        self.conf.mkdir()
        for name in PROGRAMS:
            shutil.copy2(self._bin("cgi-bin", name), self.www / "cgi-bin")
        # What a host's programs read: the settings file named in the
        # .htaccess, outside the web root.
        env_file = self.workdir / ".env"
        env_file.write_text("".join(
            f"{k}={self.env[k]}\n" for k in CONFIG_VARS
            if k in self.env and k not in ("PORT", "HOST")))
        ht = (REPO / "cli" / "shared-hosting" / "htaccess").read_text()
        ht, n = re.subn(r"^SetEnv ENV_FILE .*$", f"SetEnv ENV_FILE {env_file}",
                        ht, flags=re.M)
        assert n == 1, "the shipped htaccess names no ENV_FILE"
        (self.www / ".htaccess").write_text(ht)
        (self.conf / "httpd.conf").write_text(self._httpd_conf())
        if self.owner:
            for p in [self.workdir, *self.workdir.rglob("*")]:
                os.chown(p, *self.owner, follow_symlinks=False)
            os.chmod(self.workdir, 0o700)

        # As on a host: the operator runs init once, as the site's user.
        r = subprocess.run(
            [str(self._bin("bin", "switchboard")), "init"], cwd=self.workdir,
            env=dict(self.env), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, timeout=60,
            preexec_fn=self._demote)
        if r.returncode != 0:
            raise StartError(f"switchboard init exited {r.returncode}:\n"
                             + r.stdout[-2000:])
        m = re.search(r"^first admin: username \S+, password (\S+)$",
                      r.stdout, re.M)
        self.admin_password = m.group(1) if m else None
        if self.admin_password is None:
            raise StartError("switchboard init printed no admin password")

        with self._log("apache") as err:
            self.procs["apache"] = subprocess.Popen(
                [APACHE, "-f", str(self.conf / "httpd.conf"),
                 "-DFOREGROUND"], cwd=self.workdir, env={"PATH": "/usr/bin:/bin"},
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=err, start_new_session=True, preexec_fn=self._demote)
        deadline = time.monotonic() + 20
        while True:
            self._check_alive()
            try:
                if self.session.get(self.base + "/health",
                                    timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise StartError("apache did not come up:\n"
                                 + self._log_tails())
            time.sleep(0.1)

    def _httpd_conf(self):
        mods = ["mpm_event", "authz_core", "cgid", "rewrite", "env", "mime"]
        c = self.conf
        return "".join(
            f"LoadModule {m}_module {MODULES}/mod_{m}.so\n" for m in mods
        ) + f"""ServerRoot {c}
ServerName 127.0.0.1
Listen 127.0.0.1:{self.port}
PidFile {c}/httpd.pid
DefaultRuntimeDir {c}
Mutex file:{c} default
ScriptSock {c}/cgid.sock
ErrorLog {self.log_dir}/apache-error.log
LogLevel warn
TypesConfig /dev/null
DocumentRoot {self.www}
<Directory />
	AllowOverride None
	Require all denied
</Directory>
# A shared host's web root: its owner's .htaccess decides.
<Directory {self.www}>
	AllowOverride All
	Options None
	Require all granted
</Directory>
# The sanitizers of the test build (a host's programs get nothing).
SetEnv ASAN_OPTIONS {self.env["ASAN_OPTIONS"]}
SetEnv UBSAN_OPTIONS {self.env["UBSAN_OPTIONS"]}
"""

    def _log_tails(self):
        return "\n".join((self.log_dir / n).read_text(errors="replace")[-2000:]
                         for n in ("apache.log", "apache-error.log")
                         if (self.log_dir / n).exists())

    def _check_alive(self):
        p = self.procs["apache"]
        if p.poll() is not None:
            raise StartError(f"apache exited with {p.returncode}:\n"
                             + self._log_tails())

    def stop(self, check_logs=True):
        if self._stopped:
            return
        self._stopped = True
        self.session.close()
        p = self.procs.get("apache")
        if p is not None and p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        if p is not None:
            try:
                os.killpg(p.pid, signal.SIGKILL)  # CGIs left running
            except (ProcessLookupError, PermissionError):
                pass
        try:
            if check_logs:
                self.check_logs()
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def apache():
    if not os.access(APACHE, os.X_OK):
        raise StartError(f"{APACHE} not found (make deps)")
    # Not under pytest's temporary directory: that is private to its
    # user, and Apache may run as nobody.
    s = ApacheSystem(tempfile.mkdtemp(prefix="sb-apache-"))
    s.workdir.mkdir(parents=True, exist_ok=True)
    s.log_dir.mkdir(parents=True, exist_ok=True)
    s.db_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        s._start()
    except BaseException:
        s.stop(check_logs=False)
        raise
    yield s
    s.stop()


@pytest.fixture(params=["nginx", "apache"])
def front(request):
    s = request.getfixturevalue("sb" if request.param == "nginx"
                                else "apache")
    return request.param, s


def call(front, method, route, path=None, token=None, **kw):
    """A request on route (recorded as exercised) at path (default: the
    route itself)."""
    name, s = front
    exercised[name].add((method, route))
    return s.req(method, path or route, token=token, **kw)


def test_public_routes(front):
    name, s = front
    d = expect(call(front, "GET", "/health"), 200)
    assert d["status"] in ("ok", "healthy"), d
    d = expect(call(front, "GET", "/config"), 200)
    assert d["config"]["api_url"] == s.base
    # The route is the PATH_INFO, not the program's URL.
    expect(s.req("GET", "/api/nope"), 404, {"error": "Not found"})
    expect(s.req("GET", "/protected/nope"), 404, {"error": "Not found"})
    r = s.req("DELETE", "/health")
    expect(r, 405, {"error": "Method not allowed"})
    assert r.headers["Allow"] == "GET, OPTIONS"
    expect(s.req("PUT", "/api/login", json={}), 405)


def test_login_refresh_register(front):
    name, s = front
    expect(call(front, "POST", "/api/login",
                json={"username": "admin", "password": "wrong-password"}),
           401)
    d = expect(call(front, "POST", "/api/login",
                    json={"username": "admin",
                          "password": s.admin_password}), 200)
    assert d["user"]["role"] == "admin"
    old = d["token"]
    expect(s.req("POST", "/api/login", data="{not json",
                 headers={"Content-Type": "application/json"}), 400)
    d = expect(call(front, "POST", "/api/refresh", token=old), 200)
    assert d["token"]
    expect(s.req("POST", "/api/refresh"), 401)

    username = f"cgi{os.getpid()}{name}{time.monotonic_ns() % 100000}"
    ext = s.free_extension() if name == "nginx" else \
        str(200000 + time.monotonic_ns() % 700000)
    body = {"username": username, "email": f"{username}@example.test",
            "password": "a-long-password-1", "extension": ext}
    d = expect(call(front, "POST", "/api/register", json=body), 201)
    assert d["user"]["username"] == username
    expect(s.req("POST", "/api/register", json=body), 409)
    d = expect(s.req("POST", "/api/login", json={
        "username": username, "password": "a-long-password-1"}), 200)
    assert d["user"]["role"] == "user"


def test_user_routes(front):
    name, s = front
    u = s.make_user()
    other = s.make_user()
    expect(call(front, "GET", "/protected/profile"), 401)
    expect(call(front, "GET", "/protected/profile",
                token="not.a.token"), 401)
    d = expect(call(front, "GET", "/protected/profile", token=u["token"]),
               200)
    assert d["user"]["username"] == u["username"]
    expect(call(front, "PUT", "/protected/status", token=u["token"],
                json={"status": "busy"}), 200)
    expect(call(front, "PUT", "/protected/status", token=u["token"],
                json={"status": "nonsense"}), 400)
    expect(call(front, "POST", "/protected/heartbeat", token=u["token"]),
           200)
    d = expect(call(front, "GET", "/protected/users/online",
                    token=u["token"]), 200)
    assert isinstance(d["users"], list)
    d = expect(call(front, "GET", "/protected/users/:extension",
                    f"/protected/users/{other['extension']}",
                    token=u["token"]), 200)
    assert d["user"]["username"] == other["username"]
    expect(call(front, "GET", "/protected/users/:extension",
                "/protected/users/999999999", token=u["token"]), 404)
    r = call(front, "GET", "/protected/debug/auth", token=u["token"])
    assert r.status_code in (200, 404), r.text
    # Calls: the relay is not needed to list or to refuse.
    d = expect(call(front, "GET", "/protected/call/logs", token=u["token"]),
               200)
    assert isinstance(d["call_logs"], list), d
    # What the relay knows: a clear JSON error where none runs (a shared
    # host runs no relay).
    for route in ("/protected/extensions/status",
                  "/protected/extensions/connected"):
        r = call(front, "GET", route, token=u["token"])
        if name == "nginx":
            expect(r, 200)
        else:
            expect(r, 502, {"error": "relay is not running"})
    expect(call(front, "POST", "/protected/call/initiate", token=u["token"],
                json={}), 400)
    expect(call(front, "POST", "/protected/call/hangup", token=u["token"],
                json={}), 400)
    expect(call(front, "POST", "/protected/call/answer", token=u["token"],
                json={}), 400, {"error": "Channel is required"})
    d = expect(call(front, "GET", "/protected/call/active",
                    token=u["token"]), 200)
    assert d["active_calls"] == [] and d["count"] == 0, d
    # No AMI link here: said plainly (no relay at all on a shared host).
    d = expect(call(front, "GET", "/protected/diagnostics",
                    token=u["token"]), 200)["diagnostics"]
    assert d["ami_status"] == ("not configured" if name == "nginx"
                               else "disconnected"), d
    assert d["errors"], d
    d = expect(call(front, "GET", "/protected/test-asterisk",
                    token=u["token"]), 200)["results"]
    assert d["tests"]["ami"]["success"] is False, d
    expect(call(front, "POST", "/api/test-asterisk", token=u["token"],
                json={"asteriskHost": "127.0.0.1", "asteriskPort": "1",
                      "asteriskAMIPort": "1"}), 403)
    # The event stream without a relay: where it stands, then what
    # came after, by long-poll.
    d = expect(call(front, "GET", "/protected/events", token=u["token"]),
               200)
    assert d["events"] == [] and d["last_seq"] > 0, d
    expect(s.req("PUT", "/protected/status", token=other["token"],
                 json={"status": "away"}), 200)
    d = expect(call(front, "GET", "/protected/events",
                    f"/protected/events?since={d['last_seq']}"
                    f"&epoch={d['epoch']}&wait=5", token=u["token"]), 200)
    got = [m for m in d["events"] if m["type"] == "user_status"]
    assert got == [{"seq": got[0]["seq"], "type": "user_status",
                    "from": other["extension"], "status": "away",
                    "timestamp": 0}], d
    d = expect(call(front, "POST", "/protected/ws-ticket",
                    token=u["token"]), 200)
    assert len(d["ticket"]) == 43 and d["expires_in"] == 30, d
    expect(call(front, "POST", "/protected/logout", token=u["token"]), 200)
    expect(s.req("GET", "/protected/profile", token=u["token"]), 401)


def test_admin_routes(front):
    name, s = front
    u = s.make_user()
    admin = s.admin_token()
    for method, route, path in (
            ("GET", "/protected/admin/users", None),
            ("POST", "/protected/admin/users", None),
            ("PUT", "/protected/admin/users/:id", "/protected/admin/users/1"),
            ("DELETE", "/protected/admin/users/:id",
             "/protected/admin/users/1"),
            ("POST", "/config/update", None)):
        expect(call(front, method, route, path, token=u["token"], json={}),
               403)
        expect(call(front, method, route, path, json={}), 401)
    d = expect(call(front, "GET", "/protected/admin/users", token=admin),
               200)
    assert u["username"] in [x["username"] for x in d["users"]]
    v = s.make_user()  # POST /protected/admin/users, 201
    exercised[name].add(("POST", "/protected/admin/users"))
    d = expect(call(front, "PUT", "/protected/admin/users/:id",
                    f"/protected/admin/users/{v['id']}", token=admin,
                    json={"email": f"new-{v['email']}"}), 200)
    assert d["user"]["email"] == f"new-{v['email']}"
    expect(call(front, "DELETE", "/protected/admin/users/:id",
                f"/protected/admin/users/{v['id']}", token=admin), 200)
    expect(call(front, "DELETE", "/protected/admin/users/:id",
                f"/protected/admin/users/{v['id']}", token=admin), 404)
    expect(s.req("POST", "/api/login", json={
        "username": v["username"], "password": v["password"]}), 401)
    d = expect(call(front, "POST", "/config/update", token=admin,
                    json={"sip_port": "80a"}), 400)
    assert d["field"] == "sip_port"
    expect(s.req("GET", "/protected/admin/nope", token=admin), 404)


def test_programs_answer_at_their_own_url(apache):
    # No rewrite at all (a host without mod_rewrite): the client asks for
    # the program's URL, REQUEST_URI is /cgi-bin/auth/..., and the route
    # is the PATH_INFO.
    s = apache
    expect(s.req("GET", "/cgi-bin/auth/health"), 200)
    d = expect(s.req("POST", "/cgi-bin/auth/api/login", json={
        "username": "admin", "password": s.admin_password}), 200)
    token = d["token"]
    d = expect(s.req("GET", "/cgi-bin/user/protected/profile",
                     token=token), 200)
    assert d["user"]["username"] == "admin"
    d = expect(s.req("GET", "/cgi-bin/admin/protected/admin/users",
                     token=token), 200)
    assert "admin" in [u["username"] for u in d["users"]]
    expect(s.req("GET", "/cgi-bin/auth/protected/profile", token=token),
           404, {"error": "Not found"})
    expect(s.req("GET", "/cgi-bin/auth"), 404, {"error": "Not found"})
    # A reply sent before the body was read arrives whole.
    r = s.req("PUT", "/cgi-bin/auth/api/login", json={"x": "y" * 10000})
    expect(r, 405, {"error": "Method not allowed"})
    r = s.req("POST", "/cgi-bin/admin/protected/admin/users",
              json={"username": "z" * 20000})
    expect(r, 401)


def test_every_route_was_exercised():
    # Runs last in this module: each front end went through all routes.
    if not any(exercised.values()):
        pytest.skip("only with the checks above (whole module)")
    for name in ("nginx", "apache"):
        assert exercised[name] == ALL_ROUTES, (
            name, sorted(ALL_ROUTES - exercised[name]))
    assert len(ALL_ROUTES) == 29
