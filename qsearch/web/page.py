"""The page: upload and collection on the left; the query, its results right below it, and the
options, server facts and score legend folded away, so the first result is in view after a
search. Events are wired to `Handlers` methods, whose signatures Gradio reads as they are.
"""

from __future__ import annotations

import textwrap
from typing import Any

import gradio as gr

from ..config import SEARCH_MODES
from ..documents.formats import describe, names
from .handlers import Handlers
from .render import LEGEND, files_html, message_html
from .server import Context

INSTRUCTIONS = [  # (label, the instruction the models read)
    ("Web search (default)", "Given a web search query, retrieve relevant passages that answer "
     "the query"),
    ("Question answering", "Given a question, retrieve passages that answer the question"),
    ("Scientific claim → evidence", "Given a scientific claim, retrieve documents that support "
     "or refute the claim"),
    ("Code search", "Given a programming question, retrieve code snippets or documentation that "
     "answer it"),
    ("Find similar passages", "Retrieve passages that are semantically similar to the given text"),
]  # fmt: skip
STATUS_SECONDS = 2.0  # while the model loads, the status line is read again this often
UPLOAD_CACHE = (300, 900)  # every 5 minutes, delete uploaded files older than 15 minutes
# The browser's token for its collection. The secret travels to the browser in the page's
# config (Gradio encrypts in the browser), so it is fixed: the token is what must stay secret.
TOKEN_KEY, TOKEN_SECRET = "qsearch-collection", "qsearch-collection-token"


def build_page(ctx: Context, *, upload_cache: tuple[int, int] = UPLOAD_CACHE) -> gr.Blocks:
    """The Blocks app over `ctx`."""
    on = Handlers(ctx)
    title = "qsearch — semantic search over your documents"
    with gr.Blocks(title=title, delete_cache=upload_cache) as demo:
        token = gr.BrowserState(None, storage_key=TOKEN_KEY, secret=TOKEN_SECRET)
        gr.Markdown("## qsearch · upload documents, then ask questions in your own words")
        _status(ctx)
        with gr.Row():
            with gr.Column(scale=2, min_width=300):
                c = _collection_column()
            with gr.Column(scale=3, min_width=400):
                c |= _search_column(ctx)
        _wire(demo, on, token, c)
    demo.qsearch_context = ctx  # launch() serves /v1 and MCP over the same models
    return demo


def _status(ctx: Context) -> None:
    """One line of server facts; the details, and any fallback's full reason, folded below it.
    Read when a page loads, and every STATUS_SECONDS while the model loads (`_follow_loading`)."""
    line = gr.Markdown(lambda: _status_texts(ctx)[0], elem_id="qs-status")
    with gr.Accordion("Server details", open=False, elem_id="qs-status-details"):
        details = gr.Markdown(lambda: _status_texts(ctx)[1])
    _follow_loading(ctx, line, details)


def _status_texts(ctx: Context) -> tuple[str, str]:
    """(the status line, the details)."""
    summary, details, notice = ctx.status_summary(), ctx.status_markdown(), ctx.service.notice
    short = (
        f" · ⚠ {textwrap.shorten(notice.split('. ')[0], 120, placeholder=' …')}" if notice else ""
    )
    return f"<small>{summary}{short}</small>", details


def _follow_loading(ctx: Context, line: gr.Markdown, details: gr.Markdown) -> None:
    """While the model loads in the background, the status is read again every STATUS_SECONDS
    (how long so far), until it has loaded and says what runs."""
    timer = gr.Timer(STATUS_SECONDS, active=ctx.service.loading)

    def tick() -> tuple[str, str, gr.Timer]:
        return *_status_texts(ctx), gr.Timer(active=ctx.service.loading)

    timer.tick(tick, None, [line, details, timer], queue=False, api_visibility="private")


def _collection_column() -> dict[str, Any]:
    c: dict[str, Any] = {}
    c["uploads"] = gr.File(  # any type: one that can't be read is listed in the report, with why
        label=f"Drop documents: {names()}. Indexed on upload.",
        file_count="multiple",
        elem_id="qs-upload",
        height=120,
    )
    gr.Markdown(f"<small>Reads {describe()}.</small>", elem_id="qs-types")
    with gr.Row():
        c["samples"] = gr.Button("Load sample documents", scale=3, elem_id="qs-samples")
        c["stop"] = gr.Button("Stop indexing", scale=1, variant="secondary")
    c["report"] = gr.HTML(elem_id="qs-report")
    c["files"] = gr.HTML(files_html([]), elem_id="qs-files")
    with gr.Row():
        c["to_remove"] = gr.Dropdown(label="Remove a file", choices=[], scale=3)
        c["remove"] = gr.Button("Remove", scale=1)
    c["clear"] = gr.Button("Clear all documents", variant="stop")
    with gr.Row():  # keep a collection you embedded, and open it again later without embedding
        c["keep"] = gr.Button("Download collection", scale=1, elem_id="qs-keep")
        c["reopen"] = gr.UploadButton(
            "Open collection…", file_types=[".zip"], scale=1, elem_id="qs-reopen"
        )
    c["kept"] = gr.File(label="Collection file", interactive=False, height=80, visible=False)
    for name in ("api_add", "api_remove", "api_clear"):  # the API's events, never clicked
        c[name] = gr.Button(visible=False)
    return c


def _search_column(ctx: Context) -> dict[str, Any]:
    c: dict[str, Any] = {}
    with gr.Row():
        c["query"] = gr.Textbox(
            show_label=False,
            placeholder="Ask a question or type keywords, then Enter",
            scale=5,
            elem_id="qs-query",
        )
        c["search"] = gr.Button("Search", variant="primary", scale=1, elem_id="qs-search")
    with gr.Accordion("Search options", open=False, elem_id="qs-options"):
        c |= _options(ctx)
    with gr.Accordion("What do the bars mean?", open=False, elem_id="qs-legend-toggle"):
        gr.HTML(LEGEND, elem_id="qs-legend")
    c["results"] = gr.HTML(
        message_html(
            "Upload documents on the left (or load the samples), then type a question above: "
            "the passages that answer it best appear here."
        ),
        elem_id="qs-results",
    )
    with gr.Row():
        c["to_open"] = gr.Dropdown(
            label="Open a result where it came from (its page, or its text)",
            choices=[],
            interactive=False,
            scale=3,
            elem_id="qs-open",
        )
        c["export"] = gr.Button("Export results (JSON, CSV)", scale=1)
    c["evidence"] = gr.HTML(elem_id="qs-evidence")
    c["downloads"] = gr.File(
        label="Results to download", file_count="multiple", interactive=False, height=80
    )
    with gr.Accordion("Results as JSON", open=False):
        c["hits_json"] = gr.JSON(label="hits")
    return c


def _options(ctx: Context) -> dict[str, Any]:
    service, c = ctx.service, {}
    with gr.Row():
        c["top_k"] = gr.Slider(1, 50, value=5, step=1, label="Results")
        c["mode"] = gr.Radio(
            list(SEARCH_MODES),
            value=service.settings.search_mode,
            label="Ranking",
            info="hybrid = meaning + exact words",
        )
    candidates, off = service.rerank_candidates(), service.rerank_unavailable
    with gr.Row():
        c["rerank"] = gr.Checkbox(
            label="Rerank with Qwen3-Reranker",
            value=False,
            interactive=not off,
            elem_id="qs-rerank",
            info=textwrap.shorten(off, 400, placeholder=" …") if off else "slower, more precise",
        )
        c["rerank_candidates"] = gr.Slider(
            5, 100, value=candidates, step=5, label="Candidates to rerank",
            info=ctx.rerank_hint(candidates), interactive=not off, elem_id="qs-candidates",
        )  # fmt: skip
    c["instruction"] = gr.Dropdown(
        choices=INSTRUCTIONS,
        value=INSTRUCTIONS[0][1],
        allow_custom_value=True,
        label="Task instruction (pick one or type your own)",
        info="Qwen3 models read it for the query and the reranker"
        if service.embedder.supports_instruction
        else "This embedding model ignores instructions; the reranker reads them",
    )
    return c


def _wire(demo: gr.Blocks, on: Handlers, token: gr.BrowserState, c: dict[str, Any]) -> None:
    """The events. Uploads run in their own queue, `uploads_at_once` at a time (one per
    collection); model work is shared window by window by the model service's lock, so one
    user's long upload never holds another's search or small upload."""
    uploads_at_once = on.ctx.limits.uploads_at_once
    listing = [c["files"], c["to_remove"]]
    added = [c["report"], *listing, c["uploads"]]
    ingest = {
        "concurrency_id": "ingest",
        "concurrency_limit": uploads_at_once,
        "api_visibility": "private",
        "show_progress_on": [c["report"]],  # one bar, where the report will appear
    }
    loaded = [token, *listing, c["report"]]
    demo.load(on.restore, [token], loaded, api_visibility="private", queue=False)
    c["uploads"].upload(on.add_files, [c["uploads"], token], [*added, token], **ingest)
    c["samples"].click(on.load_samples, [token], [*added, token], **ingest)
    c["stop"].click(on.stop, [token], None, api_visibility="private", queue=False)
    inputs = [c[k] for k in ("query", "top_k", "rerank", "instruction", "mode")]
    inputs += [c["rerank_candidates"], token]
    after = [c["to_open"], c["evidence"], c["downloads"]]
    private = {"api_visibility": "private"}
    for trigger in (c["query"].submit, c["search"].click):
        shown = trigger(
            on.search_page, inputs, [c["results"], c["hits_json"]], concurrency_limit=4, **private
        )
        shown.then(on.evidence_choices, [token], after, queue=False, **private)
    c["to_open"].change(
        on.show_evidence, [c["to_open"], token], [c["evidence"]], api_visibility="private"
    )
    c["export"].click(on.export, [token], [c["downloads"]], api_visibility="private")
    c["remove"].click(on.remove, [c["to_remove"], token], listing, api_visibility="private")
    c["clear"].click(on.clear, [token], listing, api_visibility="private")
    c["keep"].click(on.download_collection, [token], [c["kept"]], **private).then(
        lambda: gr.update(visible=True), None, [c["kept"]], queue=False, **private
    )
    opened = [c["report"], *listing, token]
    c["reopen"].upload(on.open_collection, [c["reopen"], token], opened, **ingest)
    # The API and the MCP tools: the same work, keyed by the client's Gradio session.
    c["api_add"].click(
        on.add_documents, [c["uploads"]], added, api_name="add_documents",
        concurrency_id="ingest", concurrency_limit=uploads_at_once,
    )  # fmt: skip
    gr.api(on.search, api_name="search", concurrency_limit=4)
    undocumented = {"api_visibility": "undocumented"}
    c["api_remove"].click(
        on.remove_document, [c["to_remove"]], listing, api_name="remove_document", **undocumented
    )
    c["api_clear"].click(
        on.clear_documents, None, listing, api_name="clear_documents", **undocumented
    )
