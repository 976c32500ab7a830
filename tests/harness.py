"""Start a whole switchboard system for end-to-end tests.

start_system() runs what `make run` runs, from a build directory, on a free
loopback port with its database and run directory under a work directory:
`switchboard init`, one `spawn-fcgi -n` per FastCGI program, the relay and
a real nginx with the config cli/nginx-conf.sh renders. Tests then talk to
it over HTTP exactly as a browser would.

The build is the sanitized one: ASan/UBSan abort a program at the first
report and write it to the program's log, and System.stop() fails when any
log under RUN_DIR/log holds a report.

The database engine is SQLite (a file in the work directory) unless
SB_DB_ENGINE=postgres: then one PostgreSQL cluster serves the whole
session (tests/pgcluster.sh, a Unix socket only, in a directory of its
own), and each system gets a fresh database of it in DATABASE_URL instead
of DB_PATH. System.sql() reads and writes either the same way.
"""

import base64
import contextlib
import hashlib
import hmac
import itertools
import json as jsonlib
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import string
import subprocess
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
DEFAULT_BUILD = "build/san"

# Variables the programs read (brief, "Shared decisions"): never inherited
# from the shell running the tests, so a developer's setup cannot leak in.
CONFIG_VARS = (
    "PORT", "HOST", "JWT_SECRET", "JWT_EXPIRY_HOURS", "DB_PATH", "RUN_DIR",
    "ASTERISK_HOST", "ASTERISK_AMI_PORT", "ASTERISK_AMI_USERNAME",
    "ASTERISK_AMI_SECRET", "SIP_DOMAIN", "SIP_PORT", "CORS_ORIGINS", "DEBUG",
    "SWITCHBOARD_DEMO", "WS_LEGACY_EXTENSION_AUTH", "CALL_RING_TIMEOUT_S",
    "FCGI_CHILDREN", "ENV_FILE", "ENVIRONMENT", "SERVICE_NAME",
    "PUBLIC_HOST", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS",
    "NGINX_LOGIN_RATE", "CALL_DISCONNECT_GRACE_S", "PRESENCE_STALE_S",
    "CALL_ATTEMPTS_PER_MIN",
    "NGINX_REGISTER_RATE", "PUBLIC_URL", "TRUSTED_PROXIES",
    "REGISTER_PER_ADDR_HOUR", "NOTIFY_RETENTION_S", "WS_MAX_SOCKETS_PER_USER",
    "WS_RX_FRAMES_PER_S", "WS_RX_BYTES_PER_S", "DATABASE_URL",
    "AMI_HOST", "AMI_PORT", "AMI_USERNAME", "AMI_SECRET", "AMI_EVENTS",
    "AMI_PING_S", "AMI_TIMEOUT_MS", "AMI_RECONNECT_MIN_MS",
    "AMI_RECONNECT_MAX_MS", "ASTERISK_CHANNEL_TEMPLATE", "ASTERISK_CONTEXT",
    "ASTERISK_ANSWER_CONTEXT",
)

# The key of the advisory lock every PostgreSQL writer takes first (the
# same constant as PG_WRITERS_KEY in lib/db_pg.c).
PG_WRITERS_KEY = 7526366843920372530

# "sqlite" (the default) or "postgres": the engine every system is given.
DB_ENGINE = os.environ.get("SB_DB_ENGINE", "sqlite")
if DB_ENGINE not in ("sqlite", "postgres"):
    raise RuntimeError(f"SB_DB_ENGINE={DB_ENGINE!r}: sqlite or postgres")

SANITIZER_MARKS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",
)

# Base64url of '{"alg"' (every JWT header starts so), yescrypt and bcrypt.
SECRET_MARKS = ("eyJhbGciOi", "$y$", "$2a$", "$2b$")

START_TIMEOUT_S = 20
STOP_TIMEOUT_S = 10

_names = itertools.count(1)

# Debian keeps nginx in /usr/sbin, which is not on a normal user's PATH.
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SPAWN_FCGI = shutil.which("spawn-fcgi") or "/usr/bin/spawn-fcgi"


# Times in JSON and in the database: RFC 3339 UTC with microseconds.
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")

# UserResponse (contract 1.5), in its order.
USER_KEYS = ["id", "username", "email", "extension", "status", "role",
             "is_online", "last_login", "last_seen", "created_at", "online"]


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_token(secret, claims, alg="HS256", header=None):
    """A JWT built by hand: HS256/384/512 with secret, or alg "none"
    (empty signature)."""
    header = header if header is not None else {"alg": alg, "typ": "JWT"}
    signing = (b64url(jsonlib.dumps(header, separators=(",", ":")).encode())
               + "." + b64url(jsonlib.dumps(claims,
                                            separators=(",", ":")).encode()))
    if alg == "none":
        return signing + "."
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384,
              "HS512": hashlib.sha512}[alg]
    sig = hmac.new(secret.encode(), signing.encode(), digest).digest()
    return signing + "." + b64url(sig)


def token_parts(token):
    """(header, claims) of a JWT, unverified."""
    h, p, _ = token.split(".")
    return jsonlib.loads(b64url_decode(h)), jsonlib.loads(b64url_decode(p))


def free_port():
    """A loopback TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _random_text(n):
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(n))


def connectable(path):
    """Whether a Unix stream socket at path accepts a connection."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(1)
        try:
            s.connect(str(path))
            return True
        except OSError:
            return False


def _children(pid):
    """Direct children of pid (from /proc)."""
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def parse_admin_password(text):
    """The password `switchboard init` printed ("first admin: username
    admin, password XXXX"), or None when it printed none."""
    m = re.search(r"^first admin: username (\S+), password (\S+)$", text,
                  re.M)
    return m.group(2) if m else None


class StartError(RuntimeError):
    pass


class PgCluster:
    """A throwaway PostgreSQL cluster (tests/pgcluster.sh) in a directory
    of /tmp: pytest's own temporary directory is private to root, and the
    server runs as nobody when the tests run as root."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="sb-pg.", dir="/tmp"))
        self._names = itertools.count(1)
        self.user = pwd.getpwuid(os.getuid()).pw_name
        r = subprocess.run([str(REPO / "tests" / "pgcluster.sh"), "start",
                            str(self.dir)], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=120)
        if r.returncode != 0:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise StartError("PostgreSQL cluster did not start:\n" + r.stdout)

    def url(self, name):
        # The cluster's superuser is whoever started it (pgcluster.sh);
        # named, because a program may run as another user (Apache's
        # nobody) and libpq's default role is the OS user's name.
        return f"postgresql://{self.user}@/{name}?host={self.dir}"

    def connect(self, name="postgres"):
        import psycopg2  # only the postgres runs need it
        return psycopg2.connect(self.url(name))

    def create_database(self):
        """A new empty database; its URL."""
        name = f"sb_{next(self._names)}"
        con = self.connect()
        try:
            con.autocommit = True
            with con.cursor() as cur:
                # Our own name, not input: there is no parameter for it.
                cur.execute(f"CREATE DATABASE {name}")
        finally:
            con.close()
        return self.url(name)

    def _ctl(self, cmd):
        subprocess.run([str(REPO / "tests" / "pgcluster.sh"), cmd,
                        str(self.dir)], check=True, timeout=120,
                       stdout=subprocess.DEVNULL)

    def stop_server(self):
        """Stop the server, keeping its files (start_server again)."""
        self._ctl("stop")

    def start_server(self):
        self._ctl("start")

    def stop(self):
        subprocess.run([str(REPO / "tests" / "pgcluster.sh"), "stop",
                        str(self.dir)], timeout=120,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(self.dir, ignore_errors=True)


_pg = None


def pg_cluster():
    """The session's cluster, started on first use; pg_cluster_stop()
    (conftest, at the session's end) stops it."""
    global _pg
    if _pg is None:
        _pg = PgCluster()
    return _pg


def pg_cluster_stop():
    global _pg
    if _pg is not None:
        _pg.stop()
        _pg = None


def _pg_query(query):
    """query with sqlite3's ? placeholders in psycopg2's %s form (outside
    quotes), and its literal % doubled."""
    out, quote = [], None
    for ch in query:
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "?":
            out.append("%s")
            continue
        if ch == "%":
            out.append("%%")
            continue
        out.append(ch)
    return "".join(out)


class System:
    """One running system; see start_system()."""

    def __init__(self, workdir, env=None, build=None, join=None):
        self.workdir = Path(workdir).resolve()
        # join: another running System whose database and token secret
        # this one shares, as a second node (PostgreSQL).
        self.join = join
        build = build or os.environ.get("SB_BUILD") or DEFAULT_BUILD
        self.build = (REPO / build).resolve()
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/ws"
        self.run_dir = self.workdir / "run"
        self.log_dir = self.run_dir / "log"
        self.procs = {}  # name -> Popen
        self.admin_username = "admin"
        self.admin_password = None
        self._admin_token = None
        self._stopped = False
        self.session = requests.Session()

        e = {k: v for k, v in os.environ.items() if k not in CONFIG_VARS}
        e.update({
            "PORT": str(self.port),
            "HOST": "127.0.0.1",
            "JWT_SECRET": _random_text(48),
            "DB_PATH": str(self.workdir / "voip.db"),
            "RUN_DIR": str(self.run_dir),
            "FCGI_CHILDREN": "2",
            # Users logged in by one test stay online for the later tests
            # of a long session; the presence sweep has tests of its own.
            "PRESENCE_STALE_S": "86400",
            # A call one test leaves ringing must not time out (and write
            # its end to the stream) during a later test's before/after
            # comparison; the ring timeout has tests of their own.
            "CALL_RING_TIMEOUT_S": "3600",
            # Every test registers from 127.0.0.1; the limit has tests of
            # its own.
            "REGISTER_PER_ADDR_HOUR": "100000",
            # Absent unless a test writes it: the repo's own .env must
            # never reach a test system.
            "ENV_FILE": str(self.workdir / ".env"),
            "ASAN_OPTIONS": "abort_on_error=1:detect_leaks=1",
            "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
        })
        if join is not None:
            e["JWT_SECRET"] = join.env["JWT_SECRET"]
            e["DATABASE_URL"] = join.env["DATABASE_URL"]
            e.pop("DB_PATH", None)
        e.update(env or {})
        # PostgreSQL: a fresh database of the session's cluster, unless
        # the test chose the target itself.
        if (DB_ENGINE == "postgres" and "DATABASE_URL" not in (env or {})
                and join is None):
            e["DATABASE_URL"] = pg_cluster().create_database()
            if "DB_PATH" not in (env or {}):
                del e["DB_PATH"]
        self.env = e
        self.db_url = e.get("DATABASE_URL", "")
        self.db_path = Path(e.get("DB_PATH", self.workdir / "voip.db"))
        if e["RUN_DIR"] != str(self.run_dir):
            self.run_dir = Path(e["RUN_DIR"])
            self.log_dir = self.run_dir / "log"

    # ---- starting and stopping

    def _bin(self, *parts):
        return self.build.joinpath(*parts)

    def programs(self):
        """The FastCGI programs the build has, by name."""
        d = self._bin("cgi-bin")
        if not d.is_dir():
            return []
        return sorted(p.name for p in d.iterdir()
                      if p.is_file() and os.access(p, os.X_OK)
                      and "." not in p.name)

    def _log(self, name):
        return open(self.log_dir / f"{name}.log", "ab")

    def _spawn(self, name, argv, log):
        with self._log(log) as err:
            p = subprocess.Popen(
                argv, env=self.env, cwd=self.workdir,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=err, start_new_session=True)
        self.procs[name] = p
        return p

    def cli(self, *args, input=None, env=None, timeout=60):
        """Run the switchboard command-line tool; CompletedProcess (text)."""
        e = dict(self.env)
        e.update(env or {})
        with self._log("cli") as err:
            return subprocess.run(
                [str(self._bin("bin", "switchboard")), *args], env=e,
                cwd=self.workdir, input=input, stdout=subprocess.PIPE,
                stderr=err, text=True, timeout=timeout)

    def start(self):
        if not self._bin("bin", "switchboard").exists():
            raise StartError(f"{self.build}: not built (make B=... all)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "nginx").mkdir(exist_ok=True)
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._start()
        except BaseException:
            self.stop(check_logs=False)
            raise
        return self

    def _start(self):
        if self.join is not None:
            # A second node: the database is the first one's, set up.
            self.admin_password = self.join.admin_password
        else:
            r = self.cli("init")
            if r.returncode != 0:
                raise StartError(f"switchboard init exited {r.returncode}:"
                                 "\n" + self.log_text("cli")[-2000:])
            self.admin_password = parse_admin_password(r.stdout)
            if self.admin_password is None:
                raise StartError("switchboard init printed no admin "
                                 "password")

        # Tests log in and register far more often than people: nginx's
        # per-address limits are raised unless a test asks for a value.
        conf_env = dict(os.environ)
        conf_env["NGINX_LOGIN_RATE"] = self.env.get("NGINX_LOGIN_RATE",
                                                    "10000r/s")
        conf_env["NGINX_REGISTER_RATE"] = self.env.get(
            "NGINX_REGISTER_RATE", "10000r/s")
        conf = subprocess.run(
            [str(REPO / "cli" / "nginx-conf.sh"), str(self.run_dir),
             "127.0.0.1", str(self.port), str(REPO / "nginx" / "html")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=conf_env, check=True)
        (self.run_dir / "nginx.conf").write_text(conf.stdout)

        progs = self.programs()
        if not progs:
            raise StartError(f"{self.build}/cgi-bin: no programs")
        for name in progs:
            sock = self.run_dir / f"fcgi-{name}.sock"
            if sock.exists():
                sock.unlink()
            self._spawn(name, [SPAWN_FCGI, "-n", "-s", str(sock), "-M",
                               "0600", "--", str(self._bin("cgi-bin", name))],
                        name)
        if self._bin("bin", "switchboard-relay").exists():
            self._spawn("relay", [str(self._bin("bin", "switchboard-relay"))],
                        "relay")
        self._spawn("nginx", [NGINX] + self.nginx_args()
                    + ["-g", "daemon off;"], "nginx")

        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            self._check_alive()
            try:
                r = self.session.get(self.base + "/health", timeout=2)
                if (r.status_code == 200 and self._relay_ready()
                        and self._programs_ready(progs)):
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise StartError("system did not come up in "
                                 f"{START_TIMEOUT_S} s:\n" + self._log_tails())
            time.sleep(0.1)

    def nginx_args(self):
        return ["-c", str(self.run_dir / "nginx.conf"), "-p",
                str(self.run_dir) + "/", "-e",
                str(self.log_dir / "nginx-error.log")]

    def _check_alive(self):
        for name, p in self.procs.items():
            if p.poll() is not None:
                raise StartError(f"{name} exited with {p.returncode} at "
                                 "start:\n" + self._log_tails())

    def _log_tails(self):
        out = []
        for f in sorted(self.log_dir.glob("*.log")):
            text = f.read_text(errors="replace")[-1500:]
            if text:
                out.append(f"--- {f.name}\n{text}")
        return "\n".join(out)

    def _programs_ready(self, progs):
        """Each program has forked its workers: it got past loading the
        configuration and opening the database."""
        return all(self.workers(name) for name in progs)

    def _relay_ready(self):
        if "relay" not in self.procs:
            return True
        return all(connectable(self.run_dir / s)
                   for s in ("relay.sock", "ctl.sock"))

    def _terminate(self, names):
        for name in names:
            p = self.procs.get(name)
            if p is None or p.poll() is not None:
                continue
            try:
                # The program's whole group: its forked workers too.
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for name in names:
            p = self.procs.get(name)
            if p is None:
                continue
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()
            # Workers that outlived their parent.
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def stop(self, check_logs=True):
        """Stop everything; then fail if a log holds a sanitizer report."""
        if self._stopped:
            return
        self._stopped = True
        self.session.close()
        # nginx first: no new requests while the programs go away.
        order = ["nginx"] + [n for n in self.procs if n not in ("nginx",)]
        self._terminate(order)
        if check_logs:
            self.check_logs()

    def check_logs(self):
        """AssertionError naming the log when any holds a sanitizer report."""
        bad = []
        for f in sorted(self.log_dir.glob("*.log")):
            text = f.read_text(errors="replace")
            for mark in SANITIZER_MARKS:
                i = text.find(mark)
                if i >= 0:
                    bad.append(f"{f}: {mark}\n{text[max(0, i - 200):i + 3000]}")
                    break
        # No log line may carry a credential: a JWT (header of ours or of a
        # forged token), a password hash, or the secret itself.
        secrets_ = {self.env.get(k, ""): k
                    for k in ("JWT_SECRET", "AMI_SECRET")}
        # And a password in DATABASE_URL (postgresql://user:password@...).
        m = re.match(r"^postgres(?:ql)?://[^:/@]*:([^@/]+)@",
                     self.env.get("DATABASE_URL", ""))
        if m:
            secrets_[m.group(1)] = "the DATABASE_URL password"
        secrets_.pop("", None)
        for f in sorted(self.log_dir.glob("*.log")):
            text = f.read_text(errors="replace")
            for mark in SECRET_MARKS + tuple(secrets_):
                if mark in text:
                    bad.append(f"{f}: holds a credential "
                               f"({secrets_.get(mark, mark)})")
        if bad:
            raise AssertionError("sanitizer report or credential in logs:\n"
                                 + "\n".join(bad))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # ---- HTTP and the database

    def req(self, method, path, token=None, json=None, data=None,
            headers=None):
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        return self.session.request(method, self.base + path, json=json,
                                    data=data, headers=h, timeout=30)

    @property
    def engine(self):
        return "postgres" if self.db_url else "sqlite"

    def db_connect(self):
        """A DB-API connection to the system's database, whichever engine:
        its placeholders are sqlite3's ? only through sql()."""
        if self.db_url:
            import psycopg2
            return psycopg2.connect(self.db_url)
        return sqlite3.connect(self.db_path, timeout=10)

    def sql(self, query, params=()):
        """Run one statement (? placeholders, SQL both engines read) on the
        database and commit; its rows (none for a statement without)."""
        con = self.db_connect()
        try:
            if self.db_url:
                with con.cursor() as cur:
                    cur.execute(_pg_query(query), tuple(params))
                    rows = cur.fetchall() if cur.description else []
            else:
                rows = con.execute(query, params).fetchall()
            con.commit()
            return rows
        finally:
            con.close()

    def sql_many(self, query, rows):
        """Run one statement (? placeholders) once per row of parameters,
        in one transaction."""
        con = self.db_connect()
        try:
            if self.db_url:
                with con.cursor() as cur:
                    cur.executemany(_pg_query(query), [tuple(r) for r in rows])
            else:
                con.executemany(query, rows)
            con.commit()
        finally:
            con.close()

    def notify_insert(self, kind, value, payload, created_at=None):
        """A notify row put in by hand, as a program would write it; its
        id. The id is given: the programs draw it from notify_stream, not
        from the table (see lib/notify.c)."""
        if created_at is None:
            created_at = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z",
                                       time.gmtime())
        return self.sql(
            "INSERT INTO notify (id, created_at, target_kind, target_value, "
            "payload) VALUES ((SELECT COALESCE(max(id), 0) + 1 FROM notify), "
            "?, ?, ?, ?) RETURNING id",
            (created_at, kind, value, payload))[0][0]

    @contextlib.contextmanager
    def write_lock(self):
        """Hold the database's write lock, as a writer between BEGIN and
        COMMIT does: SQLite's BEGIN IMMEDIATE, or PostgreSQL's writers'
        advisory lock (PG_WRITERS_KEY in lib/db_pg.c)."""
        con = self.db_connect()
        try:
            if self.db_url:
                con.autocommit = True
                with con.cursor() as cur:
                    cur.execute("BEGIN")
                    cur.execute("SELECT pg_advisory_xact_lock(%s)",
                                (PG_WRITERS_KEY,))
                    yield
                    cur.execute("COMMIT")
            else:
                con.isolation_level = None
                con.execute("BEGIN IMMEDIATE")
                yield
                con.execute("COMMIT")
        finally:
            con.close()

    def tables(self):
        """The names of the database's tables."""
        if self.db_url:
            q = ("SELECT tablename FROM pg_tables "
                 "WHERE schemaname = current_schema()")
        else:
            q = "SELECT name FROM sqlite_master WHERE type = 'table'"
        return sorted(r[0] for r in self.sql(q))

    def login(self, username, password):
        r = self.req("POST", "/api/login",
                     json={"username": username, "password": password})
        if r.status_code != 200:
            raise AssertionError(f"login {username}: {r.status_code} "
                                 f"{r.text}")
        return r.json()["token"]

    def admin_token(self):
        """A valid token of the first admin (logs in again after a
        revocation)."""
        t = self._admin_token
        if t is not None:
            r = self.req("GET", "/protected/profile", token=t)
            if r.status_code == 200:
                return t
        self._admin_token = self.login(self.admin_username,
                                       self.admin_password)
        return self._admin_token

    def free_extension(self):
        """A 6-digit extension no user has now."""
        while True:
            ext = str(100000 + secrets.randbelow(900000))
            if not self.sql("SELECT 1 FROM users WHERE extension = ?",
                            (ext,)):
                return ext

    def make_user(self, role="user"):
        """A new user created through the admin API, logged in:
        dict(id, username, email, extension, password, token, role)."""
        for _ in range(20):
            n = next(_names)
            username = f"u{n}{secrets.token_hex(3)}"
            ext = str(10000 + secrets.randbelow(990000))
            password = _random_text(16)
            body = {"username": username, "email": f"{username}@example.test",
                    "password": password, "extension": ext, "role": role}
            r = self.req("POST", "/protected/admin/users",
                         token=self.admin_token(), json=body)
            if r.status_code == 409:
                continue  # extension taken: draw again
            if r.status_code != 201:
                raise AssertionError(f"create user: {r.status_code} {r.text}")
            u = r.json()["user"]
            return {"id": u["id"], "username": username,
                    "email": body["email"], "extension": ext,
                    "password": password, "role": role,
                    "token": self.login(username, password)}
        raise AssertionError("create user: no free extension found")

    # ---- processes

    def pid(self, name):
        p = self.procs.get(name)
        return p.pid if p is not None and p.poll() is None else None

    def workers(self, name):
        """Pids of the FastCGI workers program name has forked."""
        pid = self.pid(name)
        return _children(pid) if pid else []

    def relay_pid(self):
        return self.pid("relay")

    def relay_kill(self, sig=signal.SIGTERM):
        """Signal the relay and wait until it has exited."""
        p = self.procs.get("relay")
        if p is None or p.poll() is not None:
            return
        p.send_signal(sig)
        try:
            p.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            raise AssertionError(f"relay ignored signal {sig} for "
                                 f"{STOP_TIMEOUT_S} s")

    def relay_start(self):
        """Start the relay again and wait until its sockets answer."""
        if self.relay_pid() is not None:
            raise AssertionError("relay is already running")
        p = self._spawn("relay", [str(self._bin("bin", "switchboard-relay"))],
                        "relay")
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._relay_ready():
            if p.poll() is not None:
                raise AssertionError(f"relay exited with {p.returncode}:\n"
                                     + self.log_text("relay")[-2000:])
            if time.monotonic() > deadline:
                raise AssertionError("relay sockets not answering after "
                                     f"{START_TIMEOUT_S} s")
            time.sleep(0.05)

    def log_text(self, name):
        f = self.log_dir / f"{name}.log"
        return f.read_text(errors="replace") if f.exists() else ""


# ---- assertions shared by the test modules

def expect(r, status, body=None):
    """r has exactly this status, a JSON content type and, when given,
    exactly this JSON body (key order included). Returns the JSON."""
    assert r.status_code == status, (
        f"{r.request.method} {r.request.path_url}: {r.status_code} "
        f"{r.text!r}, expected {status}")
    assert r.headers.get("Content-Type", "").startswith("application/json"), (
        f"content type {r.headers.get('Content-Type')!r}: {r.text!r}")
    data = r.json()
    if body is not None:
        assert data == body, f"{data!r} != {body!r}"
        assert list(data) == list(body), f"key order {list(data)}"
    return data


def snapshot(sb):
    """What a refused request must leave as it was. The relays' own
    bookkeeping (heartbeats, socket counts, mail) moves on its own."""
    tables = [t for t in sb.tables() if t not in (
        "login_attempts", "notify_stream", "sqlite_sequence",
        "relay_instances", "relay_sockets", "relay_mail")]
    out = {}
    for t in tables:
        if t in ("notify", "audit_log", "call_logs"):
            out[t] = sb.sql(f"SELECT max(id) FROM {t}")
        else:
            out[t] = sb.sql(f"SELECT * FROM {t} ORDER BY 1")
    return out


def start_system(workdir, env=None, build=None, join=None):
    """Start a system under workdir (see the module docstring). build
    defaults to $SB_BUILD, else build/san, relative to the repository.
    join: a running System whose database this one shares (a node)."""
    for tool in (NGINX, SPAWN_FCGI):
        if not os.access(tool, os.X_OK):
            raise StartError(f"{tool} not found (make deps)")
    return System(workdir, env=env, build=build, join=join).start()
