"""`python app.py`'s flags: the server's own (address, share link, login, the limits of a public
server, where collections are kept) and, from `cli_flags`, the model, reading and Milvus flags the
CLI has too, so each flag is defined once. A flag's dest is the name of the setting it sets.
"""

from __future__ import annotations

import argparse

from .cli_flags import (
    common_flags,
    flags_of,
    milvus_flags,
    ocr_flags,
    rerank_model_flags,
    settings_from,
)
from .config import API_COLLECTIONS, LIMITS, ServerSettings, Settings


def app_parser() -> argparse.ArgumentParser:
    """`python app.py`'s parser: the server's flags, then the model, reading and Milvus ones."""
    p = argparse.ArgumentParser(prog="python app.py", description="qsearch web app")
    p.add_argument("--host", help="address to listen on (default 127.0.0.1; 0.0.0.0 for a LAN)")
    p.add_argument("--port", type=int, help="port (default 7860, or the next free one)")
    p.add_argument(
        "--share",
        action="store_const",
        const=True,
        help="also serve on a temporary public *.gradio.live link (anyone with it can use the app)",
    )
    p.add_argument(
        "--index", metavar="DIR", help="a read-only index every session searches besides its own"
    )
    milvus_flags(p)
    rerank_model_flags(p, app=True)
    p.add_argument("--max-file-mb", type=float, metavar="N", help="largest upload (default 50)")
    ocr_flags(p)
    p.add_argument("--api-key", help="require 'Authorization: Bearer KEY' on the /v1 API")
    p.add_argument(
        "--no-mcp",
        dest="mcp",
        action="store_false",
        default=None,
        help="don't serve the MCP tools at /gradio_api/mcp/",
    )
    _keeping_flags(p)
    _limit_flags(p)
    common_flags(p)
    return p


def _limit_flags(p: argparse.ArgumentParser) -> None:
    """The page's login and the limits that keep a public server usable for everyone."""
    p.add_argument("--auth", metavar="USER:PASSWORD", help="ask for this login before the page")
    p.add_argument(
        "--limits",
        choices=LIMITS,
        help="auto (the default): the public limits are on when the app is public (--share, a "
        "host other than loopback, a Space); on; off. A limit given below applies either way",
    )
    for flag, metavar, kind, text in (
        ("--memory-budget-mb", "MB", int, "the server's memory, all collections (public: 75%%)"),
        ("--data-quota-mb", "MB", int, "--data-dir's size; oldest collections go first (5000)"),
        ("--api-per-minute", "N", int, "/v1 and MCP requests per client a minute (public: 60)"),
        ("--api-max-chars", "N", int, "characters in one /v1 request (public: 200000)"),
        ("--request-max-kb", "KB", int, "one /v1 or MCP request's body (public: 2048)"),
        ("--uploads-at-once", "N", int, "uploads indexed at once on the server (4)"),
        ("--max-sessions", "N", int, "visitors' collections in memory at once (500)"),
        ("--max-collections", "N", int, "named collections one visitor may have (20)"),
        ("--session-idle-minutes", "M", float, "a collection unused this long leaves memory (60)"),
        ("--max-files", "N", int, "files in one visitor's collection (200)"),
        ("--max-chunks", "N", int, "chunks in one visitor's collection (100000)"),
    ):
        p.add_argument(flag, metavar=metavar, type=kind, help=text)


def _keeping_flags(p: argparse.ArgumentParser) -> None:
    """Where the app keeps collections, and what it tells the operator."""
    for flag, metavar, kind, text in (
        (
            "--data-dir",
            "DIR",
            str,
            "keep visitors' collections here; 'off': in memory only (default: the user data "
            "folder; on a Space /data when it has storage, else a temporary folder)",
        ),
        ("--data-idle-hours", "H", float, "delete a kept collection unused this long (24)"),
        ("--low-confidence-log", "PATH", str, "log weak searches, as JSON (records queries)"),
    ):
        p.add_argument(flag, metavar=metavar, type=kind, help=text)
    p.add_argument(
        "--api-collections",
        choices=API_COLLECTIONS,
        help="whose collections API and MCP clients open. auto (the default): on a private "
        "server, the owner's, the same for every client, kept across reconnects and restarts; "
        "on a public one (or with the limits on), each client connection its own. owner; "
        "per-client",
    )


def parse_app_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, Settings]:
    """The app's flags over QSEARCH_* variables: the namespace (with the server's settings filled
    in: host, port, share, index, api_key, mcp, the limits..., and `server`, all of them as
    ServerSettings) and the Settings. A shared server limits each
    session to 200 files and 100,000 chunks unless QSEARCH_MAX_FILES / _MAX_CHUNKS say otherwise."""
    parser = app_parser()
    args = parser.parse_args(argv)
    try:
        server = ServerSettings.from_env(**flags_of(args, ServerSettings))
        settings = settings_from(args)
    except ValueError as e:  # a bad variable or value: one line and exit status 2, as argparse
        parser.error(str(e))
    vars(args).update(server.model_dump(), server=server)
    if settings.max_files is None and settings.max_chunks is None:
        settings = settings.with_(max_files=200, max_chunks=100_000)
    return args, settings
