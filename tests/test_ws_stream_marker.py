"""Only the revocation rows the database writes steer the relay: a user
whose name or status text spells the revocation type is an ordinary user,
and its events reach everyone."""

from harness import _random_text
from wsclient import connect_user, set_status


def named_user(sb, username):
    password = _random_text(16)
    r = sb.req("POST", "/protected/admin/users", token=sb.admin_token(),
               json={"username": username, "email": username + "@x.test",
                     "password": password,
                     "extension": sb.free_extension()})
    assert r.status_code == 201, r.text
    u = r.json()["user"]
    return dict(u, password=password, token=sb.login(username, password))


def test_a_user_named_like_the_revocation_is_delivered(sb):
    mallory = named_user(sb, "session_revoked")
    watcher = sb.make_user()
    with connect_user(sb, watcher) as w, connect_user(sb, mallory) as m:
        set_status(sb, mallory, "busy")
        got = w.wait_type("user_status_changed", username="session_revoked",
                          status="busy")
        assert got["user_id"] == mallory["id"]
        # Mallory's own socket was not closed as "revoked" either.
        assert m.ping()["type"] == "pong"
