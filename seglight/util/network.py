"""Whether this machine can reach a server: one probe for every place that would otherwise wait on a network."""

from __future__ import annotations

import socket

TIMEOUT_S = 3.0  # an offline machine answers within this; a slow network still connects


def reachable(host: str, port: int = 443, timeout: float = TIMEOUT_S) -> bool:
    """True if a TCP connection to ``host:port`` opens within ``timeout`` seconds."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False
