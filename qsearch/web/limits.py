"""The limits that keep a public server usable for everyone, resolved once at start-up.

A server is public when it has a share link, listens on an address other than loopback, or runs
on a Hugging Face Space (which sets SPACE_ID). `limits` auto turns the public defaults on there;
on turns them on anywhere, off nowhere; a value given for a limit applies either way.

Also here: the per-client rate limiter of the /v1 API and the MCP server, and the ASGI middleware
that applies it and the request-size limit before a request reaches a route.
"""

from __future__ import annotations

import ipaddress
import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from ..config import ServerSettings

LOOPBACK = ("127.0.0.1", "localhost", "::1")
MEMORY_SHARE = 0.75  # the public memory budget: this share of what the machine (or cgroup) has
PUBLIC = {  # the public defaults, where a setting is left unset
    "data_quota_mb": 5_000,
    "api_per_minute": 60,
    "api_max_chars": 200_000,
    "request_max_kb": 2_048,
}
LIMITED_PATHS = ("/v1/", "/gradio_api/mcp")  # what the middleware guards
CLIENTS = 10_000  # clients the rate limiter remembers (least recently seen forgotten first)


@dataclass(frozen=True)
class ServerLimits:
    """The limits in force on this server (None: unbounded), and why."""

    public: bool = False
    on: bool = False
    memory_budget_mb: int | None = None
    data_quota_mb: int | None = None
    api_per_minute: int | None = None
    api_max_chars: int | None = None
    request_max_kb: int | None = None
    uploads_at_once: int = 4
    max_sessions: int = 500
    session_idle_minutes: float = 60.0
    max_collections: int = 20  # named collections per visitor

    @classmethod
    def resolve(
        cls, server: ServerSettings | None = None, env: Mapping[str, str] | None = None
    ) -> ServerLimits:
        """The limits `server` asks for; public defaults where the limits are on."""
        server = server or ServerSettings()
        env = os.environ if env is None else env
        host = server.host or env.get("GRADIO_SERVER_NAME") or LOOPBACK[0]  # Gradio reads it too
        public = bool(server.share or env.get("SPACE_ID")) or host not in LOOPBACK
        on = server.limits == "on" or (server.limits == "auto" and public)
        values: dict[str, Any] = {
            name: getattr(server, name)
            if getattr(server, name) is not None
            else (default if on else None)
            for name, default in PUBLIC.items()
        }
        budget = server.memory_budget_mb
        if budget is None and on:
            budget = int(MEMORY_SHARE * machine_memory() / 2**20)
        return cls(
            public=public,
            on=on,
            memory_budget_mb=budget,
            uploads_at_once=server.uploads_at_once,
            max_sessions=server.max_sessions,
            session_idle_minutes=server.session_idle_minutes,
            max_collections=server.max_collections,
            **values,
        )

    def summary(self) -> str:
        """The limits in words, for the page."""
        if not any((self.memory_budget_mb, self.data_quota_mb, self.api_per_minute)):
            return "no server-wide limits (a private server)"
        parts = [
            f"collections share {self.memory_budget_mb:,} MB of memory (the least recently "
            "used idle ones leave memory first)"
            if self.memory_budget_mb
            else "",
            f"kept collections share {self.data_quota_mb:,} MB of disk (the oldest go first)"
            if self.data_quota_mb
            else "",
            f"/v1 and MCP: {self.api_per_minute} requests a minute per client"
            if self.api_per_minute
            else "",
            f"{self.api_max_chars:,} characters per /v1 request" if self.api_max_chars else "",
            f"{self.uploads_at_once} uploads at once (one per visitor)",
        ]
        head = "Public server, limits on: " if self.public and self.on else "Limits: "
        return head + "; ".join(p for p in parts if p) + "."


def machine_memory() -> int:
    """Bytes of memory this process may use: the machine's, or its cgroup's limit if lower."""
    total = psutil.virtual_memory().total
    for limit in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(limit).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


class RateLimiter:
    """At most `per_minute` requests per client in any minute (a token bucket per client that
    refills continuously), for the CLIENTS clients seen most recently. Thread-safe."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic):
        if per_minute < 1:
            raise ValueError(f"per_minute must be at least 1, got {per_minute}")
        self.per_minute, self._clock = per_minute, clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, when
        self._lock = threading.Lock()

    def wait_seconds(self, client: str) -> float:
        """0 when `client` may go now (and counts the request); else how long until it may."""
        now, rate = self._clock(), self.per_minute / 60.0
        with self._lock:
            tokens, then = self._buckets.pop(client, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - then) * rate)
            wait = 0.0 if tokens >= 1 else (1 - tokens) / rate
            self._buckets[client] = (tokens - 1 if wait == 0 else tokens, now)
            while len(self._buckets) > CLIENTS:
                self._buckets.popitem(last=False)
        return wait


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


class ApiLimitMiddleware:
    """ASGI middleware: /v1 and MCP requests over the size limit get 413, clients over their
    rate get 429 with Retry-After, both as the OpenAI-style JSON error the API answers with."""

    def __init__(self, app: Any, limits: ServerLimits, clock: Callable[[], float] = time.monotonic):
        self.app, self.limits = app, limits
        per_minute = limits.api_per_minute
        self.rate = RateLimiter(per_minute, clock) if per_minute else None

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(LIMITED_PATHS):
            await self.app(scope, receive, send)
            return
        max_bytes = (self.limits.request_max_kb or 0) * 1024
        if max_bytes:
            receive, size = await _bounded_body(scope, receive, max_bytes)
            if size > max_bytes:
                message = f"the request body has over {max_bytes:,} bytes, at most {max_bytes:,}"
                await _refuse(send, 413, message, "invalid_request_error")
                return
        wait = self.rate.wait_seconds(client_of(scope)) if self.rate else 0.0
        if wait > 0:
            message = (
                f"too many requests: at most {self.limits.api_per_minute} a minute per client; "
                f"try again in {wait:.0f} s"
            )
            await _refuse(send, 429, message, "rate_limit_error", retry_after=wait)
            return
        await self.app(scope, receive, send)


async def _bounded_body(scope: dict, receive: Callable, max_bytes: int) -> tuple[Callable, int]:
    """(a receive that replays the body, its size) with the body read up to `max_bytes` + 1 (a
    declared Content-Length over the limit is refused without reading it)."""
    declared = dict(scope.get("headers") or []).get(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        return receive, int(declared)
    messages, size = [], 0
    while size <= max_bytes:
        message = await receive()
        messages.append(message)
        size += len(message.get("body", b""))
        if message["type"] != "http.request" or not message.get("more_body"):
            break

    async def replay() -> dict:
        return messages.pop(0) if messages else await receive()

    return replay, size


async def _refuse(
    send: Callable, status: int, message: str, kind: str, retry_after: float = 0.0
) -> None:
    body = json.dumps({"error": {"message": message, "type": kind, "code": status}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if retry_after:
        headers.append((b"retry-after", str(max(1, round(retry_after))).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
