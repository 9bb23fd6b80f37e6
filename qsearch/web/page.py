"""The page: upload and collection on the left; the query, its results right below it, and the
options, server facts and score legend folded away, so the first result is in view after a
search. Events are wired to `Handlers` methods, whose signatures Gradio reads as they are.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from ..config import SEARCH_MODES
from ..documents.formats import describe, names
from ..library import DEFAULT_NAME
from .handlers import Handlers
from .render import LEGEND, files_html, message_html
from .server import Context
from .shelf import VIEW, Shelf, within_label
from .startup import has_warnings, status_line

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
# Once the evidence panel shows, its passage (its first term of the query, if marked) scrolls into
# view, within the context box and the page: it waits for the new panel, which lands just before
# or after this runs.
SCROLL_TO_PASSAGE = """() => {
  let tries = 0;
  const go = () => {
    const passage = document.querySelector('#qs-evidence .qs-passage, #qs-evidence figure.qs-page');
    const target = passage && (passage.querySelector('mark') || passage);
    if (target) target.scrollIntoView({block: 'center', behavior: 'instant'});
    else if (tries++ < 40) setTimeout(go, 50);
  };
  setTimeout(go, 50);
}"""


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
                c = _collection_column(on.shelf)
            with gr.Column(scale=3, min_width=400):
                c |= _search_column(ctx)
        _wire(demo, on, token, c)
    demo.qsearch_context = ctx  # launch() serves /v1 and MCP over the same models
    return demo


def _status(ctx: Context) -> None:
    """One line of server facts, in whole phrases (startup.status_line); the details, and any
    fallback's or warning's full reason, folded right below it. Read when a page loads, and every
    STATUS_SECONDS while the model loads (`_follow_loading`)."""
    line = gr.Markdown(lambda: _status_texts(ctx)[0], elem_id="qs-status")
    with gr.Accordion(_details_label(ctx), open=False, elem_id="qs-status-details") as folded:
        details = gr.Markdown(lambda: _status_texts(ctx)[1])
    _follow_loading(ctx, line, folded, details)


def _status_texts(ctx: Context) -> tuple[str, str]:
    """(the status line, the details)."""
    return f"<small>{status_line(ctx)}</small>", ctx.status_markdown()


def _details_label(ctx: Context) -> str:
    return "Server details: the full reasons" if has_warnings(ctx) else "Server details"


def _follow_loading(
    ctx: Context, line: gr.Markdown, folded: gr.Accordion, details: gr.Markdown
) -> None:
    """While the model loads in the background, the status is read again every STATUS_SECONDS
    (how long so far), until it has loaded and says what runs (and any fallback)."""
    timer = gr.Timer(STATUS_SECONDS, active=ctx.service.loading)

    def tick() -> tuple[str, gr.Accordion, str, gr.Timer]:
        status, said = _status_texts(ctx)
        folded_now = gr.Accordion(label=_details_label(ctx))
        return status, folded_now, said, gr.Timer(active=ctx.service.loading)

    outputs = [line, folded, details, timer]
    timer.tick(tick, None, outputs, queue=False, api_visibility="private")


def _library_controls(shelf: Shelf) -> dict[str, Any]:
    """The collection picker (uploads go to the one picked), New / Rename / Delete, the name box
    they open, and where collections are kept."""
    c: dict[str, Any] = {}
    with gr.Row():
        c["collection"] = gr.Dropdown(
            [DEFAULT_NAME], value=DEFAULT_NAME, label="Collection (uploads go here)",
            interactive=True, scale=4, elem_id="qs-collection",
        )  # fmt: skip
        for key, text in (("new", "New"), ("rename", "Rename"), ("delete", "Delete")):
            c[key] = gr.Button(text, scale=1, min_width=60, size="sm", elem_id=f"qs-{key}")
    with gr.Row(visible=False, equal_height=True, elem_id="qs-name-row") as c["name_row"]:
        c["name"] = gr.Textbox(label="Name", max_lines=1, scale=4, elem_id="qs-name")
        c["name_ok"] = gr.Button(
            "OK", variant="primary", scale=1, min_width=60, elem_id="qs-name-ok"
        )
        c["name_cancel"] = gr.Button("Cancel", scale=1, min_width=60, elem_id="qs-name-cancel")
    c["name_note"] = gr.HTML(elem_id="qs-name-note")
    c["naming"] = gr.State("")
    c["kept_where"] = gr.HTML(shelf.kept(), elem_id="qs-kept")
    return c


def _removal_controls() -> dict[str, Any]:
    """The question asked before a removal, and the undo offered after one."""
    c: dict[str, Any] = {}
    with gr.Column(visible=False, elem_id="qs-confirm") as c["confirm_row"]:
        c["confirm_text"] = gr.HTML(elem_id="qs-confirm-text")
        with gr.Row():
            c["confirm_yes"] = gr.Button("Yes, remove", variant="stop", elem_id="qs-confirm-yes")
            c["confirm_no"] = gr.Button("Cancel", elem_id="qs-confirm-no")
    c["pending"] = gr.State(None)
    with gr.Row(visible=False, equal_height=True, elem_id="qs-undo-row") as c["undo_row"]:
        c["undo_text"] = gr.HTML(scale=3, elem_id="qs-undo-text")
        c["undo"] = gr.Button("Undo", scale=1, min_width=60, elem_id="qs-undo")
    c["ticket"] = gr.State("")
    return c


def _collection_column(shelf: Shelf) -> dict[str, Any]:
    c = _library_controls(shelf)
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
        c["to_remove"] = gr.Dropdown(
            label="Remove a file", choices=[], scale=3, elem_id="qs-remove"
        )
        c["remove"] = gr.Button("Remove", scale=1, elem_id="qs-remove-button")
    c["clear"] = gr.Button("Clear all documents", variant="stop", elem_id="qs-clear")
    c |= _removal_controls()
    with gr.Row():  # keep a collection you embedded, and open it again later without embedding
        c["keep"] = gr.Button("Download collection", scale=1, elem_id="qs-keep")
        c["reopen"] = gr.UploadButton(
            "Open collection…", file_types=[".zip"], scale=1, elem_id="qs-reopen"
        )
    c["kept"] = gr.File(label="Collection file", interactive=False, height=80, visible=False)
    for name in ("api_add", "api_remove", "api_clear"):  # the API's events, never clicked
        c[name] = gr.Button(visible=False)
    c["api_collection"] = gr.Textbox("", visible=False)  # add_documents' collection argument
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
    with gr.Accordion(within_label([DEFAULT_NAME]), open=False, elem_id="qs-within") as within:
        c |= _within()
    c["within"] = within
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
    c["mark"] = gr.CheckboxGroup(
        choices=[],
        label="Mark the results that answer this query: each marked query is a labelled query "
        "for the retrieval test below",
        elem_id="qs-mark",
        interactive=False,
    )
    c["labels_status"] = gr.HTML(elem_id="qs-labels")
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
    with gr.Accordion("Test retrieval on your documents", open=False, elem_id="qs-test-panel"):
        c |= _retrieval_test()
    return c


def _retrieval_test() -> dict[str, Any]:
    """Labelled queries (marked on results, or a file) -> each ranking's metrics side by side."""
    c: dict[str, Any] = {}
    gr.Markdown(
        "<small>Give queries whose answers you know: mark the results that answer a search "
        "above, or upload a small CSV (<code>query,file</code>, several files separated by "
        '<code>;</code>) or JSONL (<code>{"query": …, "relevant": [file, …]}</code>). '
        "The test ranks each query by meaning, keywords, hybrid and hybrid + rerank, as "
        "<code>qsearch eval</code> does, and shows how well the minimum relevance separates "
        "the passages of the files you named from the rest.</small>"
    )
    c["labels_file"] = gr.File(
        label="Labelled queries (.csv, .tsv, .jsonl)",
        file_types=[".csv", ".tsv", ".jsonl", ".json"],
        height=80,
        elem_id="qs-labels-file",
    )
    with gr.Row():
        c["test_k"] = gr.Slider(1, 50, value=10, step=1, label="Recall at k", scale=2)
        c["test_rerank"] = gr.Checkbox(label="Include hybrid + rerank", value=True, scale=1)
        c["run_test"] = gr.Button("Run the retrieval test", scale=1, elem_id="qs-run-test")
    c["test_report"] = gr.HTML(elem_id="qs-test")
    return c


def _within() -> dict[str, Any]:
    """What a search covers: one or several collections, some of their files (a list you can
    type into), some file types, the files added since a day."""
    c: dict[str, Any] = {}
    c["scope"] = gr.Dropdown(
        [DEFAULT_NAME], value=[DEFAULT_NAME], multiselect=True, elem_id="qs-scope",
        label="Collections to search (several are ranked together)",
    )  # fmt: skip
    c["within_files"] = gr.Dropdown(
        [], value=[], multiselect=True, filterable=True, elem_id="qs-within-files",
        label="Only these files (type to find one; none chosen: every file)",
    )  # fmt: skip
    with gr.Row():
        c["within_types"] = gr.Dropdown(
            [], value=[], multiselect=True, label="Only these types", elem_id="qs-within-types"
        )
        c["within_since"] = gr.DateTime(
            include_time=False, type="string", label="Only files added since",
            elem_id="qs-within-since",
        )  # fmt: skip
    return c


def _options(ctx: Context) -> dict[str, Any]:
    service, c = ctx.service, {}
    with gr.Row():
        c["top_k"] = gr.Slider(1, 50, value=5, step=1, label="Results", elem_id="qs-top-k")
        c["mode"] = gr.Radio(
            list(SEARCH_MODES),
            value=service.settings.search_mode,
            label="Ranking",
            info="hybrid = meaning + exact words",
        )
    candidates, off = service.rerank_candidates(), ctx.rerank_off()
    with gr.Row():
        c["rerank"] = gr.Checkbox(
            label="Rerank with Qwen3-Reranker",
            value=False,
            interactive=not off,
            elem_id="qs-rerank",
            info=off or "slower, more precise",
        )
        c["rerank_candidates"] = gr.Slider(
            5, 100, value=candidates, step=5, label="Candidates to rerank",
            info=ctx.rerank_hint(candidates), interactive=not off, elem_id="qs-candidates",
        )  # fmt: skip
    readers, read = ctx.instruction_readers()
    c["instruction"] = gr.Dropdown(
        choices=INSTRUCTIONS,
        value=INSTRUCTIONS[0][1],
        allow_custom_value=True,
        label="Task instruction (pick one or type your own)",
        info=readers,
        interactive=read,
        elem_id="qs-instruction",
    )
    c["min_score"] = gr.Slider(
        0,
        1,
        value=service.settings.min_score,
        step=0.05,
        label="Minimum relevance",
        info="results whose overall relevance is below it are weak matches: folded under "
        "“weak matches hidden”, one click away",
        elem_id="qs-min-score",
    )
    return c


def _wire(demo: gr.Blocks, on: Handlers, token: gr.BrowserState, c: dict[str, Any]) -> None:
    """The events. Uploads run in their own queue, `uploads_at_once` at a time (one per
    collection); model work is shared window by window by the model service's lock, so one
    user's long upload never holds another's search or small upload."""
    uploads_at_once = on.ctx.limits.uploads_at_once
    listing = [c["files"], c["to_remove"]]
    view = [c[k] for k in VIEW]
    added = [c["report"], *listing, c["uploads"]]
    private = {"api_visibility": "private"}
    ingest = {
        "concurrency_id": "ingest",
        "concurrency_limit": uploads_at_once,
        "api_visibility": "private",
        "show_progress": "hidden",  # the report shows qsearch's own progress and ETA (uploads.py)
    }
    loaded = [token, *listing, c["report"]]
    demo.load(on.restore, [token], loaded, api_visibility="private", queue=False).then(
        on.shelf.view, [token], view, queue=False, **private
    )
    after_upload = {"fn": on.after_upload, "inputs": [c["results"], token], **private}
    after_upload["show_progress"] = "hidden"  # instant: no spinner over the results
    c["uploads"].upload(on.add_files_live, [c["uploads"], token], [*added, token], **ingest).then(
        outputs=[c["results"], *view], queue=False, **after_upload
    )
    c["samples"].click(on.load_samples_live, [token], [*added, token], **ingest).then(
        outputs=[c["results"], *view], queue=False, **after_upload
    )
    c["stop"].click(on.stop, [token], None, api_visibility="private", queue=False)
    _wire_search(on, token, c)
    _wire_library(on, token, c)
    _wire_retrieval_test(on, token, c)
    c["export"].click(on.export, [token], [c["downloads"]], api_visibility="private")
    c["keep"].click(on.download_collection, [token], [c["kept"]], **private).then(
        lambda: gr.update(visible=True), None, [c["kept"]], queue=False, **private
    )
    opened = [c["report"], *listing, token]
    c["reopen"].upload(on.open_collection, [c["reopen"], token], opened, **ingest).then(
        on.shelf.view, [token], view, queue=False, **private
    )
    _wire_api(on, c, added, listing)


def _wire_search(on: Handlers, token: gr.BrowserState, c: dict[str, Any]) -> None:
    """Searching (within the chosen collections, files, types and dates) and opening a result."""
    private = {"api_visibility": "private"}
    inputs = [c[k] for k in ("query", "top_k", "rerank", "instruction", "mode")]
    inputs += [c["rerank_candidates"], token, c["scope"], c["within_files"], c["within_types"]]
    inputs += [c["within_since"], c["min_score"]]
    after = [c["to_open"], c["evidence"], c["downloads"], c["mark"]]
    for trigger in (c["query"].submit, c["search"].click):
        shown = trigger(
            on.search_page, inputs, [c["results"], c["hits_json"]], concurrency_limit=4, **private
        )
        shown.then(on.evidence_choices, [token], after, queue=False, **private)
    c["to_open"].change(
        on.show_evidence, [c["to_open"], token], [c["evidence"]], api_visibility="private"
    ).then(None, js=SCROLL_TO_PASSAGE, queue=False, **private)
    within = [c["within"], c["within_files"], c["within_types"]]
    c["scope"].input(
        on.shelf.scope_changed,
        [c["scope"], c["within_files"], c["within_types"], token],
        within,
        queue=False,
        **private,
    )


def _wire_retrieval_test(on: Handlers, token: gr.BrowserState, c: dict[str, Any]) -> None:
    """The retrieval test: results ticked as answers, a file of labelled queries, the metrics."""
    private = {"api_visibility": "private"}
    c["mark"].input(on.mark_relevant, [c["mark"], token], [c["labels_status"]], **private)
    c["labels_file"].upload(
        on.load_labels, [c["labels_file"], token], [c["labels_status"]], **private
    )
    test_inputs = [c["test_k"], c["test_rerank"], c["instruction"], c["min_score"], token]
    c["run_test"].click(
        on.retrieval_test, test_inputs, [c["test_report"]], concurrency_limit=1, **private
    )


def _wire_library(on: Handlers, token: gr.BrowserState, c: dict[str, Any]) -> None:
    """Collections: pick, make, rename, delete; remove a file, clear; confirm, undo."""
    shelf, private, quick = on.shelf, {"api_visibility": "private"}, {"queue": False}
    view = [c[k] for k in VIEW]
    c["collection"].input(shelf.switch, [c["collection"], token], view, **quick, **private)
    naming = [c["name_row"], c["name"], c["naming"], c["name_note"]]
    for key in ("new", "rename"):
        c[key].click(shelf.start_naming, [gr.State(key), token], naming, **quick, **private)
    for trigger in (c["name_ok"].click, c["name"].submit):
        trigger(
            shelf.name, [c["naming"], c["name"], token], [c["name_row"], c["name_note"], *view],
            **private,
        )  # fmt: skip
    c["name_cancel"].click(
        lambda: (gr.update(visible=False), ""), None, [c["name_row"], c["name_note"]], **quick,
        **private,
    )  # fmt: skip
    asking = [c["confirm_row"], c["confirm_text"], c["pending"]]
    c["remove"].click(shelf.ask, [gr.State("remove"), c["to_remove"], token], asking, **private)
    c["clear"].click(shelf.ask, [gr.State("clear"), gr.State(None), token], asking, **private)
    c["delete"].click(shelf.ask, [gr.State("delete"), gr.State(None), token], asking, **private)
    done = [c["confirm_row"], c["undo_row"], c["undo_text"], c["ticket"], *view]
    c["confirm_yes"].click(shelf.confirm, [c["pending"], token], done, **private)
    c["confirm_no"].click(
        lambda: (gr.update(visible=False), None), None, [c["confirm_row"], c["pending"]],
        **quick, **private,
    )  # fmt: skip
    undone = [c["undo_row"], c["report"], *view]
    c["undo"].click(shelf.undo, [c["ticket"], token], undone, **private)


def _wire_api(on: Handlers, c: dict[str, Any], added: list, listing: list) -> None:
    """The API and the MCP tools: the same work, keyed by the client's Gradio session."""
    uploads_at_once = on.ctx.limits.uploads_at_once
    c["api_add"].click(
        on.add_documents, [c["uploads"], c["api_collection"]], added, api_name="add_documents",
        concurrency_id="ingest", concurrency_limit=uploads_at_once,
    )  # fmt: skip
    gr.api(on.search, api_name="search", concurrency_limit=4)
    for tool in ("list_collections", "create_collection", "rename_collection"):
        gr.api(getattr(on.shelf, tool), api_name=tool)
    for tool in ("delete_collection", "undo_removal"):
        gr.api(getattr(on.shelf, tool), api_name=tool)
    undocumented = {"api_visibility": "undocumented"}
    c["api_remove"].click(
        on.remove_document, [c["to_remove"]], listing, api_name="remove_document", **undocumented
    )
    c["api_clear"].click(
        on.clear_documents, None, listing, api_name="clear_documents", **undocumented
    )
