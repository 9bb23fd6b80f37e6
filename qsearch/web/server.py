"""The web server process around the page: its context (model service, sessions, shared index),
its flags, and `launch` with the /v1 API and the MCP server beside the Gradio app.

The /v1 routes are handed to Gradio's FastAPI app through `launch(app_kwargs={"routes": ...})`,
FastAPI's own constructor argument, so they come before Gradio's catch-all routes without
touching its route list; share links, Spaces, /v1 and MCP all run on that one server.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Any

from starlette.middleware import Middleware

from ..app_flags import parse_app_args as parse_args  # noqa: F401 - app.py's flags, with the CLI's
from ..config import VERSION, ServerSettings, Settings, model_name
from ..documents import ocr
from ..engine import Engine
from ..models.choose import reranker_reads_instructions
from ..models.loading import ModelLoadError, device_label, dtype_reason
from ..store.analysis import load_identifier
from ..types import Hits
from .api_guard import ApiLimitMiddleware
from .keeping import Keeper
from .limits import LOOPBACK, ServerLimits, public_reason, public_warning
from .memory import MemoryBudget
from .model_service import ModelService
from .openai_api import ApiLimits, openai_router
from .sessions import Sessions
from .sizing import RERANK_SECONDS
from .startup import link_lines, precision_name, startup_lines


@dataclass
class Context:
    """What the handlers need: the shared models, each client's collection, the optional shared
    index, and the limits that keep a public server usable for everyone."""

    service: ModelService
    shared: Engine | None = None  # read-only collection every session searches (--index)
    limits: ServerLimits = field(default_factory=ServerLimits)
    sessions: Sessions = field(init=False)
    keeper: Keeper = field(init=False)  # --data-dir, --low-confidence-log, handed-out files
    budget: MemoryBudget | None = field(init=False)  # all collections' memory, when limited

    def __post_init__(self) -> None:
        limits = self.limits
        self.keeper = Keeper(self.service.settings, limits.data_quota_mb, limits.max_collections)
        self.sessions = Sessions(
            self.new_engine,
            idle_seconds=limits.session_idle_minutes * 60,
            max_sessions=limits.max_sessions,
            restore=self.keeper.restore if self.keeper.store is not None else None,
            uploads_per_client=max(1, limits.uploads_at_once // 2) if limits.on else None,
            max_collections=limits.max_collections,
            owner_token=self.keeper.owner_token() if limits.api_owner else None,
        )
        self.budget = (
            MemoryBudget(limits.memory_budget_mb, self.sessions.evict_one)
            if limits.memory_budget_mb
            else None
        )

    @classmethod
    def create(
        cls,
        settings: Settings,
        index_dir: str | None = None,
        server: ServerSettings | None = None,
        *,
        background: bool = False,
    ) -> Context:
        """Load the models, open the shared index if any; `server` sets the limits. With
        `background` (`python app.py`) the models load on a thread while the page is served,
        unless a shared index needs the embedder's name and dimension first."""
        shared_first = bool(index_dir or settings.milvus_uri)
        start = ModelService.start if background and not shared_first else ModelService.load
        service = start(settings)
        load_identifier()  # the keywords' language detector, before visitors come
        shared, s = None, service.settings
        models = {"embedder": service.embedder, "reranker": service.reranker}
        if s.milvus_uri:
            shared = Engine.open_milvus(s.milvus_uri, s.milvus_collection, s, **models)
        elif index_dir:
            shared = Engine.open(index_dir, s, **models)
        return cls(service, shared, ServerLimits.resolve(server))

    def new_engine(self) -> Engine:
        return Engine(
            self.service.settings,
            embedder=self.service.embedder,
            reranker=self.service.reranker,
            admit=self.budget,
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
        """The index (one of the session's collections in memory, or the shared one) holding
        `doc_id` (a result's: its collection was searched, so it is in memory)."""
        entry = self.sessions.peek(session)
        engines = entry.library.loaded() if entry is not None else []
        for engine in (*engines, self.shared):
            if engine is not None and engine.documents() and engine.index.has_doc(doc_id):
                return engine.index
        return None

    def loading_status(self) -> str | None:
        """While the embedder loads (or when it could not): what the page says, else None."""
        service = self.service
        if service.load_error is not None:
            return f"⚠ The embedding model could not be loaded: {service.load_error}"
        if not service.loading:
            return None
        return (
            f"⏳ Loading the embedding model `{model_name(service.settings.embed_model)}` "
            f"({service.loading_seconds():.0f} s so far): uploads and searches wait for it"
        )

    def status_markdown(self) -> str:
        """Which models run where, in which dtype and why, and whether OCR is on."""
        if (loading := self.loading_status()) is not None:
            return loading
        service, s = self.service, self.service.settings
        device = service.embedder.device
        where = device_label(device)
        rerank = (
            f"`{model_name(s.rerank_model)}` (loads when first used)"
            if not service.rerank_unavailable
            else f"none ({service.rerank_unavailable})"
        )
        speed = service.embed_rate.per_second
        precision = service.embedder.precision or (  # with the MPS fallback's reason, if any
            dtype_reason(device, s.dtype) if device != "remote" else "set by the server"
        )
        lines = [
            f"**Embedding:** `{model_name(s.embed_model)}` · **Reranker:** {rerank} · "
            f"**Device:** {where}",
            f"**Precision:** {precision}"
            + (
                "; attention, MLPs and norms compiled"
                if getattr(service.embedder, "compiled", False)
                else ""
            )
            + (f" · **Speed:** about {speed:,.0f} tokens/s" if speed else "")
            + f" · **Scans:** {ocr.status(s.ocr_lang, s.ocr)}",
        ]
        lines.append(f"**Limits:** {self.limits.summary()}")
        if self.limits.public_warning():
            lines.append(f"**⚠ Public:** {self.limits.public_warning()}")
        if service.notice:
            lines.append(f"**Note:** {service.notice}")
        return "\n\n".join(lines)

    def status_summary(self) -> str:
        """The server facts in one line: models, device, precision, speed, OCR."""
        if (loading := self.loading_status()) is not None:
            return loading
        service, s = self.service, self.service.settings
        device, speed = service.embedder.device, service.embed_rate.per_second
        rerank = "off" if service.rerank_unavailable else model_name(s.rerank_model)
        parts = [
            f"embedding {model_name(s.embed_model)}",
            f"rerank {rerank}",
            "GPU" if device.startswith("cuda") else device,
            precision_name(self),
            f"~{speed:,.0f} tokens/s" if speed else "",
            f"OCR {'on' if s.ocr else 'off'}",
            "public: limits on" if self.limits.public and self.limits.on else "",
        ]
        return " · ".join(p for p in parts if p)

    def rerank_off(self) -> str:
        """One plain sentence when this server can't rerank ("" when it can): the loader's own
        words are in the server details."""
        if not self.service.rerank_unavailable:
            return ""
        return (
            "This server has no reranker, so results are ranked by meaning and keywords only "
            "(Server details says why)."
        )

    def instruction_readers(self) -> tuple[str, bool]:
        """(what reads the task instruction here, whether anything does): the embedder for the
        query (Qwen3-Embedding, not all-MiniLM), the reranker when it reranks (Qwen3-Reranker,
        not a cross-encoder)."""
        embedder = bool(self.service.embedder.supports_instruction)
        reranker = not self.service.rerank_unavailable and reranker_reads_instructions(
            self.service.settings
        )
        if embedder and reranker:
            return "Read by the embedder for your query, and by the reranker when you rerank.", True
        if embedder:
            return "Read by the embedder for your query (the reranker here ignores it).", True
        if reranker:
            return "Read by the reranker when you rerank; this embedding model ignores it.", True
        return (
            "Nothing here reads it: this embedding model ignores instructions, and there is no "
            "reranker that reads them.",
            False,
        )

    def rerank_hint(self, candidates: int) -> str:
        """What the rerank-candidates slider means here: a time only once one was measured."""
        if self.service.rerank_unavailable:
            return "reranking is off on this server (see the Rerank option)"
        if self.service.rerank_rate.per_second:
            return (
                f"{candidates} rerank in about {RERANK_SECONDS:.0f} s on this machine; more are "
                "more thorough but slower"
            )
        return (
            "how many top passages the reranker rescores (it loads at its first use, and its "
            "speed is measured then)"
        )


def _say_started(ctx: Context, quiet: bool) -> None:
    """The terminal's account of the start (startup.py); when `quiet`, its warnings only."""
    said = startup_lines(ctx)
    said = [line for line in said if "⚠" in line] if quiet else said
    if said:
        print("\n".join(said), flush=True)


def _say_when_loaded(ctx: Context, quiet: bool) -> None:
    """Models loading in the background: say so now, and the account once they have loaded (or
    why they could not), from a thread of its own."""
    if not quiet:
        name = model_name(ctx.service.settings.embed_model)
        print(f"qsearch {VERSION}: loading {name} in the background; the page answers meanwhile",
              flush=True)  # fmt: skip

    def wait() -> None:
        ctx.service.settled.wait()  # loaded, and its speed measured: the account says it
        try:
            ctx.service.wait_loaded()
        except ModelLoadError as e:
            print(f"⚠ {e}", flush=True)
            return
        _say_started(ctx, quiet)

    threading.Thread(target=wait, name="qsearch-started", daemon=True).start()


def launch(
    demo: Any,
    *,
    host: str | None = None,
    port: int | None = None,
    share: bool = False,
    max_file_mb: float = 50,
    queue_size: int = 64,
    api_key: str | None = None,
    auth: str | None = None,
    mcp: bool = True,
    prevent_thread_lock: bool = False,
    quiet: bool = False,
    **kwargs: Any,
) -> Any:
    """Queue (bounded: a full queue answers "busy" at once), then serve the page, /v1 and MCP;
    `auth` ("USER:PASSWORD") puts a login before the page. The /v1 and MCP requests pass the
    context's rate and size limits first (ASGI middleware, FastAPI's `middleware` argument).

    Gradio launches quietly; qsearch says what it started with (startup.py): the models, their
    precision and any fallback, where it serves, its own hint on a public link, and a warning
    when the server is public without a login (when `quiet`, the warnings only)."""
    ctx: Context | None = getattr(demo, "qsearch_context", None)
    if ctx is not None and not ctx.service.loading:
        _say_started(ctx, quiet)
    app_kwargs: dict[str, Any] = {"routes": []}
    if ctx is not None:
        api_limits = ApiLimits(max_total_chars=ctx.limits.api_max_chars)
        app_kwargs["routes"] = openai_router(
            lambda: ctx.service.embedder, ctx.service.reranker, api_key=api_key, limits=api_limits
        ).routes
        app_kwargs["middleware"] = [Middleware(ApiLimitMiddleware, limits=ctx.limits)]
    demo.queue(max_size=queue_size, default_concurrency_limit=4)
    result = demo.launch(
        server_name=host,
        server_port=port,
        share=share,
        max_file_size=int(max_file_mb * 2**20),
        footer_links=["api", "gradio"],
        prevent_thread_lock=True,
        mcp_server=mcp,
        app_kwargs=app_kwargs,
        auth=tuple(auth.split(":", 1)) if auth else None,
        quiet=True,  # Gradio's hint names launch() arguments: qsearch says its own (below)
        **kwargs,
    )
    if ctx is not None and ctx.service.loading:
        ctx.service.begin_loading()  # deferred by ModelService.start: the server is up now
        _say_when_loaded(ctx, quiet)
    space = os.environ.get("SPACE_ID")
    reason = (ctx.limits.public_reason if ctx else "") or public_reason(
        host or os.environ.get("GRADIO_SERVER_NAME") or LOOPBACK[0], share, space
    )
    lines = link_lines(
        local_url=demo.local_url,
        share=share,
        share_url=demo.share_url,
        on_space=bool(space),
        public_warning=public_warning(reason) if reason and not auth else "",
        verbose=not quiet,
    )
    if lines:
        print("\n".join(lines), flush=True)
    if not prevent_thread_lock:
        demo.block_thread()
    return result
