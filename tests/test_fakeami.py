"""The fake AMI server against the captured transcript: where the
transcript has fixed bytes, the fake sends the same bytes; where Asterisk
numbers things (channels, unique ids, timestamps), the same messages in
the same order with the fields that a client matches on rewritten."""
import re
import socket
import time

import pytest

import amitranscript
from fakeami import FakeAMI

SECS = amitranscript.sections()


def section(prefix):
    for title, (sent, recv) in SECS.items():
        if title.startswith(prefix + " "):
            return sent, recv
    raise KeyError(prefix)


def messages(data):
    """Wire bytes to [(raw bytes, {name: value})], the banner as its own."""
    out = []
    while data:
        if data.startswith(b"Asterisk Call Manager/"):
            i = data.index(b"\r\n") + 2
            out.append((data[:i], {"Banner": data[:i - 2].decode()}))
            data = data[i:]
            continue
        i = data.index(b"\r\n\r\n") + 4
        raw = data[:i]
        d = {}
        for line in raw.decode().split("\r\n"):
            if line:
                k, _, v = line.partition(": ")
                d.setdefault(k, v)
        out.append((raw, d))
        data = data[i:]
    return out


class Client:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def read_bytes(self, n, timeout=5):
        deadline = time.monotonic() + timeout
        while len(self.buf) < n and time.monotonic() < deadline:
            self.s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                d = self.s.recv(65536)
            except socket.timeout:
                break
            if not d:
                break
            self.buf += d
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_msgs(self, count, timeout=5):
        """count messages (a banner counts as one)."""
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < count:
            got = messages_prefix(self.buf)
            if got:
                raw, d = got
                self.buf = self.buf[len(raw):]
                out.append((raw, d))
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"only {len(out)} of {count} messages")
            self.s.settimeout(left)
            d = self.s.recv(65536)
            if not d:
                raise AssertionError(f"closed after {len(out)} messages")
            self.buf += d
        return out

    def read_until_quiet(self, quiet=0.3):
        while True:
            self.s.settimeout(quiet)
            try:
                d = self.s.recv(65536)
            except socket.timeout:
                break
            if not d:
                break
            self.buf += d
        out = messages(self.buf)
        self.buf = b""
        return out

    def closed(self, timeout=5):
        self.s.settimeout(timeout)
        try:
            return self.s.recv(1) == b""
        except (ConnectionResetError, socket.timeout):
            return False

    def close(self):
        self.s.close()


def messages_prefix(buf):
    if buf.startswith(b"Asterisk Call Manager/") and b"\r\n" in buf:
        i = buf.index(b"\r\n") + 2
        return buf[:i], {"Banner": buf[:i - 2].decode()}
    if b"\r\n\r\n" in buf:
        return messages(buf[:buf.index(b"\r\n\r\n") + 4])[0]
    return None


@pytest.fixture
def ami():
    # The transcript's credentials, so its login bytes are the fake's.
    f = FakeAMI(username="admin", secret="amp111").start()
    yield f
    f.stop()


def login(ami, events=None):
    c = Client(ami.port)
    c.read_msgs(1)
    extra = f"Events: {events}\r\n" if events else ""
    c.send(("Action: Login\r\nUsername: admin\r\nSecret: amp111\r\n"
            f"{extra}ActionID: l\r\n\r\n").encode())
    assert c.read_msgs(1)[0][1]["Response"] == "Success"
    return c


@pytest.mark.parametrize("prefix", ["1.", "2."])
def test_banner_and_login_bytes_equal_the_transcript(ami, prefix):
    sent, recv = section(prefix)
    c = Client(ami.port)
    c.send(sent)
    assert c.read_bytes(len(recv)) == recv
    if prefix == "1.":
        assert c.closed()
        assert ami.login_failures == 1
    assert ami.actions[0].get("Secret") in ("wrong", "amp111")
    assert "amp111" not in repr(ami.actions[0])


@pytest.mark.parametrize("prefix", ["26.", "27.", "9.", "10."])
def test_fixed_answers_equal_the_transcript(ami, prefix):
    sent, recv = section(prefix)
    c = login(ami, events="off")
    c.send(sent)
    assert c.read_bytes(len(recv)) == recv


def test_before_login_equals_the_transcript(ami):
    sent, recv = section("29.")
    c = Client(ami.port)
    c.send(sent)
    assert c.read_bytes(len(recv)) == recv


def test_ping_and_unknown_action(ami):
    c = login(ami, events="off")
    for prefix in ("3.", "4.", "5."):
        sent, recv = section(prefix)
        want = messages(recv)[0]
        c.send(sent)
        raw, got = c.read_msgs(1)[0]
        if "Timestamp" in want[1]:
            assert re.fullmatch(r"\d+\.\d{6}", got["Timestamp"])
            assert (raw.split(b"Timestamp:")[0] ==
                    want[0].split(b"Timestamp:")[0])
        else:
            assert raw == want[0]


def event_names(msgs):
    return [d.get("Event") for _, d in msgs if "Event" in d]


@pytest.mark.parametrize("outcome,prefix,reason", [
    ("answered", "12.", "4"), ("busy", "22c.", "5"),
    ("no-answer", "22b.", "3"), ("congestion", "22d.", "8"),
    ("failed", "22.", "0"), ("badtech", "22e.", "0")])
def test_originate_outcomes_follow_the_transcript(ami, outcome, prefix,
                                                  reason):
    _, recv = section(prefix)
    ami.outcomes["1000"] = outcome
    c = login(ami, events="call,cdr,dialplan")
    c.send(b"Action: Originate\r\nActionID: o-7\r\nChannel: PJSIP/1000\r\n"
           b"Context: default\r\nExten: 1002\r\nPriority: 1\r\n"
           b"Async: true\r\nVariable: CALL_ID=call-42\r\n\r\n")
    got = c.read_until_quiet()
    want = messages(recv)
    assert got[0][1] == {**want[0][1], "ActionID": "o-7"}
    # Events of the classes asked for, in the transcript's order.
    classes = {"call", "cdr", "dialplan"}
    assert event_names(got) == [
        d["Event"] for _, d in want
        if "Event" in d and d["Privilege"].split(",")[0] in classes]
    resp = next(d for _, d in got if d.get("Event") == "OriginateResponse")
    assert resp["ActionID"] == "o-7"
    assert resp["Reason"] == reason
    assert resp["Response"] == ("Success" if reason == "4" else "Failure")
    chans = {d["Channel"] for _, d in got if "Channel" in d}
    if outcome != "badtech":
        assert all(ch.startswith("PJSIP/1000") for ch in chans), chans
    else:
        assert chans == {"PJSIP/1000"}
    if outcome == "answered":
        assert any(d.get("Variable") == "CALL_ID" and d["Value"] == "call-42"
                   for _, d in got)
        assert "1002" in {d.get("Exten") for _, d in got}
    assert ami.actions_named("Originate")[0].get("Exten") == "1002"


def test_live_call_listed_and_hung_up(ami):
    ami.default_outcome = "up"
    c = login(ami)
    c.send(b"Action: Originate\r\nActionID: o-1\r\nChannel: Local/2000@"
           b"default\r\nContext: default\r\nExten: 1100\r\nPriority: 1\r\n"
           b"Async: true\r\n\r\n")
    got = c.read_until_quiet()
    assert "OriginateResponse" in event_names(got)
    assert "Hangup" not in event_names(got)
    c.send(b"Action: CoreShowChannels\r\nActionID: csc-1\r\n\r\n")
    got = c.read_until_quiet()
    assert got[0][1]["EventList"] == "start"
    items = [d for _, d in got if d.get("Event") == "CoreShowChannel"]
    assert len(items) == 2 and all(d["ActionID"] == "csc-1" for d in items)
    assert got[-1][1]["Event"] == "CoreShowChannelsComplete"
    assert got[-1][1]["ListItems"] == "2"
    chan = items[1]["Channel"]
    assert chan.startswith("Local/2000@default-") and chan.endswith(";1")
    c.send(f"Action: Hangup\r\nActionID: h-1\r\nChannel: {chan}\r\n"
           "Cause: 16\r\n\r\n".encode())
    got = c.read_until_quiet()
    assert got[0][1] == {"Response": "Success", "ActionID": "h-1",
                         "Message": "Channel Hungup"}
    hangups = [d for _, d in got if d.get("Event") == "Hangup"]
    assert {d["Channel"] for d in hangups} == {i["Channel"] for i in items}
    assert all(d["Cause"] == "16" for d in hangups)
    assert "Cdr" in event_names(got)
    c.send(f"Action: Hangup\r\nActionID: h-2\r\nChannel: {chan}\r\n\r\n"
           .encode())
    assert c.read_msgs(1)[0][1]["Message"] == "No such channel"
    c.send(b"Action: CoreShowChannels\r\nActionID: csc-2\r\n\r\n")
    got = c.read_until_quiet()
    assert got[-1][1]["ListItems"] == "0"


def test_events_narrowed_at_login(ami):
    c = login(ami, events="off")
    assert c.read_until_quiet() == []
    c = login(ami, events="call")
    assert c.read_until_quiet() == []  # FullyBooted is 'system'
    c = login(ami)
    assert event_names(c.read_until_quiet()) == ["FullyBooted",
                                                 "SuccessfulAuth"]


def test_faults(ami):
    c = login(ami, events="off")
    ami.never.add("Ping")
    c.send(b"Action: Ping\r\nActionID: p1\r\n\r\n")
    assert c.read_until_quiet() == []
    ami.never.clear()
    ami.twice.add("Ping")
    c.send(b"Action: Ping\r\nActionID: p2\r\n\r\n")
    got = c.read_until_quiet()
    assert [d["ActionID"] for _, d in got] == ["p2", "p2"]
    ami.twice.clear()
    ami.stall = True
    c.send(b"Action: Ping\r\nActionID: p3\r\n\r\n")
    assert c.read_until_quiet() == []
    ami.stall = False
    assert [a.get("ActionID") for a in ami.actions_named("ping")] == [
        "p1", "p2", "p3"]
    ami.send_raw(b"\x00garbage\r\n\r\n")
    assert c.read_bytes(13) == b"\x00garbage\r\n\r\n"
    ami.drop()
    assert c.closed()

    c = login(ami, events="dialplan")
    ami.flood(500, 0.2, wait=True)
    got = c.read_until_quiet()
    assert len(got) == ami.flooded >= 50
    assert set(event_names(got)) == {"Newexten"}

    ami.accept_logins = False
    c = Client(ami.port)
    c.read_msgs(1)
    c.send(b"Action: Login\r\nUsername: admin\r\nSecret: amp111\r\n\r\n")
    assert c.read_msgs(1)[0][1] == {"Response": "Error",
                                    "Message": "Authentication failed"}
    assert c.closed()


def test_stop_and_start_on_the_same_port(ami):
    port = ami.port
    ami.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1)
    ami.start()
    assert ami.port == port
    login(ami)
