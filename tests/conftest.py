"""Test-wide guards: the suite must pass with no network (only loopback is allowed)."""

import ipaddress
import os
import socket

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing may reach a model hub by default


def _is_loopback(address) -> bool:
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, bytes):
        host = host.decode()
    if not isinstance(host, str):  # AF_UNIX paths and the like never leave the machine
        return True
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False  # a host name other than localhost would need DNS, i.e. the network


@pytest.fixture(autouse=True, scope="session")
def no_network():
    """Refuse any connection that is not to this machine, so a hidden download fails loudly."""
    original = socket.socket.connect

    def guarded(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address):
            raise OSError(f"network access attempted during tests: {address!r} (the course must work offline)")
        return original(self, address)

    socket.socket.connect = guarded
    try:
        yield
    finally:
        socket.socket.connect = original


def pytest_report_header(config):
    try:
        import ipywidgets

        widgets = f"ipywidgets {ipywidgets.__version__}"
    except ImportError:
        widgets = "ipywidgets not installed"
    network = ("no network (tools/offline namespace, loopback only)" if os.environ.get("COURSE_NETNS") == "1"
               else "network guarded by tests/conftest.py (loopback only)")
    return f"course: {widgets}; {network}"
