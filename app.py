"""qsearch web app: upload documents, search them, see why each passage ranks where it does.

The page and its handlers only: search logic lives in `qsearch.Engine`, the shared models in
`qsearch.web.model_service.ModelService` (the one lock, and the only code under ZeroGPU's `spaces.GPU`),
each client's collection in `qsearch.web.sessions.Sessions`. The same server answers the
OpenAI-compatible /v1 API and, with `--mcp`, serves `search` and `add_documents` as MCP tools.

    python app.py [--host H] [--port P] [--share] [--index DIR] [--embed-model M] [--rerank-model M]
                  [--device D] [--dtype T] [--no-ocr] [--ocr-lang L] [--api-key KEY] [--no-mcp] ...
    gradio app.py    (reload mode: the page is rebuilt on change, the models stay loaded)
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import gradio as gr

from qsearch import ModelLoadError
from qsearch.config import SEARCH_MODES
from qsearch.documents.read import SUPPORTED_SUFFIXES
from qsearch.engine import Cancelled, Engine
from qsearch.web import export
from qsearch.web.evidence import evidence_html
from qsearch.web.lowconf import LOW_COSINE
from qsearch.web.render import LEGEND, files_html, hits_html, message_html, report_html, where
from qsearch.web.server import Context, bind, hit_json, launch, parse_args
from qsearch.web.sizing import eta_text

SAMPLES = Path(__file__).resolve().parent / "assets" / "samples"
INSTRUCTIONS = [
    (
        "Web search (default)",
        "Given a web search query, retrieve relevant passages that answer the query",
    ),
    ("Question answering", "Given a question, retrieve passages that answer the question"),
    (
        "Scientific claim → evidence",
        "Given a scientific claim, retrieve documents that support or refute the claim",
    ),
    (
        "Code search",
        "Given a programming question, retrieve code snippets or documentation that answer it",
    ),
    ("Find similar passages", "Retrieve passages that are semantically similar to the given text"),
]

UPLOAD_CACHE = (300, 900)  # every 5 minutes, delete uploaded files older than 15 minutes


def _session(request: gr.Request) -> str:
    """The browser's or API client's Gradio session (MCP calls arrive through one internal client)."""
    session = request.session_hash
    if not session:
        raise gr.Error("This request has no session; reload the page.")
    return session


def _engine(ctx: Context, request: gr.Request) -> Engine:
    try:
        return ctx.sessions.get(_session(request))
    except RuntimeError as e:
        raise gr.Error(str(e)) from None


def add_documents(
    ctx: Context,
    files: list[str] | None,
    request: gr.Request,
    progress: gr.Progress = gr.Progress(),
) -> tuple[str, str, Any, None]:
    """Add documents to your collection (over MCP: the collection all MCP clients share), which `search` then searches.

    Args:
        files: documents to index: PDF (scanned pages are read by OCR), TXT, MD, HTML, DOCX, or images
            (PNG, JPEG, TIFF, WebP). A file that can't be read is reported with the reason; the others are added.

    Returns:
        a report of what happened to each file, the collection's file list, the removal choices, and an empty upload.
    """
    engine = _engine(ctx, request)
    paths = [Path(f) for f in files or []]
    if not paths:
        return (
            message_html("Choose one or more files first."),
            _files(engine),
            _choices(engine),
            None,
        )
    stop = ctx.sessions.stop_flag(_session(request))
    stop.clear()
    chunk_tokens = ctx.service.settings.chunk_tokens

    def report(stage: str, done: int, total: int) -> None:
        left = (
            eta_text(ctx.service.embed_rate.seconds_for((total - done) * chunk_tokens))
            if stage == "embedding"
            else ""
        )
        progress((done, total), desc=f"{stage} {done}/{total}" + (f" · {left}" if left else ""))

    try:  # uploads stay in Gradio's shared cache, which deletes them itself (UPLOAD_CACHE)
        result = engine.add_files(
            paths, report, names=[p.name for p in paths], should_stop=stop.is_set
        )
    except Cancelled:
        return (
            message_html("Stopped: nothing from this upload was added."),
            _files(engine),
            _choices(engine),
            None,
        )
    return report_html(result), _files(engine), _choices(engine), None


def stop_indexing(ctx: Context, request: gr.Request) -> None:
    """Stop this session's indexing run; the collection stays as it was before the run."""
    ctx.sessions.stop_flag(_session(request)).set()


def load_samples(ctx: Context, request: gr.Request, progress: gr.Progress = gr.Progress()) -> tuple:
    return add_documents(ctx, [str(p) for p in sorted(SAMPLES.iterdir())], request, progress)


def search(
    ctx: Context,
    query: str,
    top_k: float,
    rerank: bool,
    instruction: str | None,
    mode: str,
    rerank_candidates: float,
    request: gr.Request,
) -> tuple[str, list[dict]]:
    """Search the shared collection and the documents added to your collection with `add_documents`.

    Args:
        query: a question or keywords, in any words; it is matched by meaning and by exact terms.
        top_k: how many passages to return (1-50).
        rerank: rescore the top candidates with the Qwen3 reranker: slower, more precise.
        instruction: what the search is for, in English, e.g. "Given a question, retrieve passages that answer the
            question"; empty for the default web-search instruction.
        mode: "hybrid" (meaning and keywords, the default), "dense" (meaning only) or "lexical" (keywords only).
        rerank_candidates: how many candidates the reranker rescores.

    Returns:
        the results as HTML, and as JSON: one object per passage with its source file, page, text and scores.
    """
    engine = _engine(ctx, request)
    if not query or not query.strip():
        return message_html("Type a question or some keywords, then press Enter."), []
    shared = [ctx.shared] if ctx.shared is not None and len(ctx.shared.documents()) else []
    if not engine.documents() and not shared:
        return message_html(
            "Your collection is empty: upload documents (or load the samples) first."
        ), []
    notice = ""
    if rerank and ctx.service.rerank_unavailable:
        rerank, notice = False, ctx.service.rerank_unavailable
    options = dict(k=int(top_k), instruction=instruction or None, mode=mode, also=shared)
    try:
        hits = engine.search(
            query, rerank=rerank, rerank_candidates=int(rerank_candidates), **options
        )
    except ModelLoadError as e:
        hits, notice = engine.search(query, **options), str(e)
    if not hits:
        return message_html(
            f"No passage matches “{query}”. Try other words, or the dense or hybrid mode."
        ), []
    best = max((h.dense_score for h in hits if h.dense_score is not None), default=None)
    if best is not None and best < LOW_COSINE and not notice:
        notice = (
            "No strong match: these are the closest passages, but they may not answer the query. "
            "Try other words or more specific terms."
        )
    ctx.remember(_session(request), query, hits, options, rerank)
    return hits_html(hits, query, hits.timings_ms, notice=notice), [hit_json(h) for h in hits]


def evidence_choices(ctx: Context, request: gr.Request) -> tuple[Any, str, None]:
    """After a search: the results to open, an empty evidence panel, no download yet."""
    last = ctx.results(_session(request))
    choices = [(f"#{h.rank} {where(h)}", h.rank) for h in (last["hits"] if last else [])]
    return gr.update(choices=choices, value=None, interactive=bool(choices)), "", None


def show_evidence(ctx: Context, rank: int | None, request: gr.Request) -> str:
    """Where result #rank came from: its page with the passage highlighted, or the passage in its text."""
    session = _session(request)
    last = ctx.results(session)
    hit = next((h for h in (last["hits"] if last else []) if h.rank == rank), None)
    if hit is None:
        return ""
    index = ctx.index_holding(session, hit.doc_id)
    if index is None:
        return message_html("That document is no longer in the collection.")
    return evidence_html(hit, index, last["query"])


def export_results(ctx: Context, request: gr.Request) -> list[str] | None:
    """The latest results as JSON and CSV files: query, settings, every score, source and page."""
    last = ctx.results(_session(request))
    if not last:
        raise gr.Error("Search first: there are no results to export yet.")
    folder = Path(tempfile.mkdtemp(prefix="qsearch-results-"))
    (folder / "results.json").write_text(
        export.as_json(last["query"], last["settings"], last["hits"])
    )
    (folder / "results.csv").write_text(
        export.as_csv(last["query"], last["settings"], last["hits"])
    )
    return [str(folder / "results.json"), str(folder / "results.csv")]


def remove_document(ctx: Context, doc_id: str | None, request: gr.Request) -> tuple[str, Any]:
    entry = ctx.sessions.peek(_session(request))
    engine = entry.engine if entry is not None else None
    if engine is not None and doc_id and engine.index.has_doc(doc_id):
        engine.remove(doc_id)
    return _files(engine), _choices(engine)


def clear_documents(ctx: Context, request: gr.Request) -> tuple[str, Any]:
    entry = ctx.sessions.peek(_session(request))
    engine = entry.engine if entry is not None else None
    if engine is not None:
        engine.clear()
    return _files(engine), _choices(engine)


def end_session(ctx: Context, request: gr.Request) -> None:
    """The page was closed: free its collection now."""
    ctx.sessions.end(_session(request))


def _files(engine: Engine | None) -> str:
    return files_html(
        [(d.source, d.chunks, d.pages) for d in (engine.documents() if engine else [])]
    )


def _choices(engine: Engine | None) -> Any:
    return gr.update(
        choices=[(d.source, d.doc_id) for d in (engine.documents() if engine else [])], value=None
    )


def build_page(ctx: Context, *, upload_cache: tuple[int, int] = UPLOAD_CACHE) -> gr.Blocks:
    """The Blocks app over `ctx`: upload and collection on the left, search and results on the right."""
    service = ctx.service
    with gr.Blocks(
        title="qsearch — semantic search over your documents", delete_cache=upload_cache
    ) as demo:
        gr.Markdown("# qsearch\nUpload documents, then ask questions in your own words.")
        gr.Markdown(ctx.status_markdown(), elem_id="qs-status")
        with gr.Row():
            with gr.Column(scale=2, min_width=300):
                uploads = gr.File(
                    label="Drop documents here: PDF, TXT, MD, HTML, DOCX, images (PNG, JPEG, TIFF, "
                    "WebP: read by OCR). Indexed on upload.",
                    file_count="multiple",
                    file_types=list(SUPPORTED_SUFFIXES),
                    elem_id="qs-upload",
                )
                with gr.Row():
                    samples_button = gr.Button("Load sample documents", scale=3)
                    stop_button = gr.Button("Stop indexing", scale=1, variant="secondary")
                report = gr.HTML(elem_id="qs-report")
                files = gr.HTML(files_html([]), elem_id="qs-files")
                with gr.Row():
                    to_remove = gr.Dropdown(label="Remove a file", choices=[], scale=3)
                    remove_button = gr.Button("Remove", scale=1)
                clear_button = gr.Button("Clear all documents", variant="stop")
            with gr.Column(scale=3, min_width=400):
                with gr.Row():
                    query = gr.Textbox(
                        label="Query",
                        placeholder="Ask a question or type keywords, then Enter",
                        scale=5,
                        elem_id="qs-query",
                    )
                    search_button = gr.Button(
                        "Search", variant="primary", scale=1, elem_id="qs-search"
                    )
                with gr.Row():
                    top_k = gr.Slider(1, 50, value=5, step=1, label="Results")
                    mode = gr.Radio(
                        list(SEARCH_MODES),
                        value=service.settings.search_mode,
                        label="Ranking",
                        info="hybrid = meaning + exact words",
                    )
                candidates = service.rerank_candidates()
                with gr.Row():
                    rerank = gr.Checkbox(
                        label="Rerank with Qwen3-Reranker",
                        value=False,
                        interactive=not service.rerank_unavailable,
                        elem_id="qs-rerank",
                        info=service.rerank_unavailable[:300] or "slower, more precise",
                    )
                    rerank_candidates = gr.Slider(
                        5,
                        100,
                        value=candidates,
                        step=5,
                        label="Candidates to rerank",
                        info=ctx.rerank_hint(candidates),
                    )
                instruction = gr.Dropdown(
                    choices=INSTRUCTIONS,
                    value=INSTRUCTIONS[0][1],
                    allow_custom_value=True,
                    label="Task instruction (pick one or type your own)",
                    info=(
                        "Qwen3 models read it for the query and the reranker"
                        if service.embedder.supports_instruction
                        else "This embedding model ignores instructions; the reranker reads them"
                    ),
                )
                gr.HTML(LEGEND, elem_id="qs-legend")
                results = gr.HTML(message_html("Results appear here."), elem_id="qs-results")
                with gr.Row():
                    to_open = gr.Dropdown(
                        label="Open a result where it came from (its page, or its text)",
                        choices=[],
                        interactive=False,
                        scale=3,
                        elem_id="qs-open",
                    )
                    export_button = gr.Button("Export results (JSON, CSV)", scale=1)
                evidence = gr.HTML(elem_id="qs-evidence")
                downloads = gr.File(
                    label="Results to download",
                    file_count="multiple",
                    interactive=False,
                    visible=True,
                    height=80,
                )
                with gr.Accordion("Results as JSON", open=False):
                    hits_json = gr.JSON(label="hits")
        _wire(ctx, locals())
    demo.qsearch_context = ctx  # launch() serves /v1 and MCP over the same models
    return demo


def _wire(ctx: Context, c: dict[str, Any]) -> None:
    """The page's events. Reading and chunking run in the upload's own queue; model work is serialized by
    the model service's lock, so one user's long parse never holds another's search."""
    collection = [c["report"], c["files"], c["to_remove"], c["uploads"]]
    ingest = {"concurrency_id": "ingest", "concurrency_limit": 2}
    c["uploads"].upload(
        bind(add_documents, ctx), [c["uploads"]], collection, api_name="add_documents", **ingest
    )
    c["samples_button"].click(
        bind(load_samples, ctx), None, collection, api_visibility="private", **ingest
    )
    c["stop_button"].click(
        bind(stop_indexing, ctx), None, None, api_visibility="private", queue=False
    )
    inputs = [
        c["query"],
        c["top_k"],
        c["rerank"],
        c["instruction"],
        c["mode"],
        c["rerank_candidates"],
    ]
    outputs = [c["results"], c["hits_json"]]
    after = [c["to_open"], c["evidence"], c["downloads"]]
    c["query"].submit(
        bind(search, ctx), inputs, outputs, api_name="search", concurrency_limit=4
    ).then(bind(evidence_choices, ctx), None, after, api_visibility="private", queue=False)
    c["search_button"].click(
        bind(search, ctx), inputs, outputs, api_visibility="private", concurrency_limit=4
    ).then(bind(evidence_choices, ctx), None, after, api_visibility="private", queue=False)
    c["to_open"].change(
        bind(show_evidence, ctx), [c["to_open"]], [c["evidence"]], api_visibility="private"
    )
    c["export_button"].click(
        bind(export_results, ctx), None, [c["downloads"]], api_visibility="private"
    )
    c["remove_button"].click(
        bind(remove_document, ctx),
        [c["to_remove"]],
        [c["files"], c["to_remove"]],
        api_name="remove_document",
        api_visibility="undocumented",
    )
    c["clear_button"].click(
        bind(clear_documents, ctx),
        None,
        [c["files"], c["to_remove"]],
        api_name="clear_documents",
        api_visibility="undocumented",
    )
    c["demo"].unload(bind(end_session, ctx))


def create_app(settings: Any, index_dir: str | None = None, **page: Any) -> gr.Blocks:
    """Load the models (once), open the shared index if any, build the page (`page`: build_page's options)."""
    return build_page(Context.create(settings, index_dir), **page)


if (
    __name__ == "__main__"
):  # `python app.py`, and `gradio app.py`, which re-runs this to rebuild `demo`
    if gr.NO_RELOAD:
        ARGS, SETTINGS = parse_args()
        CONTEXT = Context.create(SETTINGS, ARGS.index)
    demo = build_page(CONTEXT)
    if gr.NO_RELOAD:
        launch(
            demo,
            host=ARGS.host,
            port=ARGS.port,
            share=ARGS.share,
            max_file_mb=SETTINGS.max_file_mb,
            api_key=ARGS.api_key,
            mcp=ARGS.mcp,
        )
