"""Shared fixtures: `sb`, one system for the whole session; `start`, for
tests that need a system of their own (special environment)."""

import pytest

from harness import pg_cluster_stop, start_system


@pytest.fixture(scope="session", autouse=True)
def _pg_cluster():
    """With SB_DB_ENGINE=postgres the harness starts one cluster for the
    session on first use; it is stopped and removed at the end."""
    yield
    pg_cluster_stop()


@pytest.fixture(scope="session")
def sb(tmp_path_factory):
    s = start_system(tmp_path_factory.mktemp("sb"))
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def _forget_failed_logins(request):
    """Failed logins count per client address too, and every test client is
    127.0.0.1: a test's deliberate failures must not throttle the next
    test's logins on the shared system."""
    yield
    if "sb" in request.fixturenames:
        request.getfixturevalue("sb").sql("DELETE FROM login_attempts")


@pytest.fixture
def start(tmp_path_factory):
    """start(env={...}) -> a System of its own, stopped (and its logs
    checked) after the test."""
    started = []

    def _start(env=None, build=None):
        s = start_system(tmp_path_factory.mktemp("own"), env=env,
                         build=build)
        started.append(s)
        return s

    yield _start
    for s in started:
        s.stop()
