"""What the page and the API do, as methods of one object holding the server's context.

Gradio reads each method's signature as it is: `gr.Request` and `gr.Progress` parameters are
filled in by Gradio, the others come from the page's components or the API's arguments. The
page names its collection by the token its browser keeps (`token`); API and MCP clients by
their Gradio session (`Sessions.for_client`). No search logic here: that is `Engine.search`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr

from ..documents.formats import describe
from ..library import Library
from ..models.loading import ModelLoadError
from ..search.within import Within
from ..store.base import CollectionError
from ..store.portable import CollectionFileError
from ..types import Hit
from . import export, keeping
from .clients import client_address
from .evidence import evidence_html
from .render import hits_html, message_html
from .retrieval_test import RetrievalTest
from .server import Context
from .sessions import Session, TooManySessions
from .shelf import Shelf
from .uploads import Uploads, listing

SAMPLES = Path(__file__).resolve().parents[2] / "assets" / "samples"
READY = "Your documents are ready: type a question above, and press Enter."


class SearchError(Exception):
    """A search that has no hits to show, with the message that says why."""


class Handlers(RetrievalTest):
    """The page's and the API's handlers over one Context (the retrieval test's: its base)."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.uploads = Uploads(ctx)
        self.shelf = Shelf(ctx, self._client)

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
        """[hits, notice] for `query`, or SearchError saying why it can't be searched.

        `options` may name the collections to search (`collections`: the active one when none)
        and narrow them (`files`, `file_types`, `since`: search/within.py)."""
        ctx, rerank = self.ctx, bool(options.pop("rerank"))
        if not query or not query.strip():
            raise SearchError("Type a question or some keywords, then press Enter.")
        try:
            within = Within.of(*(options.pop(k, None) for k in ("files", "file_types", "since")))
        except ValueError as e:
            raise SearchError(f"Not searched: {e}.") from None
        names = _scope(session.library, options.pop("collections", None)) if session else []
        shared = [ctx.shared] if ctx.shared is not None and len(ctx.shared.documents()) else []
        mine = [e for e in (session.library.engine(n) for n in names) if e.documents()]
        run = session.indexing if session is not None else None
        if not mine and not shared:
            raise SearchError(self._nothing_to_search(token, session, names))
        if within is not None:
            _check_within(within, names, mine, shared)
        engine, also = (mine + shared)[0], (mine + shared)[1:]
        notice, candidates = "", int(options.pop("rerank_candidates"))
        if run is not None:
            notice = (
                f"Still indexing your upload ({run.describe()}): these results come from the "
                "documents indexed before it."
            )
        if rerank and ctx.service.rerank_unavailable:
            rerank, notice = False, ctx.rerank_off()
        options.update(k=int(options["k"]), instruction=options["instruction"] or None)
        narrow = _narrowing(within)
        try:
            hits = engine.search(
                query,
                rerank=rerank,
                rerank_candidates=candidates,
                also=also,
                **options,
                **narrow,
            )
        except ModelLoadError:  # it failed to load just now (the service marks it off)
            rerank, notice = False, ctx.rerank_off()
            try:
                hits = engine.search(query, also=also, **options, **narrow)
            except ValueError as e:  # a file that names nothing here
                raise SearchError(f"Not searched: {e}.") from None
        except ValueError as e:  # a file that names nothing here
            raise SearchError(f"Not searched: {e}.") from None
        if not hits:
            return [hits, notice]
        options["min_score"] = hits.min_score  # the one used, for the export
        searched = {"collections": names} | (within.as_dict() if within else {})
        ctx.remember(token, query, hits, options | searched, rerank)
        mode = options.get("mode") or ctx.service.settings.search_mode
        ctx.keeper.searched(token, query, mode, hits, reranked=rerank)
        return [hits, notice]

    def _nothing_to_search(self, token: str, session: Session | None, names: list[str]) -> str:
        """Why there is nothing to search: still indexing, freed, or empty."""
        run = session.indexing if session is not None else None
        if run is not None:
            return (
                f"Your documents are still being indexed ({run.describe()}): search again when "
                "the upload report appears."
            )
        several = session is not None and len(session.library) > 1 and len(names) == 1
        empty = f"Your collection “{names[0]}” is empty" if several else "Your collection is empty"
        gone = self.ctx.sessions.why_gone(token)
        return gone or f"{empty}: upload documents (or load the samples)."

    # --- the page ---------------------------------------------------------------------------

    def restore(self, token: str | None) -> tuple:
        """On page load: this browser's token (a new one, minted before any upload, so that Stop
        works on the first upload too), its collection if it still exists, why if it doesn't."""
        sessions = self.ctx.sessions
        session = sessions.find(token)
        if session is not None:
            problems = " ".join(session.library.problems)
            return token, *listing(session.engine), message_html(problems) if problems else ""
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

    def add_files_live(
        self, files: list[str] | None, token: str | None, request: gr.Request | None = None
    ) -> Iterator[tuple]:
        """The page's upload: as `add_files`, its progress shown in the report while it runs."""
        token, session = self._open(token)
        for shown in self.uploads.add_live(token, session, files, _address(request)):
            yield *shown, token

    def load_samples_live(self, token: str | None, request: gr.Request | None = None) -> Iterator:
        samples = [str(p) for p in sorted(SAMPLES.iterdir())]
        yield from self.add_files_live(samples, token, request)

    def after_upload(self, results: str | None, token: str | None) -> tuple:
        """When an upload ends: a message left in the results area from before it (say, “Your
        collection is empty”) gives way to one saying the documents are ready; the collection
        controls show what is there now."""
        session = self.ctx.sessions.find(token)
        stale = not results or "qs-message" in results
        ready = session is not None and session.engine.documents()
        shown = message_html(READY) if stale and ready else gr.skip()
        return shown, *self.shelf.view(token)

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
        collections: list[str] | None = None,
        files: list[str] | None = None,
        file_types: list[str] | None = None,
        since: str | float | None = None,
        min_score: float | None = None,
    ) -> tuple[str, list[dict]]:
        """The results as cards (weak ones folded), and as data for the page's JSON view, from
        the collections chosen under "Search within" (the active one when none), narrowed as
        chosen there."""
        options = dict(k=top_k, rerank=rerank, instruction=instruction, mode=mode)
        options |= dict(collections=collections, files=files, file_types=file_types, since=since)
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
        """Remove a file of the active collection (undoable for a while: Library's trash)."""
        session = self.ctx.sessions.find(token)
        engine = session.engine if session else None
        if engine is not None and doc_id and engine.documents() and engine.index.has_doc(doc_id):
            session.library.remove(doc_id)  # type: ignore[union-attr]
            self.ctx.keeper.save(token or "", session.library)  # type: ignore[union-attr]
        return listing(session.engine if session else None)

    def clear(self, token: str | None) -> tuple[str, Any]:
        """Remove every file of the active collection (undoable for a while)."""
        session = self.ctx.sessions.find(token)
        if session is not None:
            session.library.clear()
            self.ctx.keeper.save(token or "", session.library)
        return listing(session.engine if session else None)

    def download_collection(self, token: str | None) -> str:
        """This browser's collection as one file, to open later here or on another qsearch."""
        session = self.ctx.sessions.find(token)
        if session is None or not session.engine.documents():
            raise gr.Error("Your collection is empty: there is nothing to download yet.")
        return self.ctx.keeper.download(session.engine)

    def open_collection(self, file: str | None, token: str | None) -> tuple:
        """Open a collection downloaded before as a new collection of this browser's library,
        named after its file (checked first; nothing changes when it is refused)."""
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
        try:
            name = session.library.adopt(_file_title(file), engine)
        except ValueError as e:  # too many collections
            return message_html(f"Not opened: {e}."), *listing(session.engine), token
        if self.ctx.budget is not None:
            self.ctx.budget.make_room()
        not_kept = self.ctx.keeper.save(token, session.library)
        opened = f"Opened {Path(file).name} as “{name}”: {len(engine.documents())} documents."
        shown = opened + (f" Note: {not_kept}." if not_kept else "")
        return message_html(shown), *listing(engine), token

    # --- the API and MCP tools ----------------------------------------------------------------

    def add_documents(
        self,
        files: list[str] | None,
        request: gr.Request,
        collection: str | None = None,
        progress: gr.Progress = gr.Progress(),
    ) -> tuple:
        """Add documents to a collection of yours (on a private server, the owner's collections, which every API and MCP client shares; on a public one, over MCP, those all MCP clients share), which `search` then searches.

        Args:
            files: documents to index: {formats}; scanned PDF pages are read by OCR. A file that can't be read is reported with the reason; the others are added.
            collection: the named collection to add them to, made if there is none of that name (see list_collections); empty: the active one.
        """  # noqa: E501 - Gradio reads each argument's description from one line
        token, session = self._client(request)
        if collection and collection.strip():
            try:
                self.shelf.use(session.library, collection, create=True)
            except ValueError as e:
                raise gr.Error(str(e)) from None
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
        collections: str = "",
        files: str = "",
        file_types: str = "",
        since: str = "",
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
            collections: the named collections to search, separated by commas, ranked together (see list_collections); empty: the active one.
            files: only passages of these files, separated by commas: names as listed, or patterns such as *.pdf; empty: every file.
            file_types: only files of these types, separated by commas: extensions (pdf, docx, xlsx) or kinds (sheet, slides, email); empty: every type.
            since: only files added at or after this: a date or time in ISO 8601 (2025-03-01, 2025-03-01T14:30) or an age (7d, 12h); empty: any time.
            min_score: the minimum relevance, 0-1: passages whose overall is below it come back with weak true (null: the server's default).
        """  # noqa: E501 - Gradio reads each argument's description from one line
        token, session = self._client(request)
        options = dict(k=top_k, rerank=rerank, instruction=instruction, mode=mode)
        options |= dict(collections=_split(collections), files=files, file_types=file_types)
        options |= dict(since=since, min_score=min_score)
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


def _scope(library: Library, collections: list[str] | str | None) -> list[str]:
    """The collections a search covers: those named that exist (as the library spells them), or
    the active one when none is named."""
    known = [library.resolve(n) for n in _split(collections) if n in library]
    return list(dict.fromkeys(known)) or [library.active]


def _check_within(within: Within, names: list[str], mine: list, shared: list) -> None:
    """SearchError when `within` names a file none of the collections searched holds, or lets no
    document of them through (said before any search, in the words a user chose)."""
    searched = " and ".join(filter(None, [_listed(names), "the shared index" if shared else ""]))
    docs = [d for e in mine + shared for d in e.documents()]
    unknown = within.unknown_files(docs)
    if unknown:
        held = sorted({Path(d.source).name for d in docs})
        shown = ", ".join(held[:20]) + (f" and {len(held) - 20} more" if len(held) > 20 else "")
        raise SearchError(
            f"Not searched: no file named {', '.join(map(repr, unknown))} in {searched}; "
            f"they hold: {shown}."
        )
    if not within.doc_ids(docs):
        raise SearchError(
            f"No file of {searched} matches {within.describe()}: choose other files, types or "
            "dates."
        )


def _split(text: str | list[str] | None) -> list[str]:
    if isinstance(text, list):
        return text
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _listed(names: list[str]) -> str:
    return ", ".join(f"“{n}”" for n in names)


def _narrowing(within: Within | None) -> dict[str, Any]:
    """Engine.search's arguments for `within` (nothing when there is no filter)."""
    if within is None:
        return {}
    return {"files": list(within.files), "file_types": list(within.types), "since": within.since}


def _file_title(path: str) -> str:
    """A collection's name from the file it was opened from: 'papers' for papers.zip."""
    stem = Path(path).stem
    return stem if stem and stem != Path(keeping.COLLECTION_FILE).stem else "Opened collection"


def _address(request: gr.Request | None) -> str:
    """The client's address, as the nearest proxy saw it (clients.client_address); 'local' for a
    call from this process."""
    if request is None:
        return "local"
    peer = request.client.host if request.client is not None else None
    return client_address(peer, request.headers.get("x-forwarded-for"))


# the types the MCP tool and the API docs name: the one list (documents/formats.py)
Handlers.add_documents.__doc__ = (Handlers.add_documents.__doc__ or "").replace(
    "{formats}", describe()
)
