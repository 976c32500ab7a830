"""Login throttling on the public surface: hard limits per (account,
address) and per address, only a slow-down per account, check and record
in one step; the client address from the connection, forwarded headers
only from a trusted proxy.

Loopback takes any 127.x.y.z as a source address, so a test speaks from
several real client addresses without any header."""

import concurrent.futures
import http.client
import json

import pytest

from harness import expect, start_system

INVALID_CREDENTIALS = {"error": "Invalid credentials"}
LIMITED = {"error": "Too many failed login attempts"}


class Reply:
    def __init__(self, status, headers, body):
        self.status_code = status
        self.headers = headers
        self.text = body.decode()

    def json(self):
        return json.loads(self.text)


def post_from(sb, source, path, body, headers=None):
    """POST body (JSON) to sb from the source address `source`."""
    c = http.client.HTTPConnection("127.0.0.1", sb.port, timeout=30,
                                   source_address=(source, 0))
    try:
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        c.request("POST", path, body=json.dumps(body), headers=h)
        r = c.getresponse()
        return Reply(r.status, dict(r.getheaders()), r.read())
    finally:
        c.close()


def login_from(sb, source, username, password, headers=None):
    return post_from(sb, source, "/api/login",
                     {"username": username, "password": password}, headers)


def failures(sb, username):
    return sb.sql("SELECT addr FROM login_attempts WHERE username = ? "
                  "ORDER BY id", (username,))


def test_others_cannot_lock_the_owner_out(sb):
    u = sb.make_user()
    # Wrong passwords from six other addresses: each is answered, none is
    # told to wait, and the account is not locked.
    for i in range(2, 8):
        r = login_from(sb, f"127.0.0.{i}", u["username"], "wrong-pw")
        expect(r, 401, INVALID_CREDENTIALS)
    assert [a for (a,) in failures(sb, u["username"])] == \
        [f"127.0.0.{i}" for i in range(2, 8)]
    # The owner, from their own address, gets in (only later than usual).
    r = login_from(sb, "127.0.0.1", u["username"], u["password"])
    data = expect(r, 200)
    assert data["user"]["id"] == u["id"]
    # The admin as well, with the same failures behind it.
    for i in range(2, 8):
        expect(login_from(sb, f"127.0.1.{i}", sb.admin_username, "nope-pw"),
               401, INVALID_CREDENTIALS)
    sb.login(sb.admin_username, sb.admin_password)


def test_pair_limit_stops_the_address_not_the_owner(sb):
    u = sb.make_user()
    for _ in range(5):
        expect(login_from(sb, "127.0.2.1", u["username"], "wrong-pw"), 401,
               INVALID_CREDENTIALS)
    # That address is done with this account, even with the right password.
    r = login_from(sb, "127.0.2.1", u["username"], u["password"])
    expect(r, 429, LIMITED)
    assert 1 <= int(r.headers["Retry-After"]) <= 300
    assert len(failures(sb, u["username"])) == 5  # the 429 wrote nothing
    # Another account from that address still gets its answers.
    v = sb.make_user()
    expect(login_from(sb, "127.0.2.1", v["username"], v["password"]), 200)
    # The owner, from elsewhere, gets in; that forgets only their own
    # address's failures.
    expect(login_from(sb, "127.0.2.2", u["username"], u["password"]), 200)
    assert len(failures(sb, u["username"])) == 5
    expect(login_from(sb, "127.0.2.1", u["username"], u["password"]), 429,
           LIMITED)


@pytest.mark.parametrize("kind", ["pair", "address"])
def test_parallel_burst_gets_exactly_the_limit(start, kind):
    # Eight workers: eight attempts in flight at once.
    s = start(env={"FCGI_CHILDREN": "8"})
    u = s.make_user()
    source = "127.0.4.1"
    limit = 5 if kind == "pair" else 20

    def one(i):
        name = u["username"] if kind == "pair" else f"burst{i}{u['username']}"
        r = login_from(s, source, name, "wrong-pw")
        return r.status_code

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(one, range(3 * limit)))
    assert sorted(set(codes)) == [401, 429], codes
    assert codes.count(401) == limit, codes
    assert s.sql("SELECT count(*) FROM login_attempts WHERE addr = ?",
                 (source,)) == [(limit,)]


@pytest.fixture(scope="module")
def proxied(tmp_path_factory):
    """A system behind a proxy: the test client (127.0.0.1) is listed in
    TRUSTED_PROXIES."""
    s = start_system(tmp_path_factory.mktemp("proxied"),
                     env={"TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8"})
    yield s
    s.stop()


def test_forwarded_for_from_a_trusted_proxy(proxied):
    s = proxied
    u = s.make_user()
    # The client as the proxies saw it: right to left, past the trusted
    # hops; what the client itself wrote further left proves nothing.
    for i in range(5):
        r = login_from(s, "127.0.0.1", u["username"], "wrong-pw",
                       {"X-Forwarded-For":
                        f"6.6.6.{i}, 203.0.113.9, 10.1.1.1"})
        expect(r, 401, INVALID_CREDENTIALS)
    assert [a for (a,) in failures(s, u["username"])] == \
        ["203.0.113.9"] * 5
    r = login_from(s, "127.0.0.1", u["username"], u["password"],
                   {"X-Forwarded-For": "203.0.113.9"})
    expect(r, 429, LIMITED)
    # Another client behind the same proxy is not affected.
    r = login_from(s, "127.0.0.1", u["username"], u["password"],
                   {"X-Forwarded-For": "203.0.113.10"})
    expect(r, 200)
    # A peer that is not listed cannot claim anything.
    for i in range(5):
        r = login_from(s, "127.0.0.2", u["username"], "wrong-pw",
                       {"X-Forwarded-For": f"203.0.113.{20 + i}",
                        "X-Real-IP": f"203.0.113.{20 + i}"})
        expect(r, 401, INVALID_CREDENTIALS)
    assert [a for (a,) in failures(s, u["username"])][5:] == \
        ["127.0.0.2"] * 5
    r = login_from(s, "127.0.0.2", u["username"], u["password"],
                   {"X-Forwarded-For": "203.0.113.99"})
    expect(r, 429, LIMITED)
