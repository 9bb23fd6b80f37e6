"""The page's library controls (web/shelf.py) and searches within, through the page's own handlers
on a real context (the bundled MiniLM, no reranker, collections kept in a temporary folder):
names refused with their reason, removals asked first and undone, names escaped, what a narrowed
search searched in its export, and the stale message cleared after an upload."""

from __future__ import annotations

import json

import pytest

from qsearch import Settings
from qsearch.web.handlers import SAMPLES, Handlers
from qsearch.web.server import Context
from qsearch.web.shelf import VIEW

PAGE = dict(top_k=5, rerank=False, instruction="", mode="hybrid", rerank_candidates=10)


def no_progress(*_: object, **__: object) -> None:
    return None


@pytest.fixture(scope="module")
def on(minilm_dir, tmp_path_factory) -> Handlers:
    settings = Settings(
        embed_model=str(minilm_dir),
        rerank_model="none/none",
        device="cpu",
        dtype="float32",
        data_dir=str(tmp_path_factory.mktemp("shelf")),
    )
    return Handlers(Context.create(settings))


def visitor(on: Handlers, *names: str) -> str:
    """A new visitor's token, with the sample files `names` in its first collection."""
    token = on.restore(None)[0]
    on.add_files([str(SAMPLES / n) for n in names], token, no_progress)
    return token


def picked(update: dict) -> object:
    return update["value"]


def test_collections_are_made_renamed_and_picked_and_bad_names_are_said(on):
    token = visitor(on, "first-aid-basics.txt")
    row, box, mode, note = on.shelf.start_naming("new", token)
    assert row["visible"] and box["value"] == "" and mode == "new" and note == ""
    row, note, *view = on.shelf.name("new", "  Kitchen  notes ", token)
    assert not row["visible"] and note == "" and len(view) == len(VIEW)
    assert picked(view[0]) == "Kitchen notes" and view[0]["choices"][-1] == "Kitchen notes"
    assert "No documents yet" in view[5], "the new collection is the active one, empty"
    row, note, *view = on.shelf.name("new", "my DOCUMENTS", token)
    assert row["visible"] and "There is already a collection named “My documents”" in note
    _, box, mode, _ = on.shelf.start_naming("rename", token)
    assert box["value"] == "Kitchen notes" and mode == "rename"
    _, _, *view = on.shelf.name("rename", "<b>Recipes</b>", token)
    assert picked(view[0]) == "<b>Recipes</b>"
    view = on.shelf.switch("My documents", token)
    assert picked(view[0]) == "My documents" and "first-aid-basics.txt" in view[5]
    assert picked(view[1]) == ["My documents"], "a search covers the active one"


def test_removals_are_asked_first_then_undone_and_names_are_escaped(on):
    token = visitor(on, "first-aid-basics.txt", "solar-system.md")
    on.shelf.name("rename", "<img src=x onerror=alert(1)>", token)
    session = on.ctx.sessions.find(token)
    solar = next(d.doc_id for d in session.engine.documents() if d.source == "solar-system.md")
    assert on.shelf.ask("remove", None, token)[0]["visible"] is False, "nothing chosen: no ask"
    row, question, pending = on.shelf.ask("remove", solar, token)
    assert row["visible"] and "Remove solar-system.md from" in question
    assert "&lt;img src=x" in question and "<img" not in question, "names are escaped"
    assert "You can undo it for 5 minutes." in question
    ask_row, undo_row, said, ticket, *view = on.shelf.confirm(pending, token)
    assert not ask_row["visible"] and undo_row["visible"] and "Removed solar-system.md" in said
    assert "solar-system.md" not in view[5] and "first-aid-basics.txt" in view[5]
    _, question, pending = on.shelf.ask("clear", None, token)
    assert "Remove 1 file of" in question
    _, _, said, cleared, *view = on.shelf.confirm(pending, token)
    assert "No documents yet" in view[5]
    undo_row, report, *view = on.shelf.undo(cleared, token)
    assert not undo_row["visible"] and "Restored 1 file of" in report
    undo_row, report, *view = on.shelf.undo(ticket, token)
    assert "Restored solar-system.md" in report and "solar-system.md" in view[5]
    _, question, pending = on.shelf.ask("delete", None, token)
    assert "Delete the collection" in question and "its 2 files" in question
    on.shelf.confirm(pending, token)
    assert session.library.names() == ["My documents"]
    _, report, *_ = on.shelf.undo("", token)
    assert "Restored the collection" in report
    assert on.shelf.undo("0123", token)[1].count("can no longer be undone") == 1


def test_a_narrowed_search_says_what_it_searched_in_its_export(on):
    token = visitor(on, "first-aid-basics.txt", "python-tips.md")
    session = on.ctx.sessions.find(token)
    first_aid = next(d for d in session.engine.documents() if d.source == "first-aid-basics.txt")
    on.shelf.name("new", "Empty one", token)
    options = dict(collections=["My documents", "Empty one"], since="2000-01-01")
    html, hits = on.search_page(
        "python list", token=token, files=[first_aid.doc_id], file_types=["txt"], **options, **PAGE
    )
    assert hits and {h["source"] for h in hits} == {"first-aid-basics.txt"}
    assert {h["collection"] for h in hits} == {"My documents"}
    exported = json.loads(open(on.export(token)[0]).read())
    settings = exported["settings"]
    assert settings["collections"] == ["My documents", "Empty one"]
    assert settings["files"] == [first_aid.doc_id] and settings["types"] == ["txt"]
    assert settings["since"].startswith("2000-01-01T00:00:00")
    html, hits = on.search_page(
        "python", token=token, file_types=["pdf"], collections=["My documents"], **PAGE
    )
    assert hits == [] and "No file of “My documents” matches type pdf" in html
    html, _ = on.search_page("python", token=token, since="last week", **PAGE)
    assert "Not searched: since must be a date or time in ISO 8601" in html
    html, _ = on.search_page("python", token=token, collections=["Empty one"], **PAGE)
    assert "Your collection “Empty one” is empty" in html


def test_an_upload_clears_the_message_left_from_before_it(on):
    token = on.restore(None)[0]
    empty, _ = on.search_page("anything", token=token, **PAGE)
    assert "collection is empty" in empty
    on.add_files([str(SAMPLES / "solar-system.md")], token, no_progress)
    shown, *view = on.after_upload(empty, token)
    assert "ready: type a question" in shown and "solar-system.md" in view[5]
    cards, _ = on.search_page("largest planet", token=token, **PAGE)
    kept, *_ = on.after_upload(cards, token)
    assert kept.__class__.__name__ != "str", "results from before stay (gr.skip)"
