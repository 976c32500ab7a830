"""The relay's manager link against the fake AMI server (tests/fakeami.py):
what the relay sends (the fake records every action), and what it says in
its log, including its health counters."""
import json
import re
import secrets
import socket

import pytest

from fakeami import FakeAMI


@pytest.fixture
def ami():
    f = FakeAMI(username="sb-relay", secret=secrets.token_hex(16)).start()
    yield f
    f.stop()


def link_env(ami, **over):
    env = {"AMI_HOST": "127.0.0.1", "AMI_PORT": str(ami.port),
           "AMI_USERNAME": ami.username, "AMI_SECRET": ami.secret,
           "AMI_PING_S": "1", "AMI_TIMEOUT_MS": "1000",
           "AMI_RECONNECT_MIN_MS": "100", "AMI_RECONNECT_MAX_MS": "800"}
    env.update(over)
    return env


def log_msgs(system):
    out = []
    for line in system.log_text("relay").splitlines():
        try:
            out.append(json.loads(line).get("msg", ""))
        except ValueError:
            pass
    return out


def health(system):
    """The last health line of the relay's log, as an object."""
    lines = [m for m in log_msgs(system) if m.startswith("ami: health ")]
    return json.loads(lines[-1][len("ami: health "):]) if lines else None


def wait_log(ami, system, pattern, count=1, timeout=15):
    rx = re.compile(pattern)
    return ami.wait_for(
        lambda: len([m for m in log_msgs(system) if rx.search(m)]) >= count,
        timeout, f"{count} relay log line(s) matching {pattern!r}")


def conn_actions(ami, conn):
    return [a.name for a in ami.actions if a.conn == conn]


def live_call(ami):
    """A call that stays up, placed by a client of the fake's own."""
    ami.default_outcome = "up"
    s = socket.create_connection(("127.0.0.1", ami.port), timeout=5)
    s.sendall(f"Action: Login\r\nUsername: {ami.username}\r\nSecret: "
              f"{ami.secret}\r\nEvents: off\r\n\r\nAction: Originate\r\n"
              "Channel: Local/2000@default\r\nExten: 1100\r\nContext: default"
              "\r\nPriority: 1\r\nAsync: true\r\n\r\n".encode())
    ami.wait_for(lambda: ami.calls, 5, "the live call")
    s.close()


def test_disabled_by_default(sb):
    assert not [m for m in log_msgs(sb) if m.startswith("ami:")]


def test_login_first_then_resync_and_ping(ami, start):
    system = start(env=link_env(ami))
    ami.wait_for(lambda: len(ami.actions_named("Ping")) >= 2, 15, "pings")
    first = ami.actions[0]
    assert first.name == "Login" and first.conn == 1
    assert first.get("Username") == "sb-relay"
    assert first.get("Events") == "call,cdr"
    assert first.get("ActionID")
    names = conn_actions(ami, 1)
    assert names[:2] == ["Login", "CoreShowChannels"]
    # After the resync: pings, and the endpoint list diagnostics reports.
    assert "Ping" in names[2:]
    assert set(names[2:]) <= {"Ping", "PJSIPShowEndpoints"}
    # Every action has an ActionID of its own.
    ids = [a.get("ActionID") for a in ami.actions]
    assert None not in ids and len(set(ids)) == len(ids)
    wait_log(ami, system, r"^ami: resynced, 0 live channel")
    h = health(system)
    assert h["enabled"] and h["connected"] and h["state"] == "up"
    assert h["synced"] and h["reconnects"] == 0 and h["login_failures"] == 0
    assert ami.secret not in system.log_text("relay")


def test_nothing_before_the_login_response(ami, start):
    ami.never.add("Login")
    system = start(env=link_env(ami))
    # No answer: the link gives up on this connection and tries again.
    ami.wait_for(lambda: ami.connections >= 2, 15, "a second connection")
    assert conn_actions(ami, 1) == ["Login"]
    wait_log(ami, system, r"^ami: no answer to Login")
    ami.never.clear()
    ami.wait_for(lambda: ami.logins >= 1, 15, "a login")
    wait_log(ami, system, r"^ami: resynced")


def test_reconnect_with_backoff_and_resync(ami, start):
    system = start(env=link_env(ami, DEBUG="true"))
    wait_log(ami, system, r"^ami: resynced, 0 live channel")
    live_call(ami)
    ami.drop()
    wait_log(ami, system, r"^ami: connection to .* lost")
    ami.wait_for(lambda: ami.logins >= 3, 15, "the relay's second login")
    wait_log(ami, system, r"^ami: resynced, 2 live channel")
    relay_conns = {a.conn for a in ami.actions_named("Login")
                   if a.get("Username") == "sb-relay"
                   and a.get("Events") == "call,cdr"}
    for c in relay_conns:
        assert conn_actions(ami, c)[:2] == ["Login", "CoreShowChannels"]
    h = health(system)
    assert h["connected"] and h["reconnects"] == 1 and h["synced"]
    assert h["resync_channels"] == 2

    # Asterisk down: attempts back off, doubling up to the cap, each
    # delay jittered within the upper half of its step.
    def delays():
        return [int(m.split()[-2]) for m in log_msgs(system)
                if m.startswith("ami: next attempt in")]
    before = len(delays())
    ami.stop()
    wait_log(ami, system, r"^ami: next attempt in", count=before + 7,
             timeout=20)
    ami.start()
    ami.wait_for(lambda: ami.logins >= 4, 15, "a login after the outage")
    # The steps count from the last login.
    later = delays()[before:]
    assert len(later) >= 7
    for i, d in enumerate(later):
        step = min(800, 100 << i)
        assert step // 2 <= d <= step, (i, later)
    assert later[-1] <= 800 and ami.connections >= 3
    assert ami.secret not in system.log_text("relay")


def test_login_failure_reported_and_retried(ami, start):
    ami.accept_logins = False
    system = start(env=link_env(ami))
    ami.wait_for(lambda: ami.login_failures >= 3, 15, "retried logins")
    wait_log(ami, system, r"^ami: login as 'sb-relay' to 127\.0\.0\.1:\d+ "
             r"refused: Authentication failed$")
    ami.accept_logins = True
    wait_log(ami, system, r"^ami: resynced")
    h = health(system)
    assert h["connected"] and h["login_failures"] >= 3
    text = system.log_text("relay")
    assert ami.secret not in text
    assert all(a.get("Secret") == ami.secret
               for a in ami.actions_named("Login"))


def test_ping_unanswered_reconnects(ami, start):
    system = start(env=link_env(ami))
    wait_log(ami, system, r"^ami: resynced")
    ami.never.add("Ping")
    wait_log(ami, system, r"^ami: no answer to Ping")
    ami.never.clear()
    ami.wait_for(lambda: ami.logins >= 2, 15, "a new login")
    wait_log(ami, system, r"^ami: resynced", count=2)


def test_garbage_twice_and_flood_do_not_break_the_link(ami, start):
    system = start(env=link_env(ami, AMI_EVENTS="call,cdr,dialplan"))
    wait_log(ami, system, r"^ami: resynced")
    ami.send_raw(b"\x00\x01 not ami\r\n\r\nEvent: Half")
    ami.send_raw(b"\r\n\r\n")
    # A response twice: the second matches nothing and is ignored.
    ami.twice.add("Ping")
    ami.flood(3000, 1.0, wait=True)
    n = ami.flooded
    pings = len(ami.actions_named("Ping"))
    ami.wait_for(lambda: len(ami.actions_named("Ping")) > pings, 10,
                 "a ping after the flood")
    ami.drop()
    wait_log(ami, system, r"^ami: connection to .* lost")
    # The health line follows the "lost" one: logged in, resynced, lost.
    wait_log(ami, system, r"^ami: health ", count=3)
    h = [json.loads(m[len("ami: health "):]) for m in log_msgs(system)
         if m.startswith("ami: health ")][-1]
    assert h["events"] + h["events_dropped"] >= n
    assert h["messages_skipped"] >= 1
    assert h["last_event_at"] is not None
    assert h["reconnects"] == 0 and h["actions_timed_out"] == 0


def test_host_name_resolved_without_blocking(ami, start):
    system = start(env=link_env(ami, AMI_HOST="localhost"))
    wait_log(ami, system, r"^ami: resynced")
    assert ami.actions[0].name == "Login"


def test_unresolvable_host_retried(ami, start):
    system = start(env=link_env(ami, AMI_HOST="no-such-host.invalid"))
    wait_log(ami, system, r"^ami: cannot resolve 'no-such-host\.invalid'",
             count=2)
    assert ami.connections == 0
