"""cli/run.sh under signals: however it was started, a stop leaves no
process of the instance behind, and a relay that dies comes back while
nginx and the programs keep serving."""

import os
import signal
import types

import requests

import wsclient
from harness import free_port, parse_admin_password
from test_api_run import Run, instance_pids


def start(tmp_path, ignore=()):
    run = Run(tmp_path, {"PORT": str(free_port()), "HOST": "127.0.0.1"},
              ignore=ignore)
    url = run.wait_serving()
    assert instance_pids(tmp_path), "no process found for the instance"
    return run, url


def relay_pid(root):
    for pid in instance_pids(root):
        try:
            if os.readlink(f"/proc/{pid}/exe").endswith("/switchboard-relay"):
                return pid
        except OSError:
            pass
    return None


def test_started_with_sigint_ignored_stops_on_sigterm(tmp_path):
    # As from `bash -c 'make test &'`: SIGINT ignored from the start.
    run, url = start(tmp_path, ignore=(signal.SIGINT,))
    try:
        assert requests.get(url + "/health", timeout=5).status_code == 200
    finally:
        rc = run.stop()
    assert rc == 0, run.text()
    assert run.left == [], run.text()
    assert "run: stopping" in run.text()


def test_sighup_stops_everything(tmp_path):
    # A closed terminal: run.sh must not die alone and leave its programs.
    run, url = start(tmp_path)
    try:
        assert requests.get(url + "/health", timeout=5).status_code == 200
    finally:
        rc = run.stop(signal.SIGHUP)
    assert rc == 0, run.text()
    assert run.left == [], run.text()


def test_cleanup_after_the_runner_was_killed_leaves_nothing(tmp_path):
    # run.sh cannot stop anything when it is killed outright: the cleanup
    # of the tests must still find every process of the instance.
    run, url = start(tmp_path, ignore=(signal.SIGINT,))
    rc = run.stop(signal.SIGKILL)
    assert rc == -signal.SIGKILL
    assert instance_pids(tmp_path) == []
    try:
        requests.get(url + "/health", timeout=2)
        raise AssertionError("the instance still answers")
    except requests.ConnectionError:
        pass


def test_relay_comes_back_after_sigkill(tmp_path):
    run, url = start(tmp_path)
    try:
        pw = parse_admin_password(run.text())
        r = requests.post(url + "/api/login", timeout=10,
                          json={"username": "admin", "password": pw})
        assert r.status_code == 200, r.text
        token = r.json()["token"]
        system = types.SimpleNamespace(
            ws_url=url.replace("http://", "ws://", 1) + "/ws")
        nginx_pid = int((tmp_path / "var" / "run" / "nginx.pid").read_text())

        with wsclient.connect(system, token=token):
            pass
        for n in (1, 2):
            pid = relay_pid(tmp_path)
            assert pid, run.text()
            os.kill(pid, signal.SIGKILL)
            wsclient.wait_until(
                lambda: run.text().count("run: relay restarted") == n,
                timeout=30, what="relay restart %d" % n)
            # A new process (once it has become the relay).
            wsclient.wait_until(
                lambda: relay_pid(tmp_path) not in (None, pid),
                timeout=30, what="a new relay process")

            # It serves WebSockets again (once it has bound its socket).
            def connects():
                try:
                    with wsclient.connect(system, token=token, timeout=5):
                        return True
                except Exception:
                    return False
            wsclient.wait_until(connects, timeout=30, what="a socket")
            # Nothing else went down with it.
            os.kill(nginx_pid, 0)
            assert requests.get(url + "/health",
                                timeout=5).status_code == 200
            assert run.p.poll() is None, run.text()
        text = run.text()
        assert "run: relay exited (status 137); restarting in" in text
        assert "stopping" not in text
    finally:
        rc = run.stop()
    assert rc == 0, run.text()
    assert run.left == [], run.text()
    log = (tmp_path / "var" / "run" / "log" / "relay.log").read_text(
        errors="replace")
    assert "ERROR: AddressSanitizer" not in log
