"""Worker setup hook of a serve step's application in a local run (set in its runtime env by
mljob.local.serving): keep Ray Serve's replicas on loopback.

Ray Serve 2.60 starts an inter-deployment gRPC server in every replica on `[::]:0`, every
interface, with no setting to change it (ray/serve/_private/replica.py). A local run listens on
127.0.0.1 only (docs/local-mode.md), so in the replica's worker process the replica module's
`add_port_to_grpc_server` is wrapped to bind that server to 127.0.0.1 instead. The proxy and
other replicas reach a replica at its node's address, which in a local run is 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

HOOK = "mljob.local.serve_loopback.bind_serve_to_loopback"
ALL_INTERFACES = ("[::]:", "0.0.0.0:")
LOOPBACK = "127.0.0.1:"


def loopback_address(address: str) -> str:
    """`[::]:0` or `0.0.0.0:0` -> `127.0.0.1:0`; any other address as it is."""
    for prefix in ALL_INTERFACES:
        if address.startswith(prefix):
            return LOOPBACK + address[len(prefix) :]
    return address


def bind_serve_to_loopback() -> None:
    from ray.serve._private import replica

    original: Callable[[Any, str], int] = replica.add_port_to_grpc_server
    if getattr(original, "_mljob_loopback", False):
        return

    def add_port_on_loopback(server: Any, address: str) -> int:
        return original(server, loopback_address(address))

    add_port_on_loopback._mljob_loopback = True  # type: ignore[attr-defined]
    replica.add_port_to_grpc_server = add_port_on_loopback
