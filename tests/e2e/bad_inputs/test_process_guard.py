"""The guard the service processes run under: a connection off loopback raises even without the URL guard."""

import subprocess
import sys

import pytest

from tests.support.service_stack import REPO_ROOT

pytestmark = pytest.mark.e2e

GUARD_PROBE = """
import httpx, sys
from tests.support.guarded_main import install_guard
install_guard()
try:
    httpx.get(sys.argv[1], timeout=2)
except BaseException as exc:
    print(type(exc).__name__, exc)
"""


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://10.0.0.1/", "ForbiddenTestTrafficError test tried to connect to 10.0.0.1"),
        ("http://169.254.169.254/", "ForbiddenTestTrafficError test tried to connect to 169.254.169.254"),
        ("http://[fd00:ec2::254]/", "ForbiddenTestTrafficError test tried to connect to fd00:ec2::254"),
        # A plain client connects by name; the guard refuses any name but localhost (no DNS leaves).
        ("http://private.example.test/", "ForbiddenTestTrafficError test connected to the name 'private.example.test'"),
        ("http://example.com/", "ForbiddenTestTrafficError test connected to the name 'example.com'"),
    ],
)
def test_service_processes_cannot_leave_loopback_even_if_the_address_guard_broke(url: str, expected: str) -> None:
    # The worker's own checks are bypassed here (a plain httpx.get): the process guard alone must stop it.
    probe = subprocess.run(
        [sys.executable, "-c", GUARD_PROBE, url], capture_output=True, text=True, timeout=60, cwd=REPO_ROOT
    )

    assert probe.stdout.startswith(expected), probe.stdout + probe.stderr
