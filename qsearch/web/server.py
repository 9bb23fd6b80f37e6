"""The web server process around the page: its context (model service, sessions, shared index),
its flags, and `launch` with the /v1 API and the MCP server beside the Gradio app.

The /v1 routes are handed to Gradio's FastAPI app through `launch(app_kwargs={"routes": ...})`,
FastAPI's own constructor argument, so they come before Gradio's catch-all routes without
touching its route list; share links, Spaces, /v1 and MCP all run on that one server.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import DEVICES, DTYPES, NO_COMPILE_HELP, Settings
from ..documents import ocr
from ..engine import Engine
from ..models.loading import bundled_small_model, dtype_reason
from ..types import Hits
from .model_service import ModelService
from .openai_api import openai_router
from .sessions import Sessions
from .sizing import RERANK_SECONDS


@dataclass
class Context:
    """What the handlers need: the shared models, each client's collection, the optional shared index."""

    service: ModelService
    shared: Engine | None = None  # read-only collection every session searches (--index)
    sessions: Sessions = field(init=False)

    def __post_init__(self) -> None:
        self.sessions = Sessions(self.new_engine)

    @classmethod
    def create(cls, settings: Settings, index_dir: str | None = None) -> Context:
        service = ModelService.load(settings)
        shared, s = None, service.settings
        models = {"embedder": service.embedder, "reranker": service.reranker}
        if s.milvus_uri:
            shared = Engine.open_milvus(s.milvus_uri, s.milvus_collection, s, **models)
        elif index_dir:
            shared = Engine.open(index_dir, s, **models)
        return cls(service, shared)

    def new_engine(self) -> Engine:
        return Engine(
            self.service.settings, embedder=self.service.embedder, reranker=self.service.reranker
        )

    def remember(
        self, session: str, query: str, hits: Hits, options: dict[str, Any], rerank: bool
    ) -> None:
        """Keep a session's latest results (freed with the session), for export and page views."""
        entry = self.sessions.peek(session)
        if entry is not None:
            settings = {k: v for k, v in options.items() if k != "also"} | {"rerank": rerank}
            entry.results = {"query": query, "settings": settings, "hits": list(hits)}

    def results(self, session: str) -> dict[str, Any] | None:
        entry = self.sessions.peek(session)
        return entry.results if entry is not None else None

    def index_holding(self, session: str, doc_id: str) -> Any:
        """The index (the session's, or the shared one) that holds `doc_id`, or None."""
        entry = self.sessions.peek(session)
        for engine in (entry.engine if entry is not None else None, self.shared):
            if engine is not None and engine.documents() and engine.index.has_doc(doc_id):
                return engine.index
        return None

    def status_markdown(self) -> str:
        """Which models run where, in which dtype and why, and whether OCR is on."""
        service, s = self.service, self.service.settings
        device = service.embedder.device
        if device.startswith("cuda"):
            import torch

            where = f"GPU: {torch.cuda.get_device_name(torch.device(device))}"
        elif device == "cpu":
            where = "CPU (no GPU here: indexing large files takes minutes)"
        else:
            where = "a remote server"
        rerank = (
            f"`{model_label(s.rerank_model)}` (loads when first used)"
            if not service.rerank_unavailable
            else "unavailable"
        )
        speed = service.embed_rate.per_second
        lines = [
            f"**Embedding:** `{model_label(s.embed_model)}` · **Reranker:** {rerank} · **Device:** {where}",
            f"**Precision:** {dtype_reason(device, s.dtype) if device != 'remote' else 'set by the server'}"
            + (
                "; attention, MLPs and norms compiled"
                if getattr(service.embedder, "compiled", False)
                else ""
            )
            + (f" · **Speed:** about {speed:,.0f} tokens/s" if speed else "")
            + f" · **Scans:** {ocr.status(s.ocr_lang, s.ocr)}",
        ]
        if service.notice:
            lines.append(f"**Note:** {service.notice}")
        return "\n\n".join(lines)

    def status_summary(self) -> str:
        """The server facts in one line: models, device, precision, speed, OCR."""
        service, s = self.service, self.service.settings
        device, speed = service.embedder.device, service.embed_rate.per_second
        rerank = "off" if service.rerank_unavailable else model_label(s.rerank_model)
        parts = [
            f"embedding {model_label(s.embed_model)}",
            f"rerank {rerank}",
            "GPU" if device.startswith("cuda") else device,
            s.dtype if device != "remote" else "",
            f"~{speed:,.0f} tokens/s" if speed else "",
            f"OCR {'on' if s.ocr else 'off'}",
        ]
        return " · ".join(p for p in parts if p)

    def rerank_hint(self, candidates: int) -> str:
        rate = self.service.rerank_rate.per_second
        return (
            f"{candidates} rerank in about {RERANK_SECONDS:.0f} s on this machine; more are more thorough "
            f"but slower"
            if rate or self.service.embed_rate.per_second
            else "how many top passages to rescore"
        )


def model_label(name: str) -> str:
    """A hub id as it is; a local folder by its name; the bundled model by what it is."""
    bundled = bundled_small_model()
    if bundled is not None and Path(name) == bundled:
        return "all-MiniLM-L6-v2 (bundled)"
    return Path(name).name if Path(name).is_dir() else name


def launch(
    demo: Any,
    *,
    host: str | None = None,
    port: int | None = None,
    share: bool = False,
    max_file_mb: float = 50,
    queue_size: int = 64,
    api_key: str | None = None,
    mcp: bool = True,
    prevent_thread_lock: bool = False,
    **kwargs: Any,
) -> Any:
    """Queue (bounded: a full queue answers "busy" at once), then serve the page, /v1 and MCP."""
    ctx: Context | None = getattr(demo, "qsearch_context", None)
    routes = []
    if ctx is not None:
        routes = openai_router(
            lambda: ctx.service.embedder, ctx.service.reranker, api_key=api_key
        ).routes
    demo.queue(max_size=queue_size, default_concurrency_limit=4)
    result = demo.launch(
        server_name=host,
        server_port=port,
        share=share,
        max_file_size=int(max_file_mb * 2**20),
        footer_links=["api", "gradio"],
        prevent_thread_lock=True,
        mcp_server=mcp,
        app_kwargs={"routes": routes},
        **kwargs,
    )
    if share and not demo.share_url:
        print(
            "No public link: the share server can't be reached from here (no outbound connection); "
            f"the app is serving locally at {demo.local_url}",
            flush=True,
        )
    if not prevent_thread_lock:
        demo.block_thread()
    return result


def _env_flag(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    return default if value in (None, "") else value.lower() in ("1", "true", "yes", "on")


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, Settings]:
    """The app's flags (each also a QSEARCH_* variable), and the Settings they make."""
    p = argparse.ArgumentParser(description="qsearch web app")
    p.add_argument(
        "--host",
        default=os.environ.get("QSEARCH_HOST"),
        help="address to listen on (default 127.0.0.1)",
    )
    p.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("QSEARCH_PORT", 0)) or None,
        help="port (default 7860, or the next free one)",
    )
    p.add_argument(
        "--share",
        action="store_true",
        default=_env_flag("QSEARCH_SHARE"),
        help="also serve on a temporary public *.gradio.live link (anyone with it can use the app)",
    )
    p.add_argument(
        "--index",
        default=os.environ.get("QSEARCH_INDEX"),
        metavar="DIR",
        help="a read-only index every session searches besides its uploads",
    )
    p.add_argument(
        "--milvus",
        metavar="URI",
        help="the shared collection in Milvus instead: a Milvus Lite file or "
        "http://host:19530 ($QSEARCH_MILVUS_URI; $QSEARCH_MILVUS_TOKEN for auth)",
    )
    p.add_argument("--collection", metavar="NAME", help="the Milvus collection (default qsearch)")
    p.add_argument("--embed-model", metavar="M")
    p.add_argument("--rerank-model", metavar="M")
    p.add_argument("--max-file-mb", type=float, metavar="N")
    p.add_argument("--device", choices=DEVICES)
    p.add_argument(
        "--dtype",
        choices=DTYPES,
        help=f"model precision (default auto: here {dtype_reason('cpu')})",
    )
    p.add_argument(
        "--no-compile", dest="compile", action="store_false", default=None, help=NO_COMPILE_HELP
    )
    p.add_argument(
        "--no-ocr",
        dest="ocr",
        action="store_false",
        default=None,
        help="don't OCR scans and images",
    )
    p.add_argument(
        "--ocr-lang", metavar="L", help="Tesseract language(s), e.g. eng+deu (default eng)"
    )
    p.add_argument(
        "--embed-url",
        metavar="URL",
        help="embed with an OpenAI-compatible server instead of locally",
    )
    p.add_argument(
        "--rerank-url", metavar="URL", help="rerank with a /v1/rerank server instead of locally"
    )
    p.add_argument(
        "--api-key",
        default=os.environ.get("QSEARCH_API_KEY"),
        help="require 'Authorization: Bearer KEY' on the /v1 API",
    )
    p.add_argument(
        "--no-mcp",
        dest="mcp",
        action="store_false",
        default=_env_flag("QSEARCH_MCP", True),
        help="don't serve the MCP tools at /gradio_api/mcp/",
    )
    args = p.parse_args(argv)
    settings = Settings.from_env(
        embed_model=args.embed_model,
        rerank_model=args.rerank_model,
        max_file_mb=args.max_file_mb,
        device=args.device,
        dtype=args.dtype,
        compile=args.compile,
        ocr=args.ocr,
        ocr_lang=args.ocr_lang,
        embed_url=args.embed_url,
        rerank_url=args.rerank_url,
        milvus_uri=args.milvus,
        milvus_collection=args.collection,
    )
    if (
        settings.max_files is None and settings.max_chunks is None
    ):  # per-session limits on a shared server
        settings = settings.with_(max_files=200, max_chunks=100_000)
    return args, settings
