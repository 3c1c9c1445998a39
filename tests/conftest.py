"""Shared fixtures: real sample data, embedded Redis, workers, live servers, browsers."""

import os

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.abspath(os.path.join(REPO_ROOT, "..", "shared", "data"))


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: slow test (CI still runs it)")
    config.addinivalue_line("markers", "e2e: browser test (Playwright + /usr/bin/chromium)")


@pytest.fixture(scope="session")
def shared_data():
    """Path of ../shared/data; skip when absent unless DIGITS_SEG_REQUIRE_REAL_DATA=1."""
    if not os.path.isdir(SHARED_DATA):
        if os.environ.get("DIGITS_SEG_REQUIRE_REAL_DATA") == "1":
            pytest.fail("real sample data missing at %s (DIGITS_SEG_REQUIRE_REAL_DATA=1)" % SHARED_DATA)
        pytest.skip("real sample data not present at %s" % SHARED_DATA)
    return SHARED_DATA
