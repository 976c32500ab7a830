"""PostgreSQL going away under load: while it is down every program answers
503 with a JSON error (never a 500, a 502 or a hang), and when it is back
they, and the relay, recover by themselves, without a restart."""

import threading
import time

import pytest

from harness import DB_ENGINE, pg_cluster
from wsclient import connect_user, set_status, wait_until

pytestmark = pytest.mark.skipif(
    DB_ENGINE != "postgres", reason="a database server to restart")


def test_programs_answer_503_while_postgres_is_down_and_recover(start):
    s = start()
    u, marker = s.make_user(), s.make_user()
    statuses = {}
    stop = threading.Event()

    def load():
        while not stop.is_set():
            r = s.req("GET", "/protected/profile", token=u["token"])
            statuses.setdefault(r.status_code, r)

    c = connect_user(s, u)
    workers = [threading.Thread(target=load) for _ in range(3)]
    for t in workers:
        t.start()
    try:
        time.sleep(0.3)
        pg_cluster().stop_server()
        try:
            # Down: the answers are 503 JSON, for reads and writes alike.
            wait_until(lambda: 503 in statuses, what="a 503 while down")
            r = s.req("GET", "/protected/profile", token=u["token"])
            assert r.status_code == 503, (r.status_code, r.text)
            assert r.headers["Content-Type"].startswith("application/json")
            assert r.json()["error"], r.text
            r = s.req("PUT", "/protected/status", token=marker["token"],
                      json={"status": "busy"})
            assert r.status_code == 503, (r.status_code, r.text)
            r = s.req("POST", "/api/login", json={
                "username": u["username"], "password": u["password"]})
            assert r.status_code == 503, (r.status_code, r.text)
        finally:
            pg_cluster().start_server()
        # Back: the same processes answer again.
        wait_until(lambda: s.req("GET", "/protected/profile",
                                 token=u["token"]).status_code == 200,
                   timeout=20, what="profile answers again")
    finally:
        stop.set()
        for t in workers:
            t.join()
    assert set(statuses) <= {200, 503}, {
        k: v.text[:200] for k, v in statuses.items()}
    # The relay reads the stream again: an event written now arrives.
    set_status(s, marker, "away")
    c.wait_for(lambda m: m.get("type") == "user_status_changed"
               and m.get("user_id") == marker["id"]
               and m.get("status") == "away", timeout=20)
    c.close()
