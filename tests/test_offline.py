"""The network guard itself works, so a test that downloads something cannot pass by accident."""

import _socket
import errno
import os
import socket

import pytest


def test_outside_connections_are_refused():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with pytest.raises(OSError, match="network access attempted"):
            s.connect(("192.0.2.1", 80))  # TEST-NET-1: never routed
    finally:
        s.close()


def test_loopback_is_allowed():
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        client.connect(server.getsockname())
    finally:
        client.close()
        server.close()


@pytest.mark.skipif(os.environ.get("COURSE_NETNS") != "1", reason="not inside tools/offline's network namespace")
def test_the_namespace_has_no_route_out():
    """Under tools/offline even a raw socket (below the guard) cannot leave the machine."""
    raw = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
    raw.settimeout(5)
    try:
        with pytest.raises(OSError) as info:
            _socket.socket.connect(raw, ("192.0.2.1", 80))
        assert info.value.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ECONNREFUSED)
    finally:
        raw.close()
