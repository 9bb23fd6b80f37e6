"""qsearch web app: upload documents, search them, see why each passage ranks where it does.

Gradio Blocks UI over `qsearch.Engine`; no search logic lives here. Models load once per
process and are shared by every browser session; each session has its own collection
(freed when its page closes or idles). GPU work goes through one queue.

    python app.py [--host H] [--port P] [--share] [--index DIR] [--embed-model M] [--rerank-model M]
                  [--max-file-mb N] [--device D] [--api-key KEY] [--embed-url URL] [--rerank-url URL]
"""

from __future__ import annotations

import argparse
import functools
import inspect
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from qsearch import Engine, ModelLoadError, Settings
from qsearch.config import SEARCH_MODES
from qsearch.embed import Embedder, load_embedder
from qsearch.engine import make_embedder, make_reranker
from qsearch.ingest import SUPPORTED_SUFFIXES
from qsearch.loading import bundled_small_model, resolve_model
from qsearch.remote import RemoteError
from qsearch.render import files_html, hits_html, message_html, report_html
from qsearch.rerank import Reranker
from qsearch.serve import openai_router

try:  # On Hugging Face ZeroGPU hardware, GPU work must run inside spaces.GPU; elsewhere nothing changes.
    import spaces

    gpu_task: Callable[[Callable], Callable] = spaces.GPU
except ImportError:
    def gpu_task(fn: Callable) -> Callable:
        return fn

SAMPLES = Path(__file__).resolve().parent / "assets" / "samples"
INSTRUCTIONS = [
    ("Web search (default)", "Given a web search query, retrieve relevant passages that answer the query"),
    ("Question answering", "Given a question, retrieve passages that answer the question"),
    ("Scientific claim → evidence", "Given a scientific claim, retrieve documents that support or refute the claim"),
    ("Code search", "Given a programming question, retrieve code snippets or documentation that answer it"),
    ("Find similar passages", "Retrieve passages that are semantically similar to the given text"),
]
LOW_COSINE = 0.25  # below this the best passage is probably not an answer: say so
FILE_TYPES = list(SUPPORTED_SUFFIXES)
GPU_QUEUE = "gpu"
UPLOAD_CACHE = (300, 900)  # every 5 minutes, delete uploaded files older than 15 minutes


class Serialized:
    """A model whose work runs one call at a time, whoever calls: the UI's queue or the HTTP API."""

    def __init__(self, model: Any, lock: threading.Lock):
        self._model, self._lock = model, lock

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def encode(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return self._model.encode(*args, **kwargs)

    def score(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return self._model.score(*args, **kwargs)


MODEL_LOCK = threading.Lock()  # one process, one GPU: model work is serialized


@dataclass
class Models:
    """The models every session shares: the embedder (loaded at start), the reranker (on first use)."""

    settings: Settings
    embedder: Embedder
    notice: str = ""  # why the default embedder could not be used, shown on the page
    rerank_unavailable: str = ""  # why reranking is off, or "" when it can be used
    _reranker: Reranker | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def load(cls, settings: Settings) -> Models:
        """The configured models; without them, the bundled small model, and a notice saying so."""
        notice = ""
        try:
            embedder = make_embedder(settings)
        except (ModelLoadError, OSError, RemoteError) as e:
            fallback = bundled_small_model()
            if fallback is None:
                raise
            embedder = load_embedder(str(fallback), device=settings.device)
            notice = (f"Could not load {settings.embed_url or settings.embed_model} ({e}). Running on the small bundled model "
                      "all-MiniLM-L6-v2 instead: it works, but results are weaker and task instructions "
                      "are ignored.")
            settings = settings.with_(embed_model=str(fallback), embed_dim=None, embed_url=None)
        embedder = Serialized(embedder, MODEL_LOCK)
        try:
            if not settings.rerank_url:
                resolve_model(settings.rerank_model, flag="--rerank-model", env="QSEARCH_RERANK_MODEL")
            unavailable = ""
        except ModelLoadError as e:
            unavailable = f"Reranking is unavailable: {e}"
        return cls(settings, embedder, notice, unavailable)

    def reranker(self) -> Reranker:
        """Load the reranker the first time it is asked for; every session shares it."""
        with self._lock:
            if self._reranker is None:
                if self.rerank_unavailable:
                    raise ModelLoadError(self.rerank_unavailable)
                try:
                    self._reranker = Serialized(make_reranker(self.settings), MODEL_LOCK)
                except (ModelLoadError, OSError, RemoteError) as e:
                    self.rerank_unavailable = f"Reranking is unavailable: {e}"
                    raise ModelLoadError(self.rerank_unavailable) from None
            return self._reranker

    def status_markdown(self) -> str:
        device = getattr(self.embedder, "device", "cpu")
        if str(device).startswith("cuda"):
            import torch

            where = f"GPU: {torch.cuda.get_device_name(torch.device(device))}"
        else:
            where = "CPU — slow: indexing large files takes minutes (a GPU makes it ~100× faster)"
        rerank = f"`{_model_label(self.settings.rerank_model)}` (loads when first used)" \
            if not self.rerank_unavailable else "unavailable"
        lines = [f"**Embedding:** `{_model_label(self.settings.embed_model)}` · **Reranker:** {rerank} · "
                 f"**Device:** {where}"]
        if self.notice:
            lines.append(f"**Note:** {self.notice}")
        return "\n\n".join(lines)


def _model_label(name: str) -> str:
    """A hub id as it is; a local folder by its name; the bundled model by what it is."""
    bundled = bundled_small_model()
    if bundled is not None and Path(name) == bundled:
        return "all-MiniLM-L6-v2 (bundled)"
    return Path(name).name if Path(name).is_dir() else name


class Sessions:
    """Each browser session's own collection, by Gradio session id.

    A collection is freed when its page is closed (`demo.unload`) or after `idle_seconds`
    without use (API clients never close a page); at most `max_sessions` live at once.
    """

    def __init__(self, new_engine: Callable[[], Engine], *, idle_seconds: float = 3600, max_sessions: int = 500):
        self._new_engine, self.idle_seconds, self.max_sessions = new_engine, idle_seconds, max_sessions
        self._engines: dict[str, tuple[Engine, float]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._engines)

    def get(self, session_id: str | None) -> Engine:
        if not session_id:
            raise gr.Error("This request has no session; reload the page.")
        now = time.monotonic()
        with self._lock:
            for idle in [k for k, (_, used) in self._engines.items() if now - used > self.idle_seconds]:
                self._free(idle)
            if session_id not in self._engines and len(self._engines) >= self.max_sessions:
                raise gr.Error("The server is busy (too many open sessions); please try again later.")
            engine = self._engines[session_id][0] if session_id in self._engines else self._new_engine()
            self._engines[session_id] = (engine, now)
            return engine

    def peek(self, session_id: str | None) -> Engine | None:
        """The session's collection if it has one; never creates one."""
        entry = self._engines.get(session_id or "")
        return entry[0] if entry else None

    def end(self, session_id: str | None) -> None:
        with self._lock:
            self._free(session_id or "")

    def _free(self, session_id: str) -> None:
        entry = self._engines.pop(session_id, None)
        if entry is not None:
            entry[0].clear()


@dataclass
class Context:
    """What the handlers need: the shared models, the sessions' collections, the optional shared index."""

    models: Models
    shared: Engine | None = None  # read-only collection every session searches (--index)
    sessions: Sessions = field(init=False)

    def __post_init__(self) -> None:
        self.sessions = Sessions(self.new_engine)

    def new_engine(self) -> Engine:
        return Engine(self.models.settings, embedder=self.models.embedder, reranker=self.models.reranker)


# --- handlers ------------------------------------------------------------------------------


def add_documents(ctx: Context, files: list[str] | None, request: gr.Request,
                  progress: gr.Progress = gr.Progress()) -> tuple[str, str, Any, None]:
    """Index uploaded files into this session's collection; report each file's outcome."""
    engine = ctx.sessions.get(request.session_hash)
    paths = [Path(f) for f in files or []]
    if not paths:
        return message_html("Choose one or more files first."), files_html(_file_rows(engine)), \
            _doc_choices(engine), None
    # Uploads sit in Gradio's content-addressed cache, where sessions uploading the same file share one
    # copy: deleting it here would pull it from under them. The cache deletes them itself (UPLOAD_CACHE).
    report = engine.add_files(paths, progress=lambda stage, done, total: progress(
        (done, total), desc=f"{stage} ({done}/{total})"), names=[p.name for p in paths])
    return report_html(report), files_html(_file_rows(engine)), _doc_choices(engine), None


def load_samples(ctx: Context, request: gr.Request, progress: gr.Progress = gr.Progress()) -> tuple:
    return add_documents(ctx, [str(p) for p in sorted(SAMPLES.iterdir())], request, progress)


def search(ctx: Context, query: str, top_k: float, rerank: bool, instruction: str | None, mode: str,
           rerank_candidates: float, request: gr.Request) -> tuple[str, list[dict]]:
    """Search this session's collection (and the shared index); results as HTML and as JSON."""
    engine = ctx.sessions.get(request.session_hash)
    if not query or not query.strip():
        return message_html("Type a question or some keywords, then press Enter."), []
    if not len(engine.index) and (ctx.shared is None or not len(ctx.shared.index)):
        return message_html("Your collection is empty: upload documents (or load the samples) first."), []
    notice = ""
    if rerank and ctx.models.rerank_unavailable:
        rerank, notice = False, ctx.models.rerank_unavailable
    also = [ctx.shared] if ctx.shared is not None else []
    try:
        hits = engine.search(query, k=int(top_k), rerank=rerank, rerank_candidates=int(rerank_candidates),
                             instruction=instruction or None, mode=mode, also=also)
    except ModelLoadError as e:
        hits, notice = engine.search(query, k=int(top_k), instruction=instruction or None, mode=mode,
                                     also=also), str(e)
    if not hits:
        return message_html(f"No passage matches “{query}”. Try other words, or the dense or hybrid mode."), []
    best_cosine = max((h.dense_score for h in hits if h.dense_score is not None), default=None)
    if best_cosine is not None and best_cosine < LOW_COSINE and not notice:
        notice = ("No strong match: these are the closest passages, but they may not answer the query. "
                  "Try other words or more specific terms.")
    return hits_html(hits, query, hits.timings_ms, notice=notice), [_hit_json(h) for h in hits]


def remove_document(ctx: Context, doc_id: str | None, request: gr.Request) -> tuple[str, Any]:
    engine = ctx.sessions.peek(request.session_hash)
    if engine is not None and doc_id and engine.index.has_doc(doc_id):
        engine.remove(doc_id)
    return files_html(_file_rows(engine)), _doc_choices(engine)


def clear_documents(ctx: Context, request: gr.Request) -> tuple[str, Any]:
    engine = ctx.sessions.peek(request.session_hash)
    if engine is not None:
        engine.clear()
    return files_html([]), _doc_choices(engine)


def end_session(ctx: Context, request: gr.Request) -> None:
    """The page was closed: free its collection now."""
    ctx.sessions.end(request.session_hash)


def _file_rows(engine: Engine | None) -> list[tuple[str, int, int | None]]:
    return [(d.source, d.chunks, d.pages) for d in (engine.documents() if engine else [])]


def _doc_choices(engine: Engine | None) -> Any:
    choices = [(d.source, d.doc_id) for d in (engine.documents() if engine else [])]
    return gr.update(choices=choices, value=None)


def _hit_json(h: Any) -> dict[str, Any]:
    return {"rank": h.rank, "score": h.score, "rerank_score": h.rerank_score, "source": h.source,
            "page": h.page, "text": h.text}


# --- the page ------------------------------------------------------------------------------


def bind(fn: Callable, ctx: Context) -> Callable:
    """`fn` with its first argument (the context) filled in, keeping the signature and type hints
    that Gradio reads to pass gr.Request and gr.Progress (functools.partial hides them)."""
    @functools.wraps(fn)
    def bound(*args: Any, **kwargs: Any) -> Any:
        return fn(ctx, *args, **kwargs)

    signature = inspect.signature(fn)
    bound.__signature__ = signature.replace(parameters=list(signature.parameters.values())[1:])
    return bound


def build_demo(ctx: Context, *, upload_cache: tuple[int, int] = UPLOAD_CACHE) -> gr.Blocks:
    """The Blocks app over `ctx`: upload and collection on the left, search and results on the right."""
    models = ctx.models
    with gr.Blocks(title="qsearch — semantic search over your documents", delete_cache=upload_cache) as demo:
        gr.Markdown("# qsearch\nUpload documents, then ask questions in your own words.")
        gr.Markdown(models.status_markdown(), elem_id="qs-status")
        with gr.Row():
            with gr.Column(scale=2, min_width=300):
                uploads = gr.File(label="Drop documents here: PDF, TXT, MD, HTML, DOCX (indexed on upload)",
                                  file_count="multiple", file_types=FILE_TYPES, elem_id="qs-upload")
                samples_button = gr.Button("Load sample documents")
                report = gr.HTML(elem_id="qs-report")
                files = gr.HTML(files_html([]), elem_id="qs-files")
                with gr.Row():
                    to_remove = gr.Dropdown(label="Remove a file", choices=[], scale=3)
                    remove_button = gr.Button("Remove", scale=1)
                clear_button = gr.Button("Clear all documents", variant="stop")
            with gr.Column(scale=3, min_width=400):
                with gr.Row():
                    query = gr.Textbox(label="Query", placeholder="Ask a question or type keywords, then Enter",
                                       scale=5, elem_id="qs-query")
                    search_button = gr.Button("Search", variant="primary", scale=1, elem_id="qs-search")
                with gr.Row():
                    top_k = gr.Slider(1, 50, value=5, step=1, label="Results")
                    mode = gr.Radio(list(SEARCH_MODES), value=models.settings.search_mode, label="Ranking",
                                    info="hybrid = meaning + exact words")
                with gr.Row():
                    rerank = gr.Checkbox(label="Rerank with Qwen3-Reranker", value=False,
                                         interactive=not models.rerank_unavailable,
                                         info=models.rerank_unavailable[:300] or "slower, more precise")
                    rerank_candidates = gr.Slider(5, 100, value=30, step=5, label="Candidates to rerank")
                instruction = gr.Dropdown(
                    choices=INSTRUCTIONS, value=INSTRUCTIONS[0][1], allow_custom_value=True,
                    label="Task instruction (pick one or type your own)",
                    info=("Qwen3 models read it for the query and the reranker"
                          if models.embedder.supports_instruction else
                          "This embedding model ignores instructions; the reranker reads them"))
                results = gr.HTML(message_html("Results appear here."), elem_id="qs-results")
                with gr.Accordion("Results as JSON", open=False):
                    hits_json = gr.JSON(label="hits")

        gpu = {"concurrency_id": GPU_QUEUE, "concurrency_limit": 1}
        collection = [report, files, to_remove, uploads]
        uploads.upload(gpu_task(bind(add_documents, ctx)), [uploads], collection,
                       api_name="add_documents", **gpu)
        samples_button.click(gpu_task(bind(load_samples, ctx)), None, collection,
                             api_visibility="private", **gpu)
        search_inputs = [query, top_k, rerank, instruction, mode, rerank_candidates]
        run_search = gpu_task(bind(search, ctx))
        query.submit(run_search, search_inputs, [results, hits_json], api_name="search", **gpu)
        search_button.click(run_search, search_inputs, [results, hits_json], api_visibility="private", **gpu)
        remove_button.click(bind(remove_document, ctx), [to_remove], [files, to_remove],
                            api_name="remove_document")
        clear_button.click(bind(clear_documents, ctx), None, [files, to_remove],
                           api_name="clear_documents")
        demo.unload(bind(end_session, ctx))
    demo.qsearch_context = ctx  # launch() serves the HTTP API over the same models
    return demo


def create_app(settings: Settings, index_dir: str | None = None, **page: Any) -> gr.Blocks:
    """Load the models (once), open the shared index if any, build the page (`page`: build_demo's options)."""
    models = Models.load(settings)
    shared = None
    if index_dir:
        shared = Engine.open(index_dir, models.settings, embedder=models.embedder, reranker=models.reranker)
    return build_demo(Context(models, shared), **page)


def launch(demo: gr.Blocks, *, host: str | None = None, port: int | None = None, share: bool = False,
           max_file_mb: float = 50, queue_size: int = 64, api_key: str | None = None,
           prevent_thread_lock: bool = False, **kwargs: Any) -> Any:
    """Queue (bounded: a full queue answers "busy" at once), launch with upload limits, and serve
    the OpenAI-compatible API (/v1/...) from the same server and models."""
    demo.queue(max_size=queue_size, default_concurrency_limit=4)
    result = demo.launch(server_name=host, server_port=port, share=share, max_file_size=int(max_file_mb * 2**20),
                         footer_links=["api", "gradio"], prevent_thread_lock=True, **kwargs)
    ctx: Context | None = getattr(demo, "qsearch_context", None)
    if ctx is not None:
        router = openai_router(lambda: ctx.models.embedder, ctx.models.reranker, api_key=api_key)
        demo.app.include_router(router)
        api_routes = [r for r in demo.app.router.routes if getattr(r, "path", "").startswith("/v1/")]
        others = [r for r in demo.app.router.routes if r not in api_routes]
        demo.app.router.routes[:] = api_routes + others  # before Gradio's catch-all routes
    if not prevent_thread_lock:
        demo.block_thread()
    return result


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("1", "true", "yes", "on")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="qsearch web app")
    p.add_argument("--host", default=os.environ.get("QSEARCH_HOST"), help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=int(os.environ.get("QSEARCH_PORT", 0)) or None,
                   help="port (default 7860, or the next free one)")
    p.add_argument("--share", action="store_true", default=_env_flag("QSEARCH_SHARE"),
                   help="also serve on a temporary public *.gradio.live link (anyone with it can use the app)")
    p.add_argument("--index", default=os.environ.get("QSEARCH_INDEX"), metavar="DIR",
                   help="a read-only index every session searches besides its uploads")
    p.add_argument("--embed-model", metavar="M")
    p.add_argument("--rerank-model", metavar="M")
    p.add_argument("--max-file-mb", type=float, metavar="N")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--embed-url", metavar="URL", help="embed with an OpenAI-compatible server instead of locally")
    p.add_argument("--rerank-url", metavar="URL", help="rerank with a /v1/rerank server instead of locally")
    p.add_argument("--api-key", default=os.environ.get("QSEARCH_API_KEY"),
                   help="require 'Authorization: Bearer KEY' on the /v1 API")
    args = p.parse_args(argv)
    settings = Settings.from_env(embed_model=args.embed_model, rerank_model=args.rerank_model,
                                 max_file_mb=args.max_file_mb, device=args.device, embed_url=args.embed_url,
                                 rerank_url=args.rerank_url)
    if settings.max_files is None and settings.max_chunks is None:  # per-session limits on a shared server
        settings = settings.with_(max_files=200, max_chunks=100_000)
    launch(create_app(settings, args.index), host=args.host, port=args.port, share=args.share,
           max_file_mb=settings.max_file_mb, api_key=args.api_key)


if __name__ == "__main__":
    main()
