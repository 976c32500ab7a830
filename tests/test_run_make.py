"""The Makefile: a user's CFLAGS, CPPFLAGS, LDFLAGS and LDLIBS add to the
project's flags instead of replacing them (make -n: nothing is built)."""

import subprocess

import pytest

from harness import REPO


def dry_run(tmp_path, *args):
    b = tmp_path / "b"
    p = subprocess.run(
        ["make", "-n", "--no-print-directory", f"B={b}", *args],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, timeout=60)
    assert p.returncode == 0, p.stdout
    return b, p.stdout


def line_of(out, needle):
    lines = [ln for ln in out.splitlines() if ln.rstrip().endswith(needle)]
    assert lines, out
    return lines[0].split()


@pytest.mark.parametrize("mode", ["rel", "san"])
def test_user_flags_add_to_the_project_flags(tmp_path, mode):
    b, out = dry_run(tmp_path, f"MODE={mode}", "CFLAGS=-O0 -gdwarf-4",
                     "CPPFLAGS=-DSB_USER_DEFINE", "LDFLAGS=-Wl,--as-needed",
                     "LDLIBS=-lrt", f"{tmp_path}/b/cgi-bin/auth")
    cc = line_of(out, f"-c lib/err.c -o {b}/lib/err.o")
    for flag in ("-std=c11", "-Wall", "-Wextra", "-Werror", "-MMD", "-MP",
                 "-D_GNU_SOURCE", "-O0", "-gdwarf-4", "-DSB_USER_DEFINE"):
        assert flag in cc, (flag, cc)
    # The user's optimisation level comes after the project's, so it wins.
    assert cc.index("-O0") > max(i for i, f in enumerate(cc)
                                 if f in ("-O1", "-O2"))
    if mode == "san":
        assert "-fsanitize=address,undefined" in cc
    ld = line_of(out, f"-o {b}/cgi-bin/auth")
    for flag in ("-Wl,--as-needed", "-lrt", "-lfcgi", "-lm"):
        assert flag in ld, (flag, ld)
    if mode == "san":
        assert "-fsanitize=address,undefined" in ld
