"""The guard in front of the /v1 API and the MCP server: a request over the size limit gets 413,
a client over its rate gets 429 with Retry-After, both as the OpenAI-style JSON error the API
answers with, before the request reaches a route (ASGI middleware, FastAPI's `middleware`).

The rate is counted by the `limits` library: a moving window per client, in memory, each
client's entries expiring with the window, so the memory it holds is bounded by the clients
seen in the last minute.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from .clients import client_of
from .limits import ServerLimits

LIMITED_PATHS = ("/v1/", "/gradio_api/mcp")  # what the guard covers


class RateLimiter:
    """At most `limit` requests per client in any `window_seconds` (a moving window). Thread-safe:
    the `limits` library's memory storage locks each client's entries."""

    def __init__(self, limit: int, window_seconds: int = 60):
        if limit < 1:
            raise ValueError(f"the rate limit must be at least 1 request, got {limit}")
        self.limit, self.window_seconds = limit, window_seconds
        self._item = RateLimitItemPerSecond(limit, window_seconds)
        self._counter = MovingWindowRateLimiter(MemoryStorage())

    def wait_seconds(self, client: str) -> float:
        """0 when `client` may go now (and counts the request); else the seconds until the
        oldest of its requests in the window leaves it."""
        if self._counter.hit(self._item, client):
            return 0.0
        reset = self._counter.get_window_stats(self._item, client).reset_time
        return max(reset - time.time(), 0.001)


class ApiLimitMiddleware:
    """ASGI middleware: /v1 and MCP requests over the size limit get 413, clients over their
    rate get 429 with Retry-After."""

    def __init__(self, app: Any, limits: ServerLimits):
        self.app, self.limits = app, limits
        per_minute = limits.api_per_minute
        self.rate = RateLimiter(per_minute) if per_minute else None

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
                f"try again in {max(1, round(wait))} s"
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
