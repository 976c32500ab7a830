"""Presence (first socket online, last socket offline), the connected
extension routes, and delivery of REST-triggered events to every socket."""

from wsclient import (barrier, connect_user, events, set_status, wait_until)

STATUS_CHANGED_KEYS = {"client_count", "extension", "is_online",
    "last_seen", "status", "timestamp", "type", "user_id", "username",
    "ws_connected"}


def db_presence(sb, user):
    rows = sb.sql("SELECT is_online, status FROM users WHERE id = ?",
        (user["id"],))
    return (int(rows[0][0] or 0), rows[0][1])


def check_status_changed(m, user, status, online, clients):
    assert set(m) - {"seq"} == STATUS_CHANGED_KEYS, sorted(m)
    assert isinstance(m["seq"], int), m
    assert m["type"] == "user_status_changed"
    assert m["user_id"] == user["id"]
    assert m["username"] == user["username"]
    assert m["extension"] == user["extension"]
    assert m["status"] == status, m
    assert m["is_online"] is online, m
    assert m["ws_connected"] is (clients > 0), m
    assert m["client_count"] == clients, m
    assert isinstance(m["timestamp"], int) and m["timestamp"] > 10**9, m
    assert isinstance(m["last_seen"], str) and m["last_seen"], m


def test_presence_first_and_last_socket(sb):
    obs, a, marker = sb.make_user(), sb.make_user(), sb.make_user()
    with connect_user(sb, obs, name="observer") as co:
        def is_a(status):
            return lambda m: (m.get("type") == "user_status_changed"
                and m.get("user_id") == a["id"] and
                m.get("status") == status)

        a1 = connect_user(sb, a, name="a1")
        m = co.wait_for(is_a("online"), what="a online")
        check_status_changed(m, a, "online", True, 1)
        wait_until(lambda: db_presence(sb, a) == (1, "online"),
            what="a online in db")
        # The user's own socket hears about itself too (everyone).
        a1.wait_for(is_a("online"), what="a online on a1")

        a2 = connect_user(sb, a, name="a2")
        a1.close()
        barrier(sb, marker, "busy", [co, a2])
        assert db_presence(sb, a) == (1, "online")
        again = [x for x in co.log if is_a("online")(x)]
        assert len(again) == 1, again
        assert not [x for x in co.log if is_a("offline")(x)]

        a2.close()
        m = co.wait_for(is_a("offline"), what="a offline")
        check_status_changed(m, a, "offline", False, 0)
        wait_until(lambda: db_presence(sb, a) == (0, "offline"),
            what="a offline in db")
        barrier(sb, marker, "away", [co])
        assert len([x for x in co.log if is_a("offline")(x)]) == 1


def test_reconnect_after_offline_announces_again(sb):
    obs, a = sb.make_user(), sb.make_user()
    with connect_user(sb, obs) as co:
        for _ in range(2):
            c = connect_user(sb, a)
            co.wait_type("user_status_changed", user_id=a["id"],
                status="online")
            c.close()
            co.wait_type("user_status_changed", user_id=a["id"],
                status="offline")


def test_extensions_connected_and_status(sb):
    a, b, c = sb.make_user(), sb.make_user(), sb.make_user()
    with connect_user(sb, a) as a1, connect_user(sb, a) as a2, \
        connect_user(sb, b) as b1:
        a1.ping(), a2.ping(), b1.ping()
        r = sb.req("GET", "/protected/extensions/connected",
            token=c["token"])
        assert r.status_code == 200, r.text
        j = r.json()
        assert set(j) == {"count", "details", "extensions", "success",
            "total_clients"}, j
        assert j["success"] is True
        assert j["details"][a["extension"]] == {"client_count": 2,
            "connected": True}
        assert j["details"][b["extension"]] == {"client_count": 1,
            "connected": True}
        assert c["extension"] not in j["details"]
        assert sorted(j["extensions"]) == sorted(j["details"])
        assert j["count"] == len(j["extensions"])
        assert j["total_clients"] == sum(d["client_count"]
            for d in j["details"].values())
        assert j["total_clients"] >= 3

        r = sb.req("GET", "/protected/extensions/status",
            token=c["token"])
        assert r.status_code == 200, r.text
        j = r.json()
        assert set(j) == {"connected_extensions", "connection_status",
            "success", "total_clients"}, j
        assert j["success"] is True
        assert a["extension"] in j["connected_extensions"]
        assert b["extension"] in j["connected_extensions"]
        assert c["extension"] not in j["connected_extensions"]
        rows = {x["extension"]: x for x in j["connection_status"]}
        nusers = sb.sql("SELECT count(*) FROM users")[0][0]
        assert len(j["connection_status"]) == nusers
        for x in j["connection_status"]:
            assert set(x) == {"client_count", "extension", "status",
                "status_match", "username", "ws_connected"}, x
            assert isinstance(x["status_match"], bool)
        assert rows[a["extension"]]["client_count"] == 2
        assert rows[a["extension"]]["ws_connected"] is True
        assert rows[a["extension"]]["status"] == "online"
        assert rows[a["extension"]]["username"] == a["username"]
        assert rows[b["extension"]]["client_count"] == 1
        assert rows[c["extension"]]["client_count"] == 0
        assert rows[c["extension"]]["ws_connected"] is False
    # After the sockets close the relay forgets them.
    def gone():
        j = sb.req("GET", "/protected/extensions/connected",
            token=c["token"]).json()
        return (a["extension"] not in j["details"] and
            b["extension"] not in j["details"])
    wait_until(gone, what="extensions disconnected")


def test_put_status_reaches_every_socket(sb):
    a, b, c = sb.make_user(), sb.make_user(), sb.make_user()
    socks = [connect_user(sb, a, name="a1"), connect_user(sb, a, name="a2"),
        connect_user(sb, b, name="b"), connect_user(sb, c, name="c")]
    try:
        j = set_status(sb, c, "busy")
        assert j["user"]["status"] == "busy"
        for s in socks:
            m = s.wait_type("user_status_changed", user_id=c["id"],
                status="busy")
            check_status_changed(m, c, "busy", True, 1)
            u = s.wait_type("user_status", status="busy",
                **{"from": c["extension"]})
            assert set(u) - {"seq"} == {"type", "from", "status",
                "timestamp"}, u
        set_status(sb, c, "away")
        for s in socks:
            s.wait_type("user_status_changed", user_id=c["id"],
                status="away")
            s.wait_type("user_status", status="away",
                **{"from": c["extension"]})
        for s in socks:
            assert len(events(s.log, "user_status_changed",
                user_id=c["id"], status="busy")) == 1
    finally:
        for s in socks:
            s.close()
