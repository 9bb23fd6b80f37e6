"""Who sent a request: the address the nearest proxy saw, so that the per-client limits (the /v1
rate, uploads per visitor) count visitors, not the share link's tunnel or the Spaces proxy."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from .limits import LOOPBACK


def client_address(peer: str | None, forwarded: str | None) -> str:
    """Who sent a request: the address the nearest proxy saw (X-Forwarded-For's last entry, when
    the peer is a loopback or private address: a share link's tunnel, the Spaces proxy), else
    the peer's own address. The last entry is the one a client can't forge."""
    peer = peer or "unknown"
    try:
        behind_proxy = ipaddress.ip_address(peer).is_private or peer in LOOPBACK
    except ValueError:
        behind_proxy = False
    if forwarded and behind_proxy:
        return forwarded.split(",")[-1].strip() or peer
    return peer


def tells_visitors_apart(client: str) -> bool:
    """Whether `client` (from client_address) names one visitor: not a loopback or unknown
    address, which all visitors share behind a tunnel that says nothing of them."""
    return client not in (*LOOPBACK, "unknown", "local")


def client_of(scope: Mapping[str, Any]) -> str:
    """`client_address` of an ASGI request."""
    forwarded = dict(scope.get("headers") or []).get(b"x-forwarded-for", b"")
    return client_address((scope.get("client") or (None, 0))[0], forwarded.decode("latin-1"))
