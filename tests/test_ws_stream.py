"""The event stream survives the relay being killed: 0 events lost, 0
repeated, in order, for a client that reconnects with ?since= and the
epoch, compared against the notify table itself."""

import random
import signal
import threading
import time

import pytest

from harness import start_system
from wsclient import Closed, connect_user, set_status

KILLS = 20


@pytest.fixture(scope="module")
def crash_sys(tmp_path_factory, sb):
    s = start_system(str(tmp_path_factory.mktemp("crash")), build=sb.build)
    yield s
    s.stop()


def expected(s, user, after, upto):
    """The rows addressed to user, as the stream orders them."""
    return [r[0] for r in s.sql(
        "SELECT id FROM notify WHERE id > ? AND id <= ? AND "
        "payload NOT LIKE '%session_revoked%' AND (target_kind = 'all' "
        "OR (target_kind = 'user' AND target_value = ?) OR "
        "(target_kind = 'extension' AND target_value = ?) OR "
        "(target_kind = 'role' AND target_value = ?)) ORDER BY id",
        (after, upto, str(user["id"]), user["extension"], user["role"]))]


def seqs_of(c):
    return [m["seq"] for m in c.log if "seq" in m]


def read_until_closed(c):
    try:
        c.wait_closed(timeout=20)
    except Closed:
        pass


def test_sigkill_under_writers_loses_and_repeats_nothing(crash_sys):
    s = crash_sys
    reader, marker = s.make_user(), s.make_user()
    writers = [s.make_user() for _ in range(4)]
    stop = threading.Event()
    failures = []

    def write(u):
        statuses = ("busy", "away", "online")
        i = 0
        while not stop.is_set():
            try:
                set_status(s, u, statuses[i % 3])
            except Exception as ex:  # the relay is not needed for REST
                failures.append(ex)
                return
            i += 1

    c = connect_user(s, reader)
    epoch, start = c.epoch, c.welcome_seq
    got = []
    threads = [threading.Thread(target=write, args=(u,), daemon=True)
        for u in writers]
    for t in threads:
        t.start()
    try:
        rnd = random.Random(7)
        for k in range(KILLS):
            time.sleep(rnd.uniform(0.05, 0.4))
            if k % 5 == 4:
                # A backlog: rows pile up while the relay is stopped, then
                # it dies a few ms after it could start delivering them.
                pid = s.relay_pid()
                s.procs["relay"].send_signal(signal.SIGSTOP)
                top = s.sql("SELECT max(id) FROM notify")[0][0]
                while s.sql("SELECT max(id) FROM notify")[0][0] < top + 200:
                    time.sleep(0.02)
                s.procs["relay"].send_signal(signal.SIGCONT)
                time.sleep(0.005 + 0.005 * rnd.random())
                assert s.relay_pid() == pid
            s.relay_kill(signal.SIGKILL)
            read_until_closed(c)
            got += seqs_of(c)
            assert not [m for m in c.log if m.get("type") ==
                "resync_required"], c.log[:3]
            c.close()
            s.relay_start()
            last = got[-1] if got else start
            c = connect_user(s, reader, since=last, epoch=epoch)
            assert c.epoch == epoch
        stop.set()
        for t in threads:
            t.join(30)
        assert not failures, failures
        set_status(s, marker, "busy")
        mark = s.sql("SELECT max(id) FROM notify")[0][0]
        c.wait_for(lambda m: m.get("seq", 0) >= mark, timeout=60,
            what="the last row")
        got += seqs_of(c)
        assert not [m for m in c.log if m.get("type") ==
            "resync_required"], c.log[:3]
    finally:
        stop.set()
        c.close()
    want = expected(s, reader, start, mark)
    assert len(want) > 20 * KILLS, len(want)
    lost = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    dup = len(got) - len(set(got))
    assert not lost and not extra and not dup, (len(lost), lost[:10],
        extra[:10], dup)
    assert got == want


def test_relay_starts_while_a_writer_holds_the_database(start):
    # A relay restarted while writers are busy waits for them, instead of
    # exiting with its sockets already listening (nginx then answers 502).
    s = start()
    u = s.make_user()
    s.relay_kill(signal.SIGKILL)
    with s.write_lock():
        s.relay_start()
        time.sleep(1.0)
    with connect_user(s, u) as c:
        assert c.ping()["type"] == "pong"
    assert s.relay_pid() is not None
