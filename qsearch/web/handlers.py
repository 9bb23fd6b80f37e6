"""What the page and the API do, as methods of one object holding the server's context.

Gradio reads each method's signature as it is: `gr.Request` and `gr.Progress` parameters are
filled in by Gradio, the others come from the page's components or the API's arguments. The
page names its collection by the token its browser keeps (`token`); API and MCP clients by
their Gradio session (`Sessions.for_client`). No search logic here: that is `Engine.search`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gradio as gr

from ..documents.formats import describe
from ..models.loading import ModelLoadError
from ..store.base import CollectionError
from ..store.portable_checks import CollectionFileError
from ..types import Hit
from . import export, keeping
from .evidence import evidence_html
from .limits import client_address
from .render import hits_html, message_html
from .retrieval_test import RetrievalTest
from .server import Context
from .sessions import Session, TooManySessions
from .uploads import Uploads, listing

SAMPLES = Path(__file__).resolve().parents[2] / "assets" / "samples"


class SearchError(Exception):
    """A search that has no hits to show, with the message that says why."""


class Handlers(RetrievalTest):
    """The page's and the API's handlers over one Context (the retrieval test's: its base)."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.uploads = Uploads(ctx)

    # --- the collection, by token (the page) or by Gradio session (API and MCP) ---------------

    def _open(self, token: str | None) -> tuple[str, Session]:
        try:
            return self.ctx.sessions.open(token)
        except TooManySessions as e:
            raise gr.Error(str(e)) from None

    def _client(self, request: gr.Request) -> tuple[str, Session]:
        if not request.session_hash:
            raise gr.Error("This request has no session; reconnect.")
        try:
            return self.ctx.sessions.for_client(request.session_hash)
        except TooManySessions as e:
            raise gr.Error(str(e)) from None

    def _search(self, token: str, session: Session | None, query: str, **options: Any) -> list:
        """[hits, notice] for `query`, or SearchError saying why it can't be searched."""
        ctx, rerank = self.ctx, bool(options.pop("rerank"))
        if not query or not query.strip():
            raise SearchError("Type a question or some keywords, then press Enter.")
        shared = [ctx.shared] if ctx.shared is not None and len(ctx.shared.documents()) else []
        run = session.indexing if session is not None else None
        if (session is None or not session.engine.documents()) and not shared:
            if run is not None:
                raise SearchError(
                    f"Your documents are still being indexed ({run.describe()}): search again "
                    "when the upload report appears."
                )
            gone = ctx.sessions.why_gone(token)
            raise SearchError(
                gone or "Your collection is empty: upload documents (or load the samples)."
            )
        engine = session.engine if session is not None else ctx.new_engine()
        notice, candidates = "", int(options.pop("rerank_candidates"))
        if run is not None:
            notice = (
                f"Still indexing your upload ({run.describe()}): these results come from the "
                "documents indexed before it."
            )
        if rerank and ctx.service.rerank_unavailable:
            rerank, notice = False, ctx.rerank_off()
        options.update(k=int(options["k"]), instruction=options["instruction"] or None)
        try:
            hits = engine.search(
                query, rerank=rerank, rerank_candidates=candidates, also=shared, **options
            )
        except ModelLoadError:  # it failed to load just now (the service marks it off)
            rerank, notice = False, ctx.rerank_off()
            hits = engine.search(query, also=shared, **options)
        if not hits:
            return [hits, notice]
        options["min_score"] = hits.min_score  # the one used, for the export
        ctx.remember(token, query, hits, options, rerank)
        mode = options.get("mode") or ctx.service.settings.search_mode
        ctx.keeper.searched(token, query, mode, hits, reranked=rerank)
        return [hits, notice]

    # --- the page ---------------------------------------------------------------------------

    def restore(self, token: str | None) -> tuple:
        """On page load: this browser's token (a new one, minted before any upload, so that Stop
        works on the first upload too), its collection if it still exists, why if it doesn't."""
        sessions = self.ctx.sessions
        session = sessions.find(token)
        if session is not None:
            return token, *listing(session.engine), ""
        gone = sessions.why_gone(token)
        token = token if gone else sessions.mint()
        return token, *listing(None), message_html(gone) if gone else ""

    def add_files(
        self,
        files: list[str] | None,
        token: str | None,
        progress: gr.Progress = gr.Progress(),
        request: gr.Request | None = None,
    ) -> tuple:
        """Upload: add files to this browser's collection; the token comes back (new if needed)."""
        token, session = self._open(token)
        return *self.uploads.add(token, session, files, _address(request), progress), token

    def load_samples(
        self,
        token: str | None,
        progress: gr.Progress = gr.Progress(),
        request: gr.Request | None = None,
    ) -> tuple:
        samples = [str(p) for p in sorted(SAMPLES.iterdir())]
        return self.add_files(samples, token, progress, request)

    def stop(self, token: str | None) -> None:
        """Stop this collection's indexing run; the collection stays as it was before the run."""
        self.ctx.sessions.stop_flag(token).set()

    def search_page(
        self,
        query: str,
        top_k: float,
        rerank: bool,
        instruction: str | None,
        mode: str,
        rerank_candidates: float,
        token: str | None,
        min_score: float | None = None,
    ) -> tuple[str, list[dict]]:
        """The results as cards (weak ones folded), and as data for the page's JSON view."""
        options = dict(k=top_k, rerank=rerank, instruction=instruction, mode=mode)
        options["min_score"] = min_score
        session = self.ctx.sessions.find(token)
        try:
            hits, notice = self._search(
                token or "", session, query, rerank_candidates=rerank_candidates, **options
            )
        except SearchError as e:
            return message_html(str(e)), []
        if not hits:
            return message_html(
                f"No passage matches “{query}”. Try other words or another mode."
            ), []
        html = hits_html(hits, query, hits.timings_ms, notice=notice)
        return html, [h.to_dict() for h in hits]

    def show_evidence(self, rank: int | None, token: str | None) -> str:
        """Where result #rank came from: its page with the passage highlighted, or its text."""
        last = self.ctx.results(token)
        hit: Hit | None = next((h for h in (last["hits"] if last else []) if h.rank == rank), None)
        if hit is None:
            return ""
        index = self.ctx.index_holding(token, hit.doc_id)
        if index is None:
            return message_html("That document is no longer in the collection.")
        return evidence_html(hit, index, last["query"])

    def export(self, token: str | None) -> list[str]:
        """The latest results as JSON and CSV files: query, settings, every score, source, page."""
        last = self.ctx.results(token)
        if not last:
            raise gr.Error("Search first: there are no results to export yet.")
        folder = self.ctx.keeper.scratch.folder("results-")
        for name, write in (("results.json", export.as_json), ("results.csv", export.as_csv)):
            (folder / name).write_text(write(last["query"], last["settings"], last["hits"]))
        return [str(folder / "results.json"), str(folder / "results.csv")]

    def remove(self, doc_id: str | None, token: str | None) -> tuple[str, Any]:
        session = self.ctx.sessions.find(token)
        engine = session.engine if session else None
        if engine is not None and doc_id and engine.index.has_doc(doc_id):
            engine.remove(doc_id)
            self.ctx.keeper.save(token or "", engine)
        return listing(engine)

    def clear(self, token: str | None) -> tuple[str, Any]:
        session = self.ctx.sessions.find(token)
        if session is not None:
            session.engine.clear()
            self.ctx.keeper.save(token or "", session.engine)
        return listing(session.engine if session else None)

    def download_collection(self, token: str | None) -> str:
        """This browser's collection as one file, to open later here or on another qsearch."""
        session = self.ctx.sessions.find(token)
        if session is None or not session.engine.documents():
            raise gr.Error("Your collection is empty: there is nothing to download yet.")
        return self.ctx.keeper.download(session.engine)

    def open_collection(self, file: str | None, token: str | None) -> tuple:
        """Replace this browser's collection by one downloaded before (checked first)."""
        if not file:
            return message_html("Choose a collection file (.zip) first."), *listing(None), token
        token, session = self._open(token)
        try:
            engine = keeping.open_file(file, self.ctx.new_engine)
        except (CollectionFileError, CollectionError) as e:
            shown = message_html(f"Not opened: {e}")
            return shown, *listing(session.engine), token
        if session.indexing is not None:
            busy = "An upload is still being indexed into this collection: open it afterwards."
            return message_html(busy), *listing(session.engine), token
        session.engine = engine
        if self.ctx.budget is not None:
            self.ctx.budget.make_room()
        not_kept = self.ctx.keeper.save(token, engine)
        opened = f"Opened {Path(file).name}: {len(engine.documents())} documents."
        shown = opened + (f" Note: {not_kept}." if not_kept else "")
        return message_html(shown), *listing(engine), token

    # --- the API and MCP tools ----------------------------------------------------------------

    def add_documents(
        self, files: list[str] | None, request: gr.Request, progress: gr.Progress = gr.Progress()
    ) -> tuple:
        """Add documents to your collection (over MCP: the collection all MCP clients share), which `search` then searches.

        Args:
            files: documents to index: {formats}; scanned PDF pages are read by OCR. A file that can't be read is reported with the reason; the others are added.
        """  # noqa: E501 - Gradio reads each argument's description from one line
        token, session = self._client(request)
        return self.uploads.add(token, session, files, _address(request), progress)

    def search(
        self,
        query: str,
        request: gr.Request,
        top_k: int = 5,
        rerank: bool = False,
        instruction: str = "",
        mode: str = "hybrid",
        rerank_candidates: int = 20,
        min_score: float | None = None,
    ) -> str:
        """Search the shared collection and the documents added with `add_documents`. Returns a JSON array, one object per passage, best first: rank, source (file), page and page_end (null without pages), where (a slide, sheet rows, chapter or e-mail; null for pages and plain text), ocr, text, and scores: overall (how likely the passage answers the query, 0-1, on one absolute scale for every query and collection), meaning (cosine similarity of query and passage embeddings), keywords (the share of the query's words the passage holds, weighted by rarity, 0-1), bm25 (raw), rerank (the reranker's probability of relevance, 0-1, null without rerank), rank_before_rerank; weak (true when its overall relevance is below min_score: probably not an answer). A score that does not apply is null.

        Args:
            query: a question or keywords, in any words; it is matched by meaning and by exact terms.
            top_k: how many passages to return (1-50).
            rerank: rescore the top candidates with the Qwen3 reranker: slower, more precise.
            instruction: what the search is for, in English, e.g. "Given a question, retrieve passages that answer the question"; empty for the default web-search instruction.
            mode: "hybrid" (meaning and keywords, the default), "dense" (meaning only) or "lexical" (keywords only).
            rerank_candidates: how many candidates the reranker rescores.
            min_score: the minimum relevance, 0-1: passages whose overall is below it come back with weak true (null: the server's default).
        """  # noqa: E501 - Gradio reads each argument's description from one line
        token, session = self._client(request)
        options = dict(k=top_k, rerank=rerank, instruction=instruction, mode=mode)
        options["min_score"] = min_score
        try:
            hits, _ = self._search(
                token, session, query, rerank_candidates=rerank_candidates, **options
            )
        except (SearchError, ValueError) as e:
            raise gr.Error(str(e)) from None
        # JSON text: what an MCP client reads (Gradio's MCP server sends a list as Python's repr)
        return json.dumps([h.to_dict() for h in hits], ensure_ascii=False)

    def remove_document(self, doc_id: str, request: gr.Request) -> tuple[str, Any]:
        return self.remove(doc_id, self._client(request)[0])

    def clear_documents(self, request: gr.Request) -> tuple[str, Any]:
        return self.clear(self._client(request)[0])


def _address(request: gr.Request | None) -> str:
    """The client's address, as the nearest proxy saw it (limits.client_address); 'local' for a
    call from this process."""
    if request is None:
        return "local"
    peer = request.client.host if request.client is not None else None
    return client_address(peer, request.headers.get("x-forwarded-for"))


# the types the MCP tool and the API docs name: the one list (documents/formats.py)
Handlers.add_documents.__doc__ = (Handlers.add_documents.__doc__ or "").replace(
    "{formats}", describe()
)
