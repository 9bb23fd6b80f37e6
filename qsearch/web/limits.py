"""The limits that keep a public server usable for everyone, resolved once at start-up.

A server is public when it has a share link, listens on an address other than loopback, or runs
on a Hugging Face Space (which sets SPACE_ID). `limits` auto turns the public defaults on there;
on turns them on anywhere, off nowhere; a value given for a limit applies either way.

Who a client is lives in `clients.py`; the middleware that applies the /v1 and MCP limits to each
request in `api_guard.py`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
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


@dataclass(frozen=True)
class ServerLimits:
    """The limits in force on this server (None: unbounded), and why."""

    public: bool = False
    on: bool = False
    public_reason: str = ""  # why the server is public ("--share: a public link", ...)
    login: bool = False  # whether the page asks for a login (--auth)
    memory_budget_mb: int | None = None
    data_quota_mb: int | None = None
    api_per_minute: int | None = None
    api_max_chars: int | None = None
    request_max_kb: int | None = None
    uploads_at_once: int = 4
    max_sessions: int = 500
    session_idle_minutes: float = 60.0
    max_collections: int = 20  # named collections per visitor
    api_owner: bool = False  # every API and MCP client opens the owner's collections

    @classmethod
    def resolve(
        cls, server: ServerSettings | None = None, env: Mapping[str, str] | None = None
    ) -> ServerLimits:
        """The limits `server` asks for (None: the QSEARCH_* variables', as `python app.py` reads
        them); public defaults where the limits are on."""
        env = os.environ if env is None else env
        server = server or ServerSettings.from_env(env)
        host = server.host or env.get("GRADIO_SERVER_NAME") or LOOPBACK[0]  # Gradio reads it too
        reason = public_reason(host, server.share, env.get("SPACE_ID"))
        public = bool(reason)
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
            public_reason=reason,
            login=bool(server.auth),
            memory_budget_mb=budget,
            uploads_at_once=server.uploads_at_once,
            max_sessions=server.max_sessions,
            session_idle_minutes=server.session_idle_minutes,
            max_collections=server.max_collections,
            api_owner=server.api_collections == "owner"
            or (server.api_collections == "auto" and not (public or on)),
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

    def public_warning(self) -> str:
        """What to tell the operator (terminal) and the visitors (page) when the server is public
        and asks for no login; empty otherwise."""
        if not self.public or self.login:
            return ""
        return public_warning(self.public_reason)


def public_reason(host: str | None, share: bool, space_id: str | None) -> str:
    """Why a server is public, in words ("" when it is private): a share link, a Space, or an
    address other than loopback."""
    if share:
        return "--share: a public *.gradio.live link"
    if space_id:
        return f"a Hugging Face Space ({space_id})"
    host = host or LOOPBACK[0]
    return "" if host in LOOPBACK else f"listening on {host}, reachable from other machines"


def public_warning(reason: str) -> str:
    """The warning for a public server (`reason`, from public_reason) that asks for no login."""
    on_space = reason.startswith("a Hugging Face Space")
    how = (
        "Set QSEARCH_AUTH=USER:PASSWORD as a secret in the Space's settings, or make the Space "
        "private"
        if on_space
        else "Add --auth USER:PASSWORD (or set QSEARCH_AUTH) to ask for a login"
    )
    return (
        f"This server is public ({reason}) and asks for no login: anyone who can reach it can "
        f"upload documents, search them and use this machine's processor. {how}; the /v1 API "
        "takes --api-key."
    )


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
