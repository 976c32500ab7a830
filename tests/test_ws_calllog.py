"""The relay never loses a call log transition: written in order, retried
while the database is locked."""

import time

from wsclient import connect_user, start_call, wait_call_status, call_row


def test_answer_and_hangup_under_a_write_lock(sb):
    a, b = sb.make_user(), sb.make_user()
    with connect_user(sb, a) as ca, connect_user(sb, b) as cb:
        call_id = start_call(sb, a, b, ca, cb, accept=False)
        with sb.write_lock():
            # Both steps happen while nobody else can write; each write
            # the relay tries times out (200 ms) at least once.
            cb.send({"type": "webrtc_call_accepted", "call_id": call_id,
                "to": a["extension"], "channel": call_id})
            ca.wait_type("webrtc_call_accepted", channel=call_id)
            time.sleep(1.2)
            ca.send({"type": "webrtc_call_ended", "call_id": call_id,
                "to": b["extension"], "channel": call_id})
            cb.wait_type("webrtc_call_ended", channel=call_id)
            time.sleep(0.6)
            assert call_row(sb, call_id)["status"] == "initiated"
        wait_call_status(sb, call_id, "ended")
        row = call_row(sb, call_id)
        assert row["answer_time"] is not None, row
        assert row["end_time"] >= row["answer_time"], row
        # Answered, then held ~1.2 s: the duration is the answer's, not 0
        # as for a call closed while still ringing.
        assert row["duration"] >= 1, row
