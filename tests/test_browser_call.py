"""Two people in two real (headless Chromium) browsers call each other
through the web client (nginx/html/), and the calls that do not connect.

tests/browser/run.mjs drives the pages as people do (forms, buttons); these
tests check what it saw against what the server recorded. Needs Debian's
chromium, node and `npm ci --prefix tests/browser` (`make test` installs
them); skipped with the reason otherwise, and in the PostgreSQL pass.
"""

import sys
from datetime import datetime, timezone

from harness import REPO, TIME_RE

sys.path.insert(0, str(REPO / "tests" / "browser"))
from browser_driver import (run_scenario, skip_if_missing,  # noqa: E402
                            user_args)


def _unix(stamp):
    assert stamp is not None and TIME_RE.match(stamp), stamp
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=timezone.utc).timestamp()


def test_call_accept_mute_hold_hangup(sb, tmp_path):
    """A calls B from the dialler, B hears the ringtone and accepts; both
    peer connections connect and audio grows on both sides; A mutes and
    B's inbound level drops; A holds, B is told and receives nothing; A
    hangs up and both
    histories list the call with its duration."""
    skip_if_missing()
    a = sb.make_user()
    b = sb.make_user()
    out = run_scenario(sb.base, "call", {"a": user_args(a),
                                         "b": user_args(b)}, tmp_path)
    print({k: out[k] for k in ("a", "b", "loudness", "_seconds")})

    call_id = out["call_id"]
    assert call_id.startswith("webrtc-call-"), call_id
    # ICE servers are /config's, and this server lists none.
    assert "ice_servers" not in sb.req("GET", "/config").json()["config"]
    assert out["ice_servers"] == [], out["ice_servers"]
    assert out["ringtone"] is True and out["ringtone_after_accept"] is False
    assert a["username"] in out["texts"]["ringing"], out["texts"]
    for side in ("a", "b"):
        s = out[side]
        assert s["state"] == "connected", s
        assert s["ice"] in ("connected", "completed"), s
        # Audio arrives, and keeps arriving.
        assert 0 < s["bytes_1"] < s["bytes_2"], s
        assert s["packets"] > 0 and s["sent"] > 0, s

    # Muting A silences what B hears: B's inbound energy per second of
    # audio falls to a small part of what it was.
    before, muted = out["loudness"]["before"], out["loudness"]["muted"]
    assert before["seconds"] > 0.5 and muted["seconds"] > 0.5, out["loudness"]
    assert before["energy_per_s"] > 0, out["loudness"]
    assert muted["energy_per_s"] < before["energy_per_s"] / 10, out["loudness"]
    assert "(muted)" in out["texts"]["muted"], out["texts"]
    # Holding stops what A sends: B receives (almost) nothing meanwhile.
    held = out["loudness"]["held"]
    assert held["bytes"] < before["bytes"] / 10, out["loudness"]
    assert "on hold" in out["texts"]["held"], out["texts"]

    # Signalling went through the relay both ways.
    sig = out["signalling"]
    assert sig["a"]["sent"].get("webrtc_offer") == 1, sig
    assert sig["b"]["received"].get("webrtc_offer") == 1, sig
    assert sig["b"]["sent"].get("webrtc_answer") == 1, sig
    assert sig["a"]["received"].get("webrtc_answer") == 1, sig
    for who in ("a", "b"):
        assert sig[who]["sent"].get("webrtc_ice_candidate", 0) > 0, sig

    assert out["a"]["end"] == "local" and out["b"]["end"] == "remote"
    rows = sb.sql("SELECT caller_id, callee_id, status, answer_time, "
                  "end_time, duration FROM call_logs WHERE channel = ?",
                  (call_id,))
    assert len(rows) == 1, rows
    caller, callee, status, answer, end, duration = rows[0]
    assert (caller, callee, status) == (a["id"], b["id"], "ended"), rows
    assert duration >= 2, rows
    assert -0.01 < _unix(end) - _unix(answer) - duration < 1.01, rows
    assert out["a"]["duration"] == duration, out["a"]
    assert f"{duration // 60}:{duration % 60:02d}" in out["texts"]["ended"]

    # Both histories show it, answered, with that duration.
    for who in ("a", "b"):
        h = out["history"][who]
        assert h["status"] == "ended" and h["duration"] == duration, h
        assert h["cells"][1] == ("Outgoing" if who == "a" else "Incoming")
        assert h["cells"][3] == "answered", h
        assert h["cells"][4] == f"{duration // 60}:{duration % 60:02d}", h


def test_call_rejected(sb, tmp_path):
    """A calls from the online list while B reads the history; the
    phone comes forward on B's page with the focus on Accept. B rejects:
    A reads that in words, the ringtone stops, and both histories list
    the call as rejected."""
    skip_if_missing()
    a = sb.make_user()
    b = sb.make_user()
    out = run_scenario(sb.base, "rejected", {"a": user_args(a),
                                             "b": user_args(b)}, tmp_path)
    assert "they rejected it" in out["text"], out["text"]
    # B was on the history view: the ringing call came forward.
    assert out["focus_when_ringing"] == "accept", out
    assert out["ringing_after_reject"] is False
    for who in ("a", "b"):
        assert out["history"][who]["status"] == "rejected", out["history"]
        assert out["history"][who]["cells"][3] == "rejected"
    rows = sb.sql("SELECT status, duration FROM call_logs WHERE channel = ?",
                  (out["call_id"],))
    assert rows == [("rejected", 0)], rows


def test_call_offline_unknown_and_pbx(sb, tmp_path):
    """A call that cannot ring says why, in words: the callee has no open
    page, nobody has the extension, the server has no PBX. The focus goes
    back to the extension field."""
    skip_if_missing()
    a = sb.make_user()
    c = sb.make_user()  # logged in over REST only: no socket
    unknown = sb.free_extension()
    out = run_scenario(sb.base, "offline",
                       {"a": user_args(a), "c": user_args(c),
                        "unknown": unknown}, tmp_path)
    # C logged in (so is listed online) but has no page open.
    assert out["offline"] == (f"{c['username']} ({c['extension']}) is not "
                              "connected right now; try again later."), out
    assert out["unknown"] == f"No user has extension {unknown}.", out
    assert out["pbx"].startswith(("Calls through the phone system are not "
                                  "available here:", "The call to")), out
    for k in ("offline", "unknown", "pbx"):
        assert out[k + "_focus"] == "dial-ext", out


def test_client_names_no_third_party():
    """No STUN or TURN server (nor any other host) is built into the
    client: ICE servers come from GET /config."""
    html = REPO / "nginx" / "html"
    for f in sorted(html.iterdir()):
        text = f.read_text()
        for mark in ("stun:", "turn:", "turns:", "google.com", "//cdn"):
            assert mark not in text, (f.name, mark)
