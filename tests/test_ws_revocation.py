"""Every change that revokes a user's tokens closes that user's open
sockets (4003 "session revoked") through the notify stream, and the
relay's view of users follows the database."""

import pytest

from wsclient import (connect, connect_user, ctl, initiate, set_status,
    upgrade_refusal, wait_until, ws_url)


def closed_revoked(c):
    code = c.wait_closed(timeout=10)
    assert code == 4003, (code, c.closed)
    assert c.closed[1] == b"session revoked", c.closed


def connected_exts(sb, token):
    r = sb.req("GET", "/protected/extensions/connected", token=token)
    assert r.status_code == 200, r.text
    return r.text


def revoke_logout(sb, u):
    r = sb.req("POST", "/protected/logout", token=u["token"])
    assert r.status_code == 200, r.text


def revoke_delete(sb, u):
    r = sb.req("DELETE", f"/protected/admin/users/{u['id']}",
        token=sb.admin_token())
    assert r.status_code == 200, r.text


def revoke_role(sb, u):
    r = sb.req("PUT", f"/protected/admin/users/{u['id']}",
        token=sb.admin_token(), json={"role": "admin"})
    assert r.status_code == 200, r.text


def revoke_extension(sb, u):
    r = sb.req("PUT", f"/protected/admin/users/{u['id']}",
        token=sb.admin_token(), json={"extension": sb.free_extension()})
    assert r.status_code == 200, r.text


def revoke_passwd(sb, u):
    r = sb.cli("user", "passwd", u["username"], input="another-pass-1\n")
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("revoke", [revoke_logout, revoke_delete,
    revoke_role, revoke_extension, revoke_passwd])
def test_revocation_closes_open_sockets(sb, revoke):
    u, other = sb.make_user(), sb.make_user()
    c1, c2 = connect_user(sb, u), connect_user(sb, u)
    co = connect_user(sb, other)
    try:
        c1.ping()
        revoke(sb, u)
        closed_revoked(c1)
        closed_revoked(c2)
        # Nobody else is touched; the user no longer counts as connected.
        co.ping()
        w = ctl(sb, {"op": "who", "extension": u["extension"]})
        assert w == {"ok": True, "extension": u["extension"],
            "clients": 0}, w
        assert u["extension"] not in connected_exts(sb, other["token"])
        # The old token cannot come back.
        status, body = upgrade_refusal(ws_url(sb, token=u["token"]))
        assert status == 401, (status, body)
        assert body == {"error": "Invalid token: " + (
            "user no longer exists" if revoke is revoke_delete else
            "token has been revoked")}, body
    finally:
        for c in (c1, c2, co):
            c.close()


def test_new_login_survives_the_revocation_before_it(sb):
    """A socket opened with the token issued after a logout is not closed
    by that logout's event, however late the relay reads it."""
    u = sb.make_user()
    with connect_user(sb, u) as c:
        revoke_logout(sb, u)
        closed_revoked(c)
    u["token"] = sb.login(u["username"], u["password"])
    with connect_user(sb, u) as c:
        m = sb.make_user()
        set_status(sb, m, "busy")
        c.wait_type("user_status_changed", user_id=m["id"], status="busy")
        c.ping()


def test_extension_reassignment_delivery_follows(sb):
    """A moves from X to Y, B is given X: what is sent to X reaches B only,
    and a call to X rings B."""
    a, b, caller = sb.make_user(), sb.make_user(), sb.make_user()
    x = a["extension"]
    ca = connect_user(sb, a)
    cb = connect_user(sb, b)
    try:
        y = sb.free_extension()
        r = sb.req("PUT", f"/protected/admin/users/{a['id']}",
            token=sb.admin_token(), json={"extension": y})
        assert r.status_code == 200, r.text
        closed_revoked(ca)
        r = sb.req("PUT", f"/protected/admin/users/{b['id']}",
            token=sb.admin_token(), json={"extension": x})
        assert r.status_code == 200, r.text
        closed_revoked(cb)
        a["extension"], b["extension"] = y, x
        a["token"] = sb.login(a["username"], a["password"])
        b["token"] = sb.login(b["username"], b["password"])
        ca, cb = connect_user(sb, a), connect_user(sb, b)
        w = ctl(sb, {"op": "who", "extension": x})
        assert w["clients"] == 1, w
        r = ctl(sb, {"op": "deliver", "extension": x,
            "message": {"type": "probe"}})
        assert r == {"ok": True, "delivered": 1}, r
        cb.wait_type("probe")
        cc = connect_user(sb, caller)
        try:
            r = initiate(sb, caller, x)
            assert r.status_code == 200, r.text
            call_id = r.json()["call_id"]
            cb.wait_type("webrtc_call_invitation", call_id=call_id)
            ca.ping()
            assert not [m for m in ca.log if m.get("type") in
                ("probe", "webrtc_call_invitation")], ca.log
        finally:
            cc.close()
    finally:
        ca.close()
        cb.close()


def test_deleted_users_extension_reused(sb):
    a, caller = sb.make_user(), sb.make_user()
    x = a["extension"]
    ca = connect_user(sb, a)
    revoke_delete(sb, a)
    closed_revoked(ca)
    ca.close()
    r = sb.req("POST", "/protected/admin/users", token=sb.admin_token(),
        json={"username": a["username"] + "n", "email": "n" + a["email"],
        "password": a["password"], "extension": x, "role": "user"})
    assert r.status_code == 201, r.text
    d = {"id": r.json()["user"]["id"], "extension": x,
        "token": sb.login(a["username"] + "n", a["password"])}
    with connect(sb, token=d["token"]) as cd, \
            connect_user(sb, caller) as cc:
        r = initiate(sb, caller, x)
        assert r.status_code == 200, r.text
        call_id = r.json()["call_id"]
        cd.wait_type("webrtc_call_invitation", call_id=call_id)
        cc.wait_type("webrtc_call_initiated", call_id=call_id)
        wait_until(lambda: ctl(sb, {"op": "who", "extension": x})
            ["clients"] == 1, what="new holder connected")
