"""PostgreSQL's own behaviour (the postgres pass of the suite): a server
restarted under the programs is 503 JSON while it is down and nothing once
it is back, with no restart of theirs; a password in DATABASE_URL reaches no
log and no output. Each test has a cluster of its own, so stopping it
troubles no other system."""

import re
import threading

import pytest

from harness import DB_ENGINE, PgCluster, expect
from wsclient import connect_user, wait_until

pytestmark = pytest.mark.skipif(
    DB_ENGINE != "postgres",
    reason="PostgreSQL's behaviour: runs in the SB_DB_ENGINE=postgres pass")


@pytest.fixture
def cluster():
    c = PgCluster()
    yield c
    c.stop()


def test_a_restarted_server_is_503_then_recovered(start, cluster):
    s = start(env={"DATABASE_URL": cluster.create_database()})
    u = s.make_user()
    expect(s.req("GET", "/protected/profile", token=u["token"]), 200)

    # Under load: what the programs answer all along is 200 or 503.
    seen, stop = {}, threading.Event()

    def load():
        while not stop.is_set():
            r = s.req("GET", "/protected/profile", token=u["token"])
            seen.setdefault(r.status_code, r.text[:200])

    workers = [threading.Thread(target=load, daemon=True)
               for _ in range(3)]
    for t in workers:
        t.start()
    cluster.stop_server()
    try:
        # Reads, writes and logins alike: busy, as JSON, no 500.
        expect(s.req("GET", "/protected/profile", token=u["token"]), 503,
               {"error": "database unavailable"})
        expect(s.req("POST", "/api/login", json={
            "username": u["username"], "password": u["password"]}), 503,
            {"error": "database unavailable"})
        expect(s.req("PUT", "/protected/status", token=u["token"],
                     json={"status": "busy"}), 503,
               {"error": "database unavailable"})
    finally:
        cluster.start_server()

    # Every worker reconnects on its next statement: a few requests reach
    # each of them.
    for _ in range(6):
        expect(s.req("GET", "/protected/profile", token=u["token"]), 200)
    stop.set()
    for t in workers:
        t.join()
    assert set(seen) <= {200, 503}, seen
    s.login(u["username"], u["password"])
    expect(s.req("PUT", "/protected/status", token=u["token"],
                 json={"status": "away"}), 200)
    assert s.sql("SELECT status FROM users WHERE id = ?",
                 (u["id"],)) == [("away",)]
    # The relay too: a socket opens, and an event written through REST
    # after the restart reaches it.
    v = s.make_user()
    with connect_user(s, u) as c:
        expect(s.req("PUT", "/protected/status", token=v["token"],
                     json={"status": "busy"}), 200)
        c.wait_type("user_status_changed", user_id=v["id"],
                    status="busy")
    wait_until(lambda: s.relay_pid() is not None, what="relay alive")


def test_no_password_of_the_url_in_logs_or_output(start, cluster):
    url = cluster.create_database()
    secret = "Pw" + "x7Kq2mZ9"
    # Trust on the socket: the password is carried, never asked for.
    with_pw = url.replace("postgresql://" + cluster.user + "@",
                          f"postgresql://{cluster.user}:{secret}@")
    assert secret in with_pw
    s = start(env={"DATABASE_URL": with_pw})
    u = s.make_user()
    expect(s.req("GET", "/protected/profile", token=u["token"]), 200)
    r = s.cli("migrate")
    assert r.returncode == 0
    assert re.search(r"to postgresql://\S+:xxx@", r.stdout), r.stdout
    assert secret not in r.stdout
    # A database that is not there: the failure names it, not the secret.
    bad = with_pw.replace("/sb_", "/missing_")
    r = s.cli("migrate", env={"DATABASE_URL": bad})
    assert r.returncode != 0
    cluster.stop_server()
    try:
        s.req("GET", "/protected/profile", token=u["token"])
    finally:
        cluster.start_server()
    s.stop()
    for f in sorted(s.log_dir.glob("*.log")):
        assert secret not in f.read_text(errors="replace"), f
