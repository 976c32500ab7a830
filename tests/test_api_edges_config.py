"""GET /config from the configuration: PUBLIC_URL (or voip-application's
PUBLIC_HOST), forwarded headers only from TRUSTED_PROXIES, never Host, and
never stored by a cache."""

import pytest

from harness import expect

EVIL = {"Host": "evil.example", "X-Forwarded-Proto": "http",
        "X-Forwarded-Host": "evil.example"}


def config(s, headers=None):
    r = s.req("GET", "/config", headers=headers)
    data = expect(r, 200)
    assert r.headers["Cache-Control"] == "no-store"
    return data["config"]


def test_config_from_public_url(start):
    s = start(env={"PUBLIC_URL": "https://voip.example.org/",
                   "PUBLIC_HOST": "ignored.example"})
    for h in (None, EVIL):
        c = config(s, h)
        assert c["api_url"] == "https://voip.example.org"
        assert c["ws_url"] == "wss://voip.example.org/ws"


def test_config_from_public_host(start):
    # voip-application's setting, with its meaning: http://PUBLIC_HOST:PORT.
    s = start(env={"PUBLIC_HOST": "pbx.example.org"})
    c = config(s, EVIL)
    assert c["api_url"] == f"http://pbx.example.org:{s.port}"
    assert c["ws_url"] == f"ws://pbx.example.org:{s.port}/ws"


def test_config_behind_a_trusted_proxy(start):
    s = start(env={"TRUSTED_PROXIES": "127.0.0.1"})
    c = config(s, {"Host": "evil.example",
                   "X-Forwarded-Proto": "https",
                   "X-Forwarded-Host": "voip.example.org:8443"})
    assert c["api_url"] == "https://voip.example.org:8443"
    assert c["ws_url"] == "wss://voip.example.org:8443/ws"
    # Without X-Forwarded-Host: the address the request came in on.
    c = config(s, {"Host": "evil.example"})
    assert c["api_url"] == s.base


@pytest.mark.parametrize("env,var", [
    ({"PUBLIC_URL": "https://voip.example.org/app"}, "PUBLIC_URL"),
    ({"PUBLIC_URL": "voip.example.org"}, "PUBLIC_URL"),
    ({"TRUSTED_PROXIES": "10.0.0.0/33"}, "TRUSTED_PROXIES"),
    ({"TRUSTED_PROXIES": "proxy.example"}, "TRUSTED_PROXIES"),
])
def test_bad_public_settings_refuse_to_start(sb, env, var):
    # The command-line tool loads the same configuration as the programs.
    r = sb.cli("migrate", env=env)
    assert r.returncode != 0
    assert var in sb.log_text("cli").splitlines()[-1]
