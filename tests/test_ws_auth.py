"""WebSocket authentication at upgrade: ?token= like REST, ?extension= only
in legacy mode."""

import time

import pytest
import websocket

from harness import make_token, start_system, token_parts
from wsclient import (Client, connect, connect_user, ctl, upgrade_refusal,
    ws_url)


def refused(url):
    """(status, body) of a refused upgrade."""
    return upgrade_refusal(url)


def invalid(reason):
    return (401, {"error": "Invalid token: " + reason})


def jwt_claims(token):
    return token_parts(token)[1]


def jwt_hs256(secret, claims, alg="HS256"):
    return make_token(secret, claims, alg=alg)


def test_token_accepted_welcome_first(sb):
    u = sb.make_user()
    with connect_user(sb, u) as c:
        pong = c.ping()
        assert set(pong) == {"type", "timestamp"}, pong
        assert isinstance(pong["timestamp"], int)
        assert abs(pong["timestamp"] - time.time()) < 60


def test_no_credentials_refused(sb):
    assert refused(sb.ws_url) == (401, {"error": "Token required"})


def test_extension_alone_refused(sb):
    u = sb.make_user()
    assert refused(ws_url(sb, extension=u["extension"])) == \
        (401, {"error": "Token required"})


def test_garbage_token_refused(sb):
    assert refused(ws_url(sb, token="not.a.jwt")) == \
        invalid("token is malformed")
    assert refused(ws_url(sb, token="")) == (401, {"error": "Token required"})


def test_malformed_since_and_epoch_refused(sb):
    u = sb.make_user()
    for since in ("abc", "-1", "1x", "99999999999999999999"):
        assert refused(ws_url(sb, token=u["token"], since=since)) == \
            (400, {"error": "Invalid since parameter"}), since
    assert refused(ws_url(sb, token=u["token"], epoch="e" * 40)) == \
        (400, {"error": "Invalid epoch parameter"})


def test_plain_http_refused(sb):
    r = sb.req("GET", "/ws")
    assert (r.status_code, r.json()) == (400,
        {"error": "WebSocket upgrade required"})


def test_tampered_and_foreign_tokens_refused(sb):
    u = sb.make_user()
    claims = jwt_claims(u["token"])
    # Same claims, another key.
    forged = jwt_hs256("x" * 48, claims)
    assert refused(ws_url(sb, token=forged)) == \
        invalid("signature is invalid")
    # A claim changed under the original signature.
    head, body, sig = u["token"].split(".")
    other = dict(claims, extension="9" + claims["extension"][1:],
        user_id=claims["user_id"] + 1)
    swapped = jwt_hs256("k", other).split(".")[1]
    assert refused(ws_url(sb, token=head + "." + swapped + "." + sig)) == \
        invalid("signature is invalid")
    # alg none.
    assert refused(ws_url(sb, token=jwt_hs256("", claims, alg="none"))) \
        == invalid("signing method none is invalid")


def test_expired_token_refused(sb):
    u = sb.make_user()
    claims = jwt_claims(u["token"])
    now = int(time.time())
    claims.update(iat=now - 7200, nbf=now - 7200, exp=now - 3600)
    tok = jwt_hs256(sb.env["JWT_SECRET"], claims)
    # The same construction, unexpired, is accepted: the refusal is
    # about expiry, not about how the test signs.
    claims_ok = dict(claims, exp=now + 3600)
    ok = jwt_hs256(sb.env["JWT_SECRET"], claims_ok)
    with connect(sb, token=ok) as c:
        c.ping()
    assert refused(ws_url(sb, token=tok)) == invalid("token is expired")


def test_revoked_token_refused(sb):
    u = sb.make_user()
    with connect_user(sb, u) as c:
        c.ping()
    r = sb.req("POST", "/protected/logout", token=u["token"])
    assert r.status_code == 200, r.text
    assert refused(ws_url(sb, token=u["token"])) == \
        invalid("token has been revoked")
    # A fresh login works again.
    tok = sb.login(u["username"], u["password"])
    with connect(sb, token=tok) as c:
        c.ping()


def test_extension_cannot_override_token(sb):
    """
    ?extension= next to a token never picks another identity: the
    upgrade is refused, or the socket is the token's user.
    """
    a = sb.make_user()
    b = sb.make_user()
    url = ws_url(sb, token=a["token"], extension=b["extension"])
    try:
        c = Client(url, name="a+ext-b")
    except (websocket.WebSocketException, ConnectionError, OSError):
        return
    try:
        assert c.recv()["type"] == "welcome"
        with connect_user(sb, b) as cb:
            c.send({"type": "call_status", "to": b["extension"],
                "from": b["extension"], "status": "x"})
            m = cb.wait_type("call_status")
            assert m["from"] == a["extension"], m
    finally:
        c.close()


@pytest.fixture(scope="module")
def legacy(tmp_path_factory, sb):
    s = start_system(str(tmp_path_factory.mktemp("legacy")),
        env={"WS_LEGACY_EXTENSION_AUTH": "true"}, build=sb.build)
    yield s
    s.stop()


def test_legacy_extension_auth(legacy):
    u = legacy.make_user()
    with connect(legacy, extension=u["extension"]) as c:
        c.ping()
        # Presence works for a legacy socket too.
        rows = legacy.sql("SELECT is_online, status FROM users "
            "WHERE extension = ?", (u["extension"],))
        assert rows
    # Unknown extension refused.
    assert refused(ws_url(legacy, extension="98765")) == \
        (401, {"error": "Unknown extension"})
    # Tokens still work, bad ones still fail.
    with connect_user(legacy, u) as c:
        c.ping()
    assert refused(ws_url(legacy, token="a.b.c")) == \
        invalid("token is malformed")


def test_socket_closed_when_token_expires(sb):
    u = sb.make_user()
    claims = jwt_claims(u["token"])
    now = int(time.time())
    claims.update(iat=now, nbf=now, exp=now + 3)
    tok = jwt_hs256(sb.env["JWT_SECRET"], claims)
    with connect(sb, token=tok) as c:
        c.ping()
        code = c.wait_closed(timeout=20)
        assert code == 4001, code
        assert c.closed[1] == b"token expired", c.closed
    assert refused(ws_url(sb, token=tok)) == invalid("token is expired")


def test_exp_near_int64_max_is_no_overflow(sb):
    """A validly signed token whose exp is near 2^63: the socket works, and
    the sanitized relay (this suite's build) survives arming its timer."""
    u = sb.make_user()
    claims = jwt_claims(u["token"])
    for exp in (2**63 - 1, 2**63 - 2**20, 2**62):
        tok = jwt_hs256(sb.env["JWT_SECRET"], dict(claims, exp=exp))
        with connect(sb, token=tok) as c:
            c.ping()
        assert ctl(sb, {"op": "stats"})["ok"] is True
