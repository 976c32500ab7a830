"""Single-use tickets for the WebSocket upgrade (POST /protected/ws-ticket),
and no credential in nginx's logs when the relay is down."""

import re
from wsclient import Client, refused, upgrade_refusal, wait_until

TICKET_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")


def ticket(sb, token):
    r = sb.req("POST", "/protected/ws-ticket", token=token)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"ticket", "expires_in"}, body
    assert TICKET_RE.match(body["ticket"]), body
    assert body["expires_in"] == 30
    return body["ticket"]


def ticket_url(sb, t):
    return sb.ws_url + "?ticket=" + t


def welcome(c):
    m = c.recv()
    assert m["type"] == "welcome", m
    return m


def test_ticket_opens_one_socket_once(sb):
    u = sb.make_user()
    t = ticket(sb, u["token"])
    with Client(ticket_url(sb, t), name=u["extension"]) as c:
        welcome(c)
        pong = c.ping()
        assert pong["type"] == "pong"
    # Used: a second upgrade with it is refused, with the JSON reason.
    assert upgrade_refusal(ticket_url(sb, t)) == \
        (401, {"error": "Invalid ticket"})
    assert sb.sql("SELECT count(*) FROM ws_tickets WHERE ticket = ?",
                  (t,))[0][0] == 0


def test_ticket_needs_a_token(sb):
    r = sb.req("POST", "/protected/ws-ticket")
    assert r.status_code == 401, r.text
    assert r.json() == {"error": "Authorization header required"}
    r = sb.req("GET", "/protected/ws-ticket", token=sb.make_user()["token"])
    assert r.status_code == 405, r.text
    assert sb.sql("SELECT count(*) FROM ws_tickets WHERE user_id IS NULL"
                  )[0][0] == 0


def test_forged_and_malformed_tickets_refused(sb):
    for t in ("", "x", "A" * 43, "A" * 44, "%27%20OR%201%3D1--"):
        assert upgrade_refusal(ticket_url(sb, t)) == \
            (401, {"error": "Invalid ticket"}), t


def test_ticket_refused_after_logout(sb):
    u = sb.make_user()
    t = ticket(sb, u["token"])
    r = sb.req("POST", "/protected/logout", token=u["token"])
    assert r.status_code == 200, r.text
    assert upgrade_refusal(ticket_url(sb, t)) == \
        (401, {"error": "Invalid ticket"})


def test_ticket_expires(sb):
    u = sb.make_user()
    t = ticket(sb, u["token"])
    # Age it past its 30 s as a clock would, in the row itself.
    sb.sql("UPDATE ws_tickets SET expires_at = expires_at - 31 "
           "WHERE ticket = ?", (t,))
    assert upgrade_refusal(ticket_url(sb, t)) == \
        (401, {"error": "Invalid ticket"})


def test_tickets_per_user_are_bounded(sb):
    u = sb.make_user()
    for _ in range(20):
        ticket(sb, u["token"])
    n = sb.sql("SELECT count(*) FROM ws_tickets WHERE user_id = ?",
               (u["id"],))[0][0]
    assert n == 16


def test_no_credential_in_nginx_logs_while_relay_is_down(sb):
    u = sb.make_user()
    t = ticket(sb, u["token"])
    sb.relay_kill()
    try:
        for url in (ticket_url(sb, t), sb.ws_url + "?token=" + u["token"]):
            assert upgrade_refusal(url) == \
                (502, {"error": "Service unavailable"})
    finally:
        sb.relay_start()
    wait_until(lambda: refused(sb.ws_url) == 401, what="relay back")
    logs = sb.log_text("nginx-error") + sb.log_text("nginx-access")
    assert u["token"] not in logs
    assert t not in logs
    assert "eyJhbGciOi" not in logs
    # The upgrade was still recorded, without its query string.
    assert re.search(r'"GET /ws HTTP/1\.1" 502', sb.log_text("nginx-access"))


def test_socket_opened_by_ticket_is_revoked_with_its_token(sb):
    u = sb.make_user()
    with Client(ticket_url(sb, ticket(sb, u["token"])),
                name=u["extension"]) as c:
        welcome(c)
        r = sb.req("POST", "/protected/logout", token=u["token"])
        assert r.status_code == 200, r.text
        assert c.wait_closed(timeout=10) == 4003
        assert c.closed[1] == b"session revoked"
