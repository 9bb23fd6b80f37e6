"""The page's library controls and the API's (and MCP's) collection tools, over one Context.

A visitor's collections are a `Library` (qsearch.library): the page picks the active one (where
uploads go), makes, renames and deletes them, and chooses what a search covers ("Search within":
one or several collections, some of their files, file types, files added since a date). Every
removal (a file, all files, a collection) asks first, then can be undone for a few minutes.

The page's handlers return updates in fixed orders, which page.py wires its components to:
VIEW (the collection controls and the file list), and the few outputs each step adds before it.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from typing import Any

import gradio as gr

from ..library import DEFAULT_NAME, Library, Removed
from ..search.within import doc_type
from ..store.base import DocInfo
from .render import message_html
from .server import Context
from .sessions import Session, TooManySessions
from .uploads import listing

# the components VIEW's updates are for, in order (page.py wires them)
VIEW = ("collection", "scope", "within", "within_files", "within_types", "files", "to_remove")
ASK = {  # what the confirmation asks, by kind
    "remove": "Remove {file} from “{name}”?",
    "clear": "Remove {all}{files} of “{name}”?",
    "delete": "Delete the collection “{name}” and its {files}?",
}


class Shelf:
    """The library controls of one server. `client(request)` gives an API client's (token,
    session), as Handlers does."""

    def __init__(self, ctx: Context, client: Callable[[gr.Request], tuple[str, Session]]):
        self.ctx, self._client = ctx, client

    # --- the page -----------------------------------------------------------------------------

    def view(self, token: str | None, scope: list[str] | None = None) -> tuple:
        """VIEW for this browser's library (a new visitor's: one empty collection)."""
        session = self.ctx.sessions.find(token)
        return view(session.library if session else None, scope)

    def kept(self) -> str:
        """Where collections are kept and for how long, for the page (markdown)."""
        place, limits = self.ctx.keeper.place, self.ctx.limits
        text = place.describe(
            self.ctx.service.settings.data_idle_hours, show_path=not limits.public
        )
        if place.kind == "off":
            text += f" A collection unused for {limits.session_idle_minutes:g} minutes is freed."
        return f"<small>{text}</small>"

    def switch(self, name: str | None, token: str | None) -> tuple:
        """Make `name` the active collection (where uploads go): VIEW."""
        session = self._session(token)
        if name and name in session.library:
            session.library.switch(name)
            self._save(token, session)
        return view(session.library)

    def scope_changed(
        self, scope: list[str] | None, files: list[str] | None, types: list[str] | None, token: str
    ) -> tuple:
        """The collections to search changed: the accordion's title and the files and types to
        choose from (those chosen stay chosen where they still exist)."""
        session = self.ctx.sessions.find(token)
        full = view(session.library if session else None, scope, files, types)
        return full[2:5]

    def start_naming(self, mode: str, token: str | None) -> tuple:
        """Show the name box, for a new collection ("new") or the active one's new name."""
        session = self.ctx.sessions.find(token)
        active = session.library.active if session else DEFAULT_NAME
        label = "Name of the new collection" if mode == "new" else f"New name for “{active}”"
        value = "" if mode == "new" else active
        return gr.update(visible=True), gr.update(label=label, value=value), mode, ""

    def name(self, mode: str, name: str, token: str | None) -> tuple:
        """Make or rename a collection: (name row, note, *VIEW); a bad name is said in the note
        and nothing changes."""
        session = self._session(token)
        try:
            if mode == "new":
                session.library.create(name)
            else:
                session.library.rename(session.library.active, name)
        except ValueError as e:
            return gr.update(visible=True), _note(str(e)), *(gr.skip() for _ in VIEW)
        self._save(token, session)
        return gr.update(visible=False), "", *view(session.library)

    def ask(self, kind: str, doc_id: str | None, token: str | None) -> tuple:
        """Ask before a removal: (confirmation row, its question, what is pending)."""
        session = self.ctx.sessions.find(token)
        library = session.library if session else None
        engine = library.engine() if library else None
        docs = {d.doc_id: d for d in engine.documents()} if engine else {}
        hidden = gr.update(visible=False), "", None
        if library is None or (kind != "delete" and not docs) or (kind == "remove" and not doc_id):
            return hidden
        if kind == "remove" and doc_id not in docs:
            return hidden
        name = library.active
        question = ASK[kind].format(
            file=_base(docs[doc_id].source) if doc_id in docs else "",
            files=_files(len(docs)),
            all="all " if len(docs) > 1 else "",
            name=name,
        )
        minutes = f"{library.trash_seconds / 60:g} minutes"
        question += f" You can undo it for {minutes}."
        pending = {"kind": kind, "doc_id": doc_id, "collection": name}
        return gr.update(visible=True), _say(question), pending

    def confirm(self, pending: dict[str, Any] | None, token: str | None) -> tuple:
        """Do what was asked: (confirmation row, undo row, what went, its ticket, *VIEW)."""
        session = self.ctx.sessions.find(token)
        if not pending or session is None:
            return gr.update(visible=False), gr.skip(), gr.skip(), gr.skip(), *view(None)
        library, name = session.library, pending["collection"]
        removed: Removed | None = None
        try:
            if pending["kind"] == "remove":
                removed = library.remove(pending["doc_id"], name)
            elif pending["kind"] == "clear":
                removed = library.clear(name)
            else:
                removed = library.delete(name)
        except (KeyError, ValueError):  # gone meanwhile (another tab): nothing to do
            removed = None
        self._save(token, session)
        if removed is None:
            return gr.update(visible=False), gr.skip(), gr.skip(), gr.skip(), *view(library)
        said = _say(f"Removed {removed.what}.")
        shown = gr.update(visible=True)
        return gr.update(visible=False), shown, said, removed.ticket, *view(library)

    def undo(self, ticket: str | None, token: str | None) -> tuple:
        """Put back the removal `ticket`: (undo row, report, *VIEW)."""
        session = self.ctx.sessions.find(token)
        if session is None:
            return gr.update(visible=False), message_html("Nothing to undo."), *view(None)
        try:
            done = session.library.undo(ticket or None)
        except ValueError as e:
            done = f"Not undone: {e}."
        self._save(token, session)
        return gr.update(visible=False), message_html(done), *view(session.library)

    # --- the API and MCP tools ----------------------------------------------------------------

    def list_collections(self, request: gr.Request) -> str:
        """Your named collections (on a private server, the owner's, which every API and MCP client shares; on a public one, over MCP, those all MCP clients share), as a JSON array: each with its name, whether it is the active one (where add_documents adds), its files and its chunk count. `search` searches one or several of them."""  # noqa: E501
        _, session = self._client(request)
        library = session.library
        return json.dumps(
            [
                {
                    "name": name,
                    "active": name == library.active,
                    "files": [d.source for d in library.engine(name).documents()],
                    "chunks": sum(d.chunks for d in library.engine(name).documents()),
                }
                for name in library.names()
            ],
            ensure_ascii=False,
        )

    def create_collection(self, name: str, request: gr.Request) -> str:
        """Make a new, empty named collection and make it the active one (add_documents adds there).

        Args:
            name: its name (1 to 60 characters, not one you have already).
        """  # noqa: E501
        token, session = self._client(request)
        self._do(lambda: session.library.create(name))
        made = session.library.active
        self._save(token, session)
        return f"Made the collection “{made}”; it is the active one."

    def rename_collection(self, name: str, new_name: str, request: gr.Request) -> str:
        """Rename one of your collections.

        Args:
            name: the collection's name now.
            new_name: its new name (1 to 60 characters, not one you have already).
        """
        token, session = self._client(request)
        new = self._do(lambda: session.library.rename(name, new_name))
        self._save(token, session)
        return f"Renamed “{name}” to “{new}”."

    def delete_collection(self, name: str, request: gr.Request) -> str:
        """Delete one of your collections and its files. undo_removal brings it back within a few minutes.

        Args:
            name: the collection to delete.
        """  # noqa: E501
        token, session = self._client(request)
        removed = self._do(lambda: session.library.delete(name))
        self._save(token, session)
        minutes = f"{session.library.trash_seconds / 60:g} minutes"
        return f"Deleted {removed.what}; undo_removal brings it back within {minutes}."

    def undo_removal(self, request: gr.Request) -> str:
        """Undo your latest removal (a deleted collection, a cleared one, a removed file), if it was made within the last few minutes."""  # noqa: E501
        token, session = self._client(request)
        done = self._do(lambda: session.library.undo())
        self._save(token, session)
        return done

    def use(self, library: Library, name: str, *, create: bool = False) -> str:
        """Make `name` active (made first when `create` and it doesn't exist); its name."""
        if name not in library and create:
            library.create(name)
        return library.switch(name)

    # --- helpers ------------------------------------------------------------------------------

    def _session(self, token: str | None) -> Session:
        try:
            return self.ctx.sessions.open(token)[1]
        except TooManySessions as e:
            raise gr.Error(str(e)) from None

    def _save(self, token: str | None, session: Session) -> None:
        if token:
            self.ctx.keeper.save(token, session.library)

    @staticmethod
    def _do(work: Callable[[], Any]) -> Any:
        try:
            return work()
        except ValueError as e:
            raise gr.Error(str(e)) from None


def view(
    library: Library | None,
    scope: list[str] | None = None,
    files: list[str] | None = None,
    types: list[str] | None = None,
) -> tuple:
    """VIEW: the collection picker, the collections searched, the "Search within" accordion's
    title, the files and types to narrow to (`files`, `types`: those chosen, kept where they
    still exist), the active collection's file table and removal choices."""
    names = library.names() if library else [DEFAULT_NAME]
    active = library.active if library else DEFAULT_NAME
    chosen = [n for n in scope or [] if n in names] or [active]
    docs = library.documents(chosen) if library else []
    several = len(chosen) > 1
    file_choices = [(_label(d, name, several), d.doc_id) for name, d in docs]
    ids = {d.doc_id for _, d in docs}
    type_choices = sorted({doc_type(d) for _, d in docs})
    return (
        gr.update(choices=names, value=active),
        gr.update(choices=names, value=chosen),
        gr.update(label=within_label(chosen)),
        gr.update(choices=file_choices, value=[f for f in files or [] if f in ids]),
        gr.update(choices=type_choices, value=[t for t in types or [] if t in type_choices]),
        *listing(library.engine() if library else None),
    )


def within_label(chosen: list[str]) -> str:
    """The "Search within" accordion's title: what a search covers now."""
    what = f"“{chosen[0]}”" if len(chosen) == 1 else f"{len(chosen)} collections"
    return f"Search within: {what} (choose collections, files, types, dates)"


def _label(doc: DocInfo, collection: str, several: bool) -> str:
    return f"{doc.source} · {collection}" if several else doc.source


def _say(text: str) -> str:
    return f"<div class='qs-said' style='padding:4px 0'>{html.escape(text)}</div>"


def _note(text: str) -> str:
    return f"<small style='color:#b91c1c'>{html.escape(text[:1].upper() + text[1:])}.</small>"


def _files(n: int) -> str:
    return f"{n} file{'s' if n != 1 else ''}"


def _base(source: str) -> str:
    return source.replace("\\", "/").rsplit("/", 1)[-1]
