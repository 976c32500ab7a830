"""The deployment scripts: cli/install.sh into a staging root, the nginx
snippet as a site includes it, cli/deps.sh, cli/nginx-conf.sh."""

import os
import re
import shutil
import subprocess

import pytest

from harness import NGINX, REPO, free_port


def build_dir():
    return REPO / os.environ.get("SB_BUILD", "build/san")


def test_install_into_destdir(tmp_path):
    dest = tmp_path / "dest"
    r = subprocess.run([str(REPO / "cli" / "install.sh"), str(dest),
                        "/usr/local", str(build_dir())],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    root = dest / "usr" / "local"
    for f in ("bin/switchboard", "sbin/switchboard-relay"):
        assert os.access(root / f, os.X_OK), f
    progs = sorted(p.name for p in (build_dir() / "cgi-bin").iterdir()
                   if os.access(p, os.X_OK) and "." not in p.name)
    assert sorted(p.name for p in
                  (root / "lib" / "switchboard" / "cgi-bin").iterdir()) == progs
    share = root / "share" / "switchboard"
    assert (share / "html" / "index.html").exists()
    units = root / "lib" / "systemd" / "system"
    assert sorted(p.name for p in units.iterdir()) == [
        "switchboard-fcgi@.service", "switchboard-fcgi@.socket",
        "switchboard-relay.service", "switchboard.target"]
    for f in list(units.iterdir()) + [share / "switchboard.conf"]:
        assert not re.search(r"@[A-Z_]+@", f.read_text()), f
    svc = (units / "switchboard-fcgi@.service").read_text()
    assert "ExecStart=/usr/local/lib/switchboard/cgi-bin/%i" in svc
    assert "StandardInput=socket" in svc
    sock = (units / "switchboard-fcgi@.socket").read_text()
    assert "ListenStream=/run/switchboard/fcgi-%i.sock" in sock
    target = (units / "switchboard.target").read_text()
    for p in progs:
        assert f"switchboard-fcgi@{p}.socket" in target
    conf = (share / "switchboard.conf").read_text()
    assert "unix:/run/switchboard/fcgi-auth.sock" in conf
    assert "root /usr/local/share/switchboard/html;" in conf
    assert (root / "lib" / "sysusers.d" / "switchboard.conf").exists()
    assert (root / "lib" / "tmpfiles.d" / "switchboard.conf").exists()
    # A staged install ships no live configuration (and so no secret).
    assert not (dest / "etc").exists()
    assert "JWT_SECRET=\n" in (share / "switchboard.env.example").read_text()


def test_snippet_in_a_site_config(tmp_path):
    """The snippet as documented: included in a site's server block, the
    rate-limit zones in its http block. nginx must accept it."""
    snippet = tmp_path / "switchboard.conf"
    text = (REPO / "nginx" / "switchboard.conf").read_text()
    snippet.write_text(text.replace("@RUN_DIR@", str(tmp_path / "run"))
                       .replace("@HTML_ROOT@", str(REPO / "nginx" / "html")))
    (tmp_path / "logs").mkdir()
    site = tmp_path / "nginx.conf"
    site.write_text(f"""
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/logs/error.log;
events {{}}
http {{
    client_body_temp_path {tmp_path}/body;
    fastcgi_temp_path {tmp_path}/fastcgi;
    proxy_temp_path {tmp_path}/proxy;
    uwsgi_temp_path {tmp_path}/uwsgi;
    scgi_temp_path {tmp_path}/scgi;
    access_log off;
    limit_req_zone $binary_remote_addr zone=switchboard_login:10m rate=10r/s;
    limit_req_zone $binary_remote_addr zone=switchboard_register:10m rate=6r/m;
    server {{
        listen 127.0.0.1:{free_port()};
        server_name voip.example.org;
        location /other-app/ {{ return 204; }}
        include {snippet};
    }}
}}
""")
    r = subprocess.run([NGINX, "-t", "-c", str(site), "-p", str(tmp_path),
                        "-e", str(tmp_path / "logs" / "error.log")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr


def test_nginx_conf_refuses_bad_arguments(tmp_path):
    script = str(REPO / "cli" / "nginx-conf.sh")
    for args in (["relative", "127.0.0.1", "80", "/x"],
                 [str(tmp_path / "a b"), "127.0.0.1", "80", "/x"],
                 [str(tmp_path / "a;b"), "127.0.0.1", "80", "/x"],
                 [str(tmp_path), "127.0.0.1", "80x", "/x"],
                 [str(tmp_path), "127.0.0.1; user x", "80", "/x"],
                 [str(tmp_path), "127.0.0.1", "80"]):
        r = subprocess.run([script, *args], capture_output=True, text=True)
        assert r.returncode == 2, args
        assert r.stdout == ""
    r = subprocess.run([script, str(tmp_path), "::1", "8080", "/x"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "listen [::1]:8080;" in r.stdout


def test_deps_quiet_when_installed():
    r = subprocess.run([str(REPO / "cli" / "deps.sh"), "nginx", "sqlite3",
                        "spawn-fcgi"], capture_output=True, text=True)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root to drop to an unprivileged user")
def test_deps_unprivileged_prints_the_command():
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534",
                        "--clear-groups", str(REPO / "cli" / "deps.sh"),
                        "nginx", "switchboard-no-such-package"],
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stdout == ("sudo apt-get install -y --no-install-recommends "
                        "switchboard-no-such-package\n")
