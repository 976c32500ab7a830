"""PBX calls through the relay's AMI link, against the fake Asterisk
(tests/fakeami.py): the Originate a browser's click sends, the messages
both browsers get, the call log closed with Asterisk's own cause for each
outcome, hangup on the real live channel, the resync after the link
drops, 503 when Asterisk is away, an event flood while browsers receive,
and the AMI secret kept out of every log and reply."""
import secrets
import time
from pathlib import Path

import pytest

from fakeami import FakeAMI
from harness import expect, free_port, start_system
from wsclient import connect_user

TIMEOUT = 15


def ami_env(ami, **extra):
    env = {"AMI_HOST": "127.0.0.1", "AMI_PORT": str(ami.port),
           "AMI_USERNAME": ami.username, "AMI_SECRET": ami.secret,
           "AMI_PING_S": "3600", "AMI_TIMEOUT_MS": "3000",
           "AMI_RECONNECT_MIN_MS": "100", "AMI_RECONNECT_MAX_MS": "400",
           "CALL_RING_TIMEOUT_S": "30"}
    env.update(extra)
    return env


def ami_state(sb):
    r = sb.req("GET", "/health?detail=1")
    assert r.status_code == 200, r.text
    return r.json()["ami"]["state"]


def wait(pred, timeout=TIMEOUT, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def pbx(tmp_path_factory):
    ami = FakeAMI(username="sbpbx", secret="s3-" + secrets.token_hex(12))
    ami.start()
    sb = start_system(tmp_path_factory.mktemp("pbx"), env=ami_env(ami))
    try:
        wait(lambda: ami_state(sb) == "connected", what="AMI link up")
        yield sb, ami
    finally:
        sb.stop()
        ami.stop()


def initiate(sb, caller, callee_ext):
    return sb.req("POST", "/protected/call/initiate", token=caller["token"],
                  json={"target_extension": callee_ext})


def log_row(sb, call_id):
    rows = sb.sql("SELECT id, status, duration, hangup_cause, "
                  "hangup_cause_txt, answer_time, end_time FROM call_logs "
                  "WHERE channel = ?", (call_id,))
    return rows[0] if rows else None


def closed_row(sb, call_id):
    return wait(lambda: (lambda r: r if r and r[6] else None)(
        log_row(sb, call_id)), what=f"call {call_id} closed")


def originate_of(ami, call_id):
    return ami.wait_for(lambda: [a for a in ami.actions_named("Originate")
                                 if a.get("Variable") ==
                                 f"SWITCHBOARD_CALL_ID={call_id}"],
                        what="the Originate")[0]


def test_originate_round_trip(pbx):
    sb, ami = pbx
    a, b = sb.make_user(), sb.make_user()
    ami.outcomes[a["extension"]] = "answered"
    with connect_user(sb, a) as ca, connect_user(sb, b) as cb:
        r = initiate(sb, a, b["extension"])
        assert r.status_code == 200, r.text
        j = r.json()
        assert set(j) == {"call_id", "callee", "caller", "channel",
                          "message", "success"}, j
        assert j["caller"] == a["username"] and j["callee"] == b["username"]
        assert j["channel"] == f"PJSIP/{a['extension']}"
        assert j["message"] == "Call initiated successfully"
        call_id = j["call_id"]

        o = originate_of(ami, call_id)
        assert o.get("Channel") == f"PJSIP/{a['extension']}"
        assert o.get("Context") == "default"
        assert o.get("Exten") == b["extension"]
        assert o.get("Priority") == "1"
        assert o.get("Async") == "true"
        assert o.get("Timeout") == "30000"
        assert a["extension"] in o.get("CallerID")
        assert o.get("ActionID", "").startswith("sb-")

        inc = cb.wait_type("incoming_call", timeout=TIMEOUT, call_id=call_id)
        assert inc["caller"] == a["extension"]
        assert inc["callee"] == b["extension"]
        assert inc["channel"] == f"PJSIP/{a['extension']}"
        assert inc["status"] == "ringing"
        assert inc["priority"] == "normal"
        assert inc["transport"] == "transport-ws"
        for c in (ca, cb):
            m = c.wait_type("call_status", timeout=TIMEOUT, call_id=call_id,
                            status="connected")
            assert m["caller"] == a["extension"]
            assert m["callee"] == b["extension"]
            end = c.wait_type("call_status", timeout=TIMEOUT,
                              call_id=call_id, status="ended")
            assert end["result"] == "ended" and end["cause"] == 16
    row = closed_row(sb, call_id)
    assert row[1] == "ended" and row[3] == 16
    assert row[4] == "Normal Clearing"
    assert row[5] is not None and row[2] >= 0
    assert not sb.sql("SELECT 1 FROM active_calls WHERE channel = ?",
                      (call_id,))
    # The Cdr events of both legs, linked to the call's log.
    cdrs = wait(lambda: sb.sql("SELECT disposition, channel, unique_id "
                               "FROM cdr WHERE call_log_id = ?", (row[0],)),
                what="cdr rows")
    assert {c[0] for c in cdrs} == {"ANSWERED"}
    assert all(c[1].startswith(f"PJSIP/{a['extension']}-") for c in cdrs)


@pytest.mark.parametrize("outcome,status,cause,txt", [
    ("busy", "busy", 17, "User busy"),
    ("no-answer", "no-answer", 19, "User alerting, no answer"),
    ("congestion", "failed", 34, "Circuit/channel congestion"),
    ("failed", "failed", 0, None),
    ("badtech", "failed", 0, None),
])
def test_outcome_closes_log_with_cause(pbx, outcome, status, cause, txt):
    sb, ami = pbx
    a, b = sb.make_user(), sb.make_user()
    ami.outcomes[a["extension"]] = outcome
    with connect_user(sb, a) as ca:
        r = initiate(sb, a, b["extension"])
        assert r.status_code == 200, r.text
        call_id = r.json()["call_id"]
        end = ca.wait_type("call_status", timeout=TIMEOUT, call_id=call_id,
                           status="ended")
        assert end["result"] == status
    row = closed_row(sb, call_id)
    assert row[1] == status, row
    assert row[2] == 0 and row[5] is None
    assert row[3] == cause
    if txt is not None:
        assert row[4] == txt
    else:
        assert "reason" in row[4]
    assert not sb.sql("SELECT 1 FROM active_calls WHERE channel = ?",
                      (call_id,))


def up_call(sb, ami, a, b, ca):
    ami.outcomes[a["extension"]] = "up"
    r = initiate(sb, a, b["extension"])
    assert r.status_code == 200, r.text
    call_id = r.json()["call_id"]
    ca.wait_type("call_status", timeout=TIMEOUT, call_id=call_id,
                 status="connected")
    wait(lambda: log_row(sb, call_id)[1] == "answered", what="answered")
    return call_id


def live_channels(ami, a):
    with ami._lock:
        return [ch for call in ami.calls for ch in call.channels
                if ch.startswith(f"PJSIP/{a['extension']}-")]


def test_hangup_reaches_the_live_channel(pbx):
    sb, ami = pbx
    a, b, c = sb.make_user(), sb.make_user(), sb.make_user()
    with connect_user(sb, a) as ca, connect_user(sb, b) as cb:
        call_id = up_call(sb, ami, a, b, ca)
        r = sb.req("GET", "/protected/call/active", token=b["token"])
        j = expect(r, 200)
        assert [x["channel"] for x in j["active_calls"]] == [call_id]
        assert j["active_calls"][0]["status"] == "answered"
        assert j["active_calls"][0]["caller"]["extension"] == a["extension"]
        chans = live_channels(ami, a)
        assert chans
        # Not a party: not found, and nothing is sent.
        n = len(ami.actions_named("Hangup"))
        r = sb.req("POST", "/protected/call/hangup", token=c["token"],
                   json={"call_id": call_id})
        expect(r, 404, {"error": "Active call not found"})
        # The callee answers a call already up: refused.
        r = sb.req("POST", "/protected/call/answer", token=b["token"],
                   json={"call_id": call_id})
        expect(r, 409)
        assert len(ami.actions_named("Hangup")) == n
        # The device name stands for the call: the Hangup names the live
        # channel, never the device.
        r = sb.req("POST", "/protected/call/hangup", token=b["token"],
                   json={"channel": f"PJSIP/{a['extension']}"})
        j = expect(r, 200)
        assert j["call_id"] == call_id and j["success"] is True
        assert j["message"] == "Call ended successfully"
        assert set(j["channels"]) <= set(chans) and j["channels"]
        sent = ami.wait_for(lambda: ami.actions_named("Hangup")[n:],
                            what="Hangup")
        assert {h.get("Channel") for h in sent} <= set(chans)
        assert all(h.get("Channel") != f"PJSIP/{a['extension']}"
                   for h in sent)
        for cl in (ca, cb):
            cl.wait_type("call_status", timeout=TIMEOUT, call_id=call_id,
                         status="ended")
    row = closed_row(sb, call_id)
    assert row[1] == "ended" and row[3] == 16 and row[5] is not None
    r = sb.req("GET", "/protected/call/active", token=b["token"])
    assert expect(r, 200)["active_calls"] == []


def test_drop_mid_call_resyncs(pbx):
    sb, ami = pbx
    a, b = sb.make_user(), sb.make_user()
    with connect_user(sb, a) as ca:
        kept = up_call(sb, ami, a, b, ca)
        b2 = sb.make_user()
        gone = up_call(sb, ami, b2, b, connect_user(sb, b2))
        logins = ami.logins
        # Asterisk drops the link; one call ends meanwhile (its channels
        # are not listed after the reconnect), the other lives on.
        with ami._lock:
            ami.calls = [x for x in ami.calls
                         if not any(ch.startswith(f"PJSIP/{b2['extension']}-")
                                    for ch in x.channels)]
        ami.drop()
        ami.wait_for(lambda: ami.logins > logins, what="a new login")
        row = closed_row(sb, gone)
        assert row[1] == "ended" and "gone" in row[4]
        assert not sb.sql("SELECT 1 FROM active_calls WHERE channel = ?",
                          (gone,))
        assert log_row(sb, kept)[1] == "answered"
        assert sb.sql("SELECT 1 FROM active_calls WHERE channel = ?",
                      (kept,))
        h = expect(sb.req("GET", "/protected/diagnostics", token=a["token"]),
                   200)["diagnostics"]
        assert h["ami_status"] == "connected"
        assert h["ami"]["reconnects"] >= 1
        # The kept call is still ours to end after the resync.
        r = sb.req("POST", "/protected/call/hangup", token=a["token"],
                   json={"call_id": kept})
        expect(r, 200)
        assert closed_row(sb, kept)[1] == "ended"


def test_asterisk_down_is_503_and_writes_nothing(start):
    port = free_port()  # nothing listens there
    sb = start(env={"AMI_HOST": "127.0.0.1", "AMI_PORT": str(port),
                    "AMI_USERNAME": "sb", "AMI_SECRET": "x-" +
                    secrets.token_hex(8), "AMI_RECONNECT_MIN_MS": "100",
                    "AMI_RECONNECT_MAX_MS": "400"})
    a, b = sb.make_user(), sb.make_user()
    r = initiate(sb, a, b["extension"])
    expect(r, 503, {"error": "Asterisk is not connected"})
    assert sb.sql("SELECT count(*) FROM call_logs WHERE caller_id = ?",
                  (a["id"],)) == [(0,)]
    assert sb.sql("SELECT count(*) FROM active_calls") == [(0,)]
    assert ami_state(sb) == "disconnected"
    d = expect(sb.req("GET", "/protected/diagnostics", token=a["token"]),
               200)["diagnostics"]
    assert d["ami_status"] == "disconnected" and d["errors"]


def test_ami_off_says_not_configured(sb):
    a, b = sb.make_user(), sb.make_user()
    r = initiate(sb, a, b["extension"])
    expect(r, 503, {"error": "Asterisk is not configured"})
    assert sb.sql("SELECT count(*) FROM call_logs WHERE caller_id = ?",
                  (a["id"],)) == [(0,)]
    d = expect(sb.req("GET", "/protected/diagnostics", token=a["token"]),
               200)["diagnostics"]
    assert d["ami_status"] == "not configured"
    assert ami_state(sb) == "not configured"
    # WebRTC calls are untouched by it.
    r = sb.req("POST", "/protected/call/initiate?method=webrtc",
               token=a["token"], json={"target_extension": b["extension"]})
    assert r.status_code in (200, 500), r.text


def test_diagnostics_and_probes(pbx):
    sb, ami = pbx
    u = sb.make_user()
    d = expect(sb.req("GET", "/protected/diagnostics", token=u["token"]),
               200)["diagnostics"]
    assert d["ami_status"] == "connected"
    assert d["ami"]["connected"] is True
    assert ami.secret not in str(d)
    # The fake has no PJSIP: the endpoint listing's refusal is reported.
    def refused():
        d = sb.req("GET", "/protected/diagnostics", token=u["token"]).json()
        return [e for e in d["diagnostics"]["errors"]
                if "unknown command" in e]
    wait(refused, what="the endpoint listing's refusal")
    assert ami.actions_named("PJSIPShowEndpoints")
    assert ami_state(sb) == "connected"
    r = sb.req("GET", "/protected/test-asterisk", token=u["token"])
    res = expect(r, 200)["results"]
    assert res["tests"]["ami"]["success"] is True
    body = {"asteriskHost": "127.0.0.1", "asteriskPort": "1",
            "asteriskAMIPort": str(ami.port)}
    r = sb.req("POST", "/api/test-asterisk", json=body)
    assert r.status_code == 401
    r = sb.req("POST", "/api/test-asterisk", token=u["token"], json=body)
    assert r.status_code == 403
    r = sb.req("POST", "/api/test-asterisk", token=sb.admin_token(),
               json=body)
    res = expect(r, 200)["results"]
    assert res["tests"]["ami"]["success"] is True
    assert res["tests"]["http"]["success"] is False
    assert res["overall_success"] is False


def test_flood_while_browsers_receive(start):
    ami = FakeAMI(username="sbflood", secret="f-" + secrets.token_hex(10))
    ami.start()
    try:
        sb = start(env=ami_env(ami, AMI_EVENTS="call,cdr,dialplan"))
        wait(lambda: ami_state(sb) == "connected", what="AMI link up")
        a, b = sb.make_user(), sb.make_user()
        ami.outcomes[a["extension"]] = "answered"
        with connect_user(sb, a) as ca, connect_user(sb, b) as cb:
            t = ami.flood(3000, 3)
            time.sleep(0.5)
            lat = []
            for _ in range(3):
                t0 = time.monotonic()
                r = initiate(sb, a, b["extension"])
                assert r.status_code == 200, r.text
                call_id = r.json()["call_id"]
                cb.wait_type("incoming_call", timeout=TIMEOUT,
                             call_id=call_id)
                ca.wait_type("call_status", timeout=TIMEOUT,
                             call_id=call_id, status="ended")
                lat.append(time.monotonic() - t0)
            t.join()
            assert ami.flooded > 1000
            # Loose: a call's whole life stays within a few seconds under
            # the flood (the queue drops rather than blocks).
            assert max(lat) < 10, lat
            # The sockets still take a probe at once.
            h = expect(sb.req("GET", "/protected/diagnostics",
                              token=a["token"]), 200)["diagnostics"]
            assert h["ami"]["events"] > 1000
    finally:
        ami.stop()


def test_secret_absent_from_logs_and_listing(pbx):
    sb, ami = pbx
    logs = sorted(sb.log_dir.glob("*.log"))
    assert logs
    for f in logs:
        assert ami.secret not in f.read_text(errors="replace"), f
    # Nor in any program's command line (ps shows those to every user).
    for name in sb.procs:
        pid = sb.pid(name)
        if pid is None:
            continue
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        assert ami.secret.encode() not in cmd, name
    # Nor in a reply that describes the link.
    for path in ("/protected/diagnostics", "/protected/test-asterisk"):
        r = sb.req("GET", path, token=sb.admin_token())
        assert r.status_code == 200 and ami.secret not in r.text, path


def test_answer_redirects_the_ringing_leg(pbx):
    sb, ami = pbx
    a, b = sb.make_user(), sb.make_user()
    ami.outcomes[a["extension"]] = "ring"
    with connect_user(sb, a) as ca, connect_user(sb, b) as cb:
        r = initiate(sb, a, b["extension"])
        assert r.status_code == 200, r.text
        call_id = r.json()["call_id"]
        cb.wait_type("incoming_call", timeout=TIMEOUT, call_id=call_id)
        # The target rings: the dialing channel is known once DialBegin
        # is read, which the relay does a turn later.
        def ringing():
            with ami._lock:
                return any(x.rest is not None for x in ami.calls)
        ami.wait_for(ringing, what="the Dial ringing")
        # Only the callee answers.
        r = sb.req("POST", "/protected/call/answer", token=a["token"],
                   json={"call_id": call_id})
        expect(r, 404, {"error": "Active call not found"})
        def answered():
            r = sb.req("POST", "/protected/call/answer", token=b["token"],
                       json={"channel": f"PJSIP/{a['extension']}"})
            return r if r.status_code == 200 else None
        r = wait(answered, what="answer accepted")
        j = r.json()
        assert j["call_id"] == call_id and j["success"] is True
        assert j["message"] == "Call answered successfully"
        red = ami.wait_for(lambda: ami.actions_named("Redirect"),
                           what="Redirect")[-1]
        assert red.get("Context") == "switchboard-answer"
        assert red.get("Exten") == b["extension"]
        assert red.get("Priority") == "1"
        # The leg whose Dial rings the target, a live channel of the call.
        assert red.get("Channel").startswith(f"PJSIP/{a['extension']}-")
        for c in (ca, cb):
            c.wait_type("call_status", timeout=TIMEOUT, call_id=call_id,
                        status="connected")
            c.wait_type("call_status", timeout=TIMEOUT, call_id=call_id,
                        status="ended")
    row = closed_row(sb, call_id)
    assert row[1] == "ended" and row[3] == 16 and row[5] is not None


def test_concurrent_calls_of_one_device(pbx):
    """Several Originates of one device at once: each call gets its own
    channels (the OriginateResponse names them), and each hangup reaches
    its own."""
    sb, ami = pbx
    a = sb.make_user()
    peers = [sb.make_user() for _ in range(5)]
    ami.outcomes[a["extension"]] = "up"
    import concurrent.futures as cf
    with cf.ThreadPoolExecutor(5) as ex:
        rs = list(ex.map(lambda p: initiate(sb, a, p["extension"]), peers))
    ids = []
    for r in rs:
        assert r.status_code == 200, r.text
        ids.append(r.json()["call_id"])
    for cid in ids:
        wait(lambda: log_row(sb, cid)[1] == "answered", what="answered")
    seen = set()
    for cid in ids:
        n = len(ami.actions_named("Hangup"))
        j = expect(sb.req("POST", "/protected/call/hangup",
                          token=a["token"], json={"call_id": cid}), 200)
        chans = set(j["channels"])
        assert chans and not chans & seen, (chans, seen)
        seen |= chans
        sent = ami.wait_for(lambda: ami.actions_named("Hangup")[n:],
                            what="Hangup")
        assert {h.get("Channel") for h in sent} <= chans
        row = closed_row(sb, cid)
        assert row[1] == "ended" and row[3] == 16
    assert not sb.sql("SELECT 1 FROM active_calls WHERE caller_id = ?",
                      (a["id"],))


@pytest.mark.parametrize("chanvars", [True, False])
def test_relay_restart_keeps_live_calls(pbx, chanvars):
    """A relay that restarts mid-call takes its open calls back from the
    database; the resync finds the live one's channels (by the call id
    variable, or by its device) and closes the one that ended meanwhile."""
    sb, ami = pbx
    ami.channelvars = {"SWITCHBOARD_CALL_ID"} if chanvars else set()
    try:
        a, b, c, d = (sb.make_user() for _ in range(4))
        with connect_user(sb, a) as ca:
            kept = up_call(sb, ami, a, b, ca)
        with connect_user(sb, c) as cc:
            gone = up_call(sb, ami, c, d, cc)
        sb.relay_kill()
        with ami._lock:
            ami.calls = [x for x in ami.calls
                         if not any(ch.startswith(f"PJSIP/{c['extension']}-")
                                    for ch in x.channels)]
        logins = ami.logins
        sb.relay_start()
        ami.wait_for(lambda: ami.logins > logins, what="a new login")
        row = closed_row(sb, gone)
        assert row[1] == "ended" and "gone" in row[4]
        assert log_row(sb, kept)[1] == "answered"
        assert sb.sql("SELECT 1 FROM active_calls WHERE channel = ?",
                      (kept,))
        j = expect(sb.req("POST", "/protected/call/hangup", token=a["token"],
                          json={"call_id": kept}), 200)
        assert j["channels"] and all(
            ch.startswith(f"PJSIP/{a['extension']}-") for ch in j["channels"])
        row = closed_row(sb, kept)
        assert row[1] == "ended" and row[3] == 16
    finally:
        ami.channelvars = set()


def test_hangup_before_the_channels_are_known(pbx):
    """A hangup that comes before Asterisk's first event of the call: each
    channel is hung up as it appears, and the call ends."""
    sb, ami = pbx
    a, b = sb.make_user(), sb.make_user()
    ami.outcomes[a["extension"]] = "up"
    ami.originate_delay_s = 1.0
    try:
        r = initiate(sb, a, b["extension"])
        assert r.status_code == 200, r.text
        call_id = r.json()["call_id"]
        n = len(ami.actions_named("Hangup"))
        j = expect(sb.req("POST", "/protected/call/hangup", token=a["token"],
                          json={"call_id": call_id}), 200)
        assert j["pending"] is True and j["channels"] == []
        sent = ami.wait_for(lambda: ami.actions_named("Hangup")[n:],
                            what="Hangup as the channels come")
        assert sent[0].get("Channel").startswith(f"PJSIP/{a['extension']}-")
        row = closed_row(sb, call_id)
        assert row[1] in ("ended", "failed"), row
    finally:
        ami.originate_delay_s = 0.0
