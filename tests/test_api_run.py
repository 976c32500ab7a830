"""cli/run.sh, what `make run` starts: two instances side by side, each
from its own directory and settings, stopped by a signal.

The tests stop run.sh with SIGTERM: a runner started from a script in the
background inherits SIGINT ignored, and bash cannot trap a signal ignored
at its start. Whatever happens, a Run's cleanup kills every process of its
instance (each runs in its own session, out of reach of run.sh's group)."""

import os
import re
import signal
import subprocess
import time

import requests

from harness import REPO, free_port, parse_admin_password


def build_dir():
    return REPO / os.environ.get("SB_BUILD", "build/san")


def instance_pids(root):
    """Processes whose working directory is root or under it: everything a
    run.sh started there (nginx, its workers, the programs, the relay)."""
    root = os.path.realpath(root)
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            # " (deleted)": the directory is gone, its processes are not.
            cwd = os.readlink(f"/proc/{d}/cwd").removesuffix(" (deleted)")
            with open(f"/proc/{d}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state == "Z":
            continue
        if cwd == root or cwd.startswith(root + "/"):
            pids.append(int(d))
    return pids


def kill_instance(root):
    """SIGKILL every process of the instance under root until none is left."""
    deadline = time.monotonic() + 10
    while (pids := instance_pids(root)) and time.monotonic() < deadline:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)


class Run:
    def __init__(self, cwd, env, ignore=()):
        self.cwd = cwd
        e = {k: v for k, v in os.environ.items()
             if k not in ("PORT", "HOST", "DB_PATH", "RUN_DIR", "JWT_SECRET",
                          "ENV_FILE", "DEBUG")}
        e.update(env)
        e["ASAN_OPTIONS"] = "abort_on_error=1:detect_leaks=1"
        self.out = open(cwd / "run.out", "w+")

        # SIGINT at its default, even when these tests were started with
        # it ignored; ignore: signals the runner inherits ignored, as from
        # a script's background job (SIGINT) or nohup (SIGHUP).
        def child():
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            for sig in ignore:
                signal.signal(sig, signal.SIG_IGN)

        self.p = subprocess.Popen(
            [str(REPO / "cli" / "run.sh"), str(build_dir())], cwd=cwd, env=e,
            stdin=subprocess.DEVNULL, stdout=self.out,
            stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=child)
        self.left = None

    def text(self):
        return (self.cwd / "run.out").read_text()

    def wait_serving(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(r"^switchboard is serving on (\S+) \(Ctrl-C stops\)$",
                          self.text(), re.M)
            if m:
                return m.group(1)
            assert self.p.poll() is None, self.text()
            time.sleep(0.1)
        raise AssertionError("run.sh did not start:\n" + self.text())

    def stop(self, sig=signal.SIGTERM):
        """Signal run.sh and wait for it; left: what of the instance
        outlived it. Then kill whatever is left."""
        if self.p.poll() is None:
            os.kill(self.p.pid, sig)
        try:
            rc = self.p.wait(timeout=20)
            # Workers of a program may outlive their parent by a moment.
            deadline = time.monotonic() + 5
            self.left = instance_pids(self.cwd)
            while self.left and time.monotonic() < deadline:
                time.sleep(0.05)
                self.left = instance_pids(self.cwd)
            return rc
        finally:
            self.out.close()
            try:
                os.killpg(self.p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.p.poll()
            kill_instance(self.cwd)


def group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def test_two_instances_side_by_side(tmp_path):
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    a_dir.mkdir()
    b_dir.mkdir()
    port_a, port_b = free_port(), free_port()
    # A takes its port from its .env; B's environment overrides its .env.
    (a_dir / ".env").write_text(f"PORT={port_a}\nHOST=127.0.0.1\n")
    (b_dir / ".env").write_text("PORT=1\nHOST=127.0.0.1\n")
    a = Run(a_dir, {})
    b = Run(b_dir, {"PORT": str(port_b), "RUN_DIR": str(tmp_path / "b-run"),
                    "DB_PATH": str(tmp_path / "b-data" / "b.db")})
    try:
        url_a, url_b = a.wait_serving(), b.wait_serving()
        assert url_a == f"http://127.0.0.1:{port_a}"
        assert url_b == f"http://127.0.0.1:{port_b}"
        # Defaults relative to the working directory; B's own paths.
        assert (a_dir / "var" / "voip.db").exists()
        assert (a_dir / "var" / "run" / "nginx.conf").exists()
        assert (tmp_path / "b-data" / "b.db").exists()
        assert (tmp_path / "b-run" / "nginx.conf").exists()
        assert not (b_dir / "var").exists()
        # init wrote a secret for each, to its own .env.
        assert "JWT_SECRET=" in (a_dir / ".env").read_text()
        assert oct((a_dir / "var" / "voip.db").stat().st_mode & 0o777) == \
            "0o600"

        for run, url in ((a, url_a), (b, url_b)):
            pw = parse_admin_password(run.text())
            assert pw, run.text()
            assert requests.get(url + "/health", timeout=5).status_code == 200
            r = requests.post(url + "/api/login", timeout=10,
                              json={"username": "admin", "password": pw})
            assert r.status_code == 200, r.text
            assert r.json()["user"]["role"] == "admin"
            r = requests.get(url + "/config", timeout=5)
            assert r.json()["config"]["api_url"] == url
            r = requests.get(url + "/", timeout=5)
            assert r.status_code == 200 and "switchboard" in r.text
        # Separate databases: A's admin password is not B's.
        pw_a = parse_admin_password(a.text())
        r = requests.post(url_b + "/api/login", timeout=10,
                          json={"username": "admin", "password": pw_a})
        assert r.status_code == 401
    finally:
        rc_a = a.stop(signal.SIGINT)
        rc_b = b.stop(signal.SIGTERM)
    assert (rc_a, rc_b) == (0, 0), a.text() + b.text()
    # Everything it started is gone, and so are the ports and sockets.
    assert not group_alive(a.p.pid) and not group_alive(b.p.pid)
    assert a.left == [] and b.left == []
    for port in (port_a, port_b):
        try:
            requests.get(f"http://127.0.0.1:{port}/health", timeout=2)
            raise AssertionError(f"port {port} still answers")
        except requests.ConnectionError:
            pass
    assert not list((a_dir / "var" / "run").glob("*.sock"))
    for d in (a_dir / "var" / "run" / "log", tmp_path / "b-run" / "log"):
        for f in d.glob("*.log"):
            text = f.read_text(errors="replace")
            assert "ERROR: AddressSanitizer" not in text, f
            assert "runtime error:" not in text, f


def test_second_start_keeps_data_and_prints_no_password(tmp_path):
    port = free_port()
    env = {"PORT": str(port), "HOST": "127.0.0.1"}
    first = Run(tmp_path, env)
    try:
        first.wait_serving()
        pw = parse_admin_password(first.text())
    finally:
        assert first.stop() == 0
    os.rename(tmp_path / "run.out", tmp_path / "run1.out")
    second = Run(tmp_path, env)
    try:
        url = second.wait_serving()
        assert parse_admin_password(second.text()) is None
        r = requests.post(url + "/api/login", timeout=10,
                          json={"username": "admin", "password": pw})
        assert r.status_code == 200
    finally:
        assert second.stop() == 0


def test_refuses_a_busy_run_dir(tmp_path):
    port = free_port()
    first = Run(tmp_path, {"PORT": str(port), "HOST": "127.0.0.1"})
    try:
        first.wait_serving()
        other = tmp_path / "other"
        other.mkdir()
        p = subprocess.run(
            [str(REPO / "cli" / "run.sh"), str(build_dir())], cwd=other,
            env=dict(os.environ, PORT=str(free_port()), HOST="127.0.0.1",
                     RUN_DIR=str(tmp_path / "var" / "run"),
                     DB_PATH=str(other / "db")),
            capture_output=True, text=True, timeout=30)
        assert p.returncode == 1
        assert "in use by a running instance" in p.stderr
        assert requests.get(f"http://127.0.0.1:{port}/health",
                            timeout=5).status_code == 200
    finally:
        assert first.stop() == 0


def test_port_in_use_fails_cleanly(tmp_path):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        run = Run(tmp_path, {"PORT": str(port), "HOST": "127.0.0.1"})
        rc = run.p.wait(timeout=30)
        run.out.close()
    assert rc == 1, run.text()
    assert "nginx exited" in run.text()
    assert not group_alive(run.p.pid)
