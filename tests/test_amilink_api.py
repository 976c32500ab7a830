"""relay/amilink's API, the one call control builds on, driven through
tests/tools/amidrive against the fake AMI server: replies matched to their
actions, list answers, per-action timeouts, the order of state changes and
events, refusal while down, and a slow consumer's drops counted."""
import json
import os
import secrets
import socket
import subprocess
import threading
import time

import pytest

from fakeami import FakeAMI
from harness import DEFAULT_BUILD, REPO, SANITIZER_MARKS


class Drive:
    def __init__(self, ami, tmp_path, **env):
        build = REPO / (os.environ.get("SB_BUILD") or DEFAULT_BUILD)
        e = {k: v for k, v in os.environ.items() if not k.startswith("AMI")}
        e.update({"AMI_HOST": "127.0.0.1", "AMI_PORT": str(ami.port),
                  "AMI_USERNAME": ami.username, "AMI_SECRET": ami.secret,
                  "AMI_PING_S": "3600", "AMI_TIMEOUT_MS": "2000",
                  "AMI_RECONNECT_MIN_MS": "100",
                  "AMI_RECONNECT_MAX_MS": "400",
                  "ASAN_OPTIONS": "abort_on_error=1:detect_leaks=1",
                  "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"})
        e.update(env)
        self.secret = ami.secret
        self.log = tmp_path / "amidrive.log"
        self.p = subprocess.Popen(
            [str(build / "tests" / "tools" / "amidrive")], env=e,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=open(self.log, "wb"), text=True)
        self.out = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            with self.cond:
                self.out.append(json.loads(line))
                self.cond.notify_all()

    def cmd(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()

    def wait(self, pred, timeout=15, what="output"):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                got = pred(self.out)
                if got:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"amidrive: no {what}; got "
                                         f"{self.out[-20:]}")
                self.cond.wait(left)

    def replies(self, tag):
        return [o for o in self.out if o.get("reply") == tag]

    def wait_reply(self, tag, result, timeout=15):
        return self.wait(lambda out: [o for o in out if o.get("reply") == tag
                                      and o["result"] == result],
                         timeout, f"{result} for {tag}")[0]

    def health(self):
        n = len([o for o in self.out if "health" in o])
        self.cmd("health")
        return self.wait(lambda out: [o for o in out if "health" in o][n:],
                         what="health")[0]["health"]

    def close(self):
        try:
            self.cmd("quit")
        except BrokenPipeError:
            pass
        rc = self.p.wait(timeout=15)
        text = self.log.read_text(errors="replace")
        for mark in SANITIZER_MARKS:
            assert mark not in text, text[-3000:]
        assert self.secret not in text
        assert rc == 0, text[-2000:]


@pytest.fixture
def ami():
    f = FakeAMI(username="sb-api", secret=secrets.token_hex(16)).start()
    yield f
    f.stop()


@pytest.fixture
def drive(ami, tmp_path):
    made = []

    def _drive(**env):
        d = Drive(ami, tmp_path, **env)
        made.append(d)
        return d
    yield _drive
    for d in made:
        d.close()


def states(out):
    return [o["state"] for o in out if "state" in o]


def synced(out):
    return "resync_end" in states(out)


def live_call(ami):
    ami.default_outcome = "up"
    s = socket.create_connection(("127.0.0.1", ami.port), timeout=5)
    s.sendall(f"Action: Login\r\nUsername: {ami.username}\r\nSecret: "
              f"{ami.secret}\r\nEvents: off\r\n\r\nAction: Originate\r\n"
              "Channel: Local/2000@default\r\nExten: 1100\r\nContext: default"
              "\r\nPriority: 1\r\nAsync: true\r\n\r\n".encode())
    ami.wait_for(lambda: ami.calls, 5, "the live call")
    s.close()
    ami.default_outcome = "answered"


def test_resync_order_and_replies(ami, drive):
    live_call(ami)
    d = drive()
    d.wait(synced, what="resync")
    # The state changes and the resync list, in this order, before
    # anything else.
    seq = [o.get("state") or o.get("event") for o in d.out]
    assert seq[:6] == ["up", "resync_begin", "CoreShowChannel",
                       "CoreShowChannel", "CoreShowChannelsComplete",
                       "resync_end"]

    d.cmd("send p1 0 Ping")
    r = d.wait_reply("p1", "response")
    assert r["headers"]["Response"] == "Success"
    assert r["headers"]["Ping"] == "Pong"
    sent = ami.actions_named("Ping")[-1]
    assert r["headers"]["ActionID"] == sent.get("ActionID")

    # A list answer: the response, each item, the end; none of them
    # reaches the event handler.
    n_events = len([o for o in d.out if "event" in o])
    d.cmd("send c1 0 CoreShowChannels")
    d.wait_reply("c1", "complete")
    got = [o["result"] for o in d.replies("c1")]
    assert got == ["response", "item", "item", "complete"]
    assert len([o for o in d.out if "event" in o]) == n_events

    # An Originate: its response to it, its call's events (the
    # OriginateResponse too) to the event handler.
    ami.outcomes["1000"] = "busy"
    d.cmd("send o1 0 Originate Channel=PJSIP/1000 Exten=1002 "
          "Context=default Priority=1 Async=true Variable=CALL_ID=c-9")
    r = d.wait_reply("o1", "response")
    assert r["headers"]["Message"] == "Originate successfully queued"
    ev = d.wait(lambda out: [o for o in out
                             if o.get("event") == "OriginateResponse"],
                what="OriginateResponse")[0]
    assert ev["headers"]["Reason"] == "5"
    assert ev["headers"]["ActionID"] == r["headers"]["ActionID"]
    orig = ami.actions_named("Originate")[-1]
    assert orig.get("Variable") == "CALL_ID=c-9"
    assert [h for h, _ in orig.headers][:2] == ["Action", "ActionID"]
    assert len(d.replies("o1")) == 1


def test_timeout_refusal_and_gone(ami, drive):
    d = drive()
    d.wait(synced, what="resync")
    ami.never.add("Ping")
    d.cmd("send t1 300 Ping")
    d.wait_reply("t1", "timeout")
    assert d.health()["actions_timed_out"] == 1
    assert d.health()["connected"]

    # A value that would end the header early is refused, nothing sent.
    n = len(ami.actions)
    d.cmd("send bad 0 Ping X=a\rAction: Logoff")
    r = d.wait(lambda out: [o for o in out if o.get("send_error") == "bad"],
               what="send_error")[0]
    assert r["code"] == "invalid"
    d.cmd("send p2 0 Hangup Channel=nothing")
    d.wait_reply("p2", "response")
    assert len(ami.actions) == n + 1

    # The connection goes with an action in flight: "gone", then "down".
    d.cmd("send g1 5000 Ping")
    ami.wait_for(lambda: len(ami.actions_named("Ping")) >= 2, 5, "ping")
    ami.stop()
    d.wait_reply("g1", "gone")
    d.wait(lambda out: "down" in states(out), what="down")
    d.cmd("send u1 0 Ping")
    r = d.wait(lambda out: [o for o in out if o.get("send_error") == "u1"],
               what="send_error")[0]
    assert r["code"] == "upstream"
    ami.never.clear()
    ami.start()
    d.wait(lambda out: states(out).count("resync_end") == 2,
           what="a second resync")
    h = d.health()
    assert h["reconnects"] == 1 and h["synced"]
    assert states(d.out) == ["up", "resync_begin", "resync_end", "down",
                             "up", "resync_begin", "resync_end"]


def test_slow_consumer_drops_are_counted(ami, drive):
    # A consumer taking 2 ms an event (500 a second) under 8000 a second:
    # the link reads on (Asterisk drops a session it cannot write to) and
    # drops what its queue cannot hold.
    d = drive(AMI_EVENTS="call,cdr,dialplan", AMIDRIVE_EVENT_SLEEP_US="2000",
              AMI_TIMEOUT_MS="20000")
    d.wait(synced, what="resync")
    ami.flood(8000, 1.5, wait=True)
    sent = ami.flooded
    d.cmd("send p1 0 Ping")
    d.wait_reply("p1", "response", timeout=60)
    h = d.health()
    assert h["events_dropped"] > 0
    assert h["events"] >= sent
    # What was not dropped arrives, in order, and no more than that.
    d.wait(lambda out: len([o for o in out if o.get("event") == "Newexten"])
           >= sent - h["events_dropped"], timeout=60, what="the rest")
    got = len([o for o in d.out if o.get("event") == "Newexten"])
    assert got == sent - h["events_dropped"]
    assert h["connected"] and h["reconnects"] == 0
