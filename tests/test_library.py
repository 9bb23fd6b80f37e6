"""A user's library (qsearch.library): named collections made, renamed, switched and deleted,
searched one or several at once, a trash that undoes removals for a few minutes, limits across
collections, and the whole kept in a folder. The fake hashing embedder: fast and predictable."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes import HashingEmbedder

from qsearch import Engine, IngestError, Library, Settings
from qsearch.library import DEFAULT_NAME, MANIFEST

TEXTS = {
    "tides.txt": "The moon pulls the oceans into tides twice a day.",
    "bread.md": "Sourdough rises with wild yeast overnight before baking.",
    "ice.txt": "Glaciers carve valleys as they slowly move downhill.",
}


@pytest.fixture
def new_engine():
    embedder = HashingEmbedder(32)
    settings = Settings(embed_model=embedder.model_name)
    return lambda: Engine(settings, embedder=embedder)


@pytest.fixture
def files(tmp_path) -> dict[str, Path]:
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, text in TEXTS.items():
        (folder / name).write_text(text)
    return {name: folder / name for name in TEXTS}


def _add(library: Library, name: str, *paths: Path) -> None:
    report = library.engine(name).add_files(list(paths), names=[p.name for p in paths])
    assert not report.errors, report.errors


def test_collections_are_made_renamed_switched_and_refused_with_reasons(new_engine):
    library = Library(new_engine, max_collections=3)
    assert library.names() == [DEFAULT_NAME] and library.active == DEFAULT_NAME
    library.create("  Papers   2025 ")
    assert library.names() == [DEFAULT_NAME, "Papers 2025"] and library.active == "Papers 2025"
    assert library.switch("my DOCUMENTS") == DEFAULT_NAME, "names match case aside"
    assert library.rename("papers 2025", "Reading") == "Reading" and "Papers 2025" not in library
    with pytest.raises(ValueError, match="already a collection named “Reading”"):
        library.create("READING")
    with pytest.raises(ValueError, match="needs a name"):
        library.create("   ")
    with pytest.raises(ValueError, match="at most 60 characters, got 61"):
        library.create("x" * 61)
    with pytest.raises(ValueError, match="control characters"):
        library.create("tab\x00name")
    with pytest.raises(ValueError, match="no collection named “Nope”; there are: “My documents”"):
        library.switch("Nope")
    library.create("Third")
    with pytest.raises(ValueError, match="at most 3 collections"):
        library.create("Fourth")
    assert library.rename("Third", "third") == "third", "a new spelling of its own name is fine"


def test_one_search_over_several_collections_ranks_them_together(new_engine, files):
    library = Library(new_engine)
    _add(library, DEFAULT_NAME, files["tides.txt"], files["bread.md"])
    library.create("Ice")
    _add(library, "Ice", files["ice.txt"])
    only_mine = library.search("glaciers carve valleys", [DEFAULT_NAME], k=5, mode="lexical")
    assert {h.collection for h in only_mine} <= {DEFAULT_NAME}
    assert all("Glaciers" not in h.text for h in only_mine)
    both = library.search("glaciers carve valleys", [DEFAULT_NAME, "ice"], k=5)
    assert both[0].source == "ice.txt" and both[0].collection == "Ice"
    assert {h.collection for h in both} == {DEFAULT_NAME, "Ice"}, "every hit says where it is from"
    assert library.search("moon tides", k=1)[0].collection == "Ice", "None: the active one"
    narrowed = library.search("the", [DEFAULT_NAME, "Ice"], k=5, files=["bread.md"])
    assert [h.source for h in narrowed] == ["bread.md"]


def test_removals_go_to_the_trash_and_come_back(new_engine, files):
    now = [1000.0]
    library = Library(new_engine, clock=lambda: now[0])
    _add(library, DEFAULT_NAME, *files.values())
    engine = library.engine()
    bread = next(d for d in engine.documents() if d.source == "bread.md")
    before = [h.to_dict() for h in engine.search("wild yeast", k=3)]
    removed = library.remove(bread.doc_id)
    assert removed.what == "bread.md from “My documents”" and len(engine.documents()) == 2
    assert library.undo() == "Restored bread.md to “My documents”."
    assert [h.to_dict() for h in library.engine().search("wild yeast", k=3)] == before
    cleared = library.clear()
    assert cleared.what == "3 files of “My documents”" and library.engine().documents() == []
    assert library.clear() is None, "nothing to clear"
    _add(library, DEFAULT_NAME, files["ice.txt"])  # changed meanwhile: what came after stays
    library.undo(cleared.ticket)
    assert sorted(d.source for d in library.engine().documents()) == sorted(TEXTS)
    library.create("Spare")
    deleted = library.delete("Spare")
    assert library.names() == [DEFAULT_NAME] and library.active == DEFAULT_NAME
    library.create("Spare")  # the name is taken again before the undo
    assert library.undo(deleted.ticket) == "Restored the collection “Spare (restored)”."
    assert library.names() == [DEFAULT_NAME, "Spare (restored)", "Spare"]
    last = library.remove(library.engine(DEFAULT_NAME).documents()[0].doc_id, DEFAULT_NAME)
    now[0] += library.trash_seconds + 1
    assert library.trash == []
    with pytest.raises(ValueError, match="can no longer be undone"):
        library.undo(last.ticket)
    with pytest.raises(ValueError, match="nothing to undo"):
        library.undo()


def test_deleting_the_last_collection_leaves_an_empty_one(new_engine, files):
    library = Library(new_engine)
    _add(library, DEFAULT_NAME, files["tides.txt"])
    library.rename(DEFAULT_NAME, "Only")
    library.delete("Only")
    assert library.names() == [DEFAULT_NAME] and library.engine().documents() == []
    library.undo()
    assert library.names() == ["Only"], "the empty stand-in goes when the collection comes back"
    assert library.active == "Only"
    assert [d.source for d in library.engine().documents()] == ["tides.txt"]


def test_the_limits_of_one_collection_hold_for_all_of_them_together(new_engine, files):
    embedder = HashingEmbedder(32)
    settings = Settings(embed_model=embedder.model_name, max_files=3)
    library = Library(lambda: Engine(settings, embedder=embedder))
    _add(library, DEFAULT_NAME, files["tides.txt"], files["bread.md"])
    library.create("Second")
    report = library.engine("Second").add_files([files["ice.txt"], files["tides.txt"]])
    assert [f.status for f in report.files] == ["indexed", "error"]
    assert "your collections hold 2 files together (3 at most)" in report.files[1].error
    with pytest.raises(IngestError):
        library.engine("Second").room(2, 0)


def test_a_library_is_kept_in_a_folder_and_loads_each_collection_when_used(
    new_engine, files, tmp_path
):
    folder = tmp_path / "library"
    library = Library.open(folder, new_engine=new_engine)
    _add(library, DEFAULT_NAME, files["tides.txt"])
    library.create("Kitchen")
    _add(library, "Kitchen", files["bread.md"])
    library.save()
    manifest = (folder / MANIFEST).read_text()
    assert "Kitchen" in manifest and not any("Kitchen" in p.name for p in folder.iterdir())
    again = Library.open(folder, new_engine=new_engine)
    assert again.names() == [DEFAULT_NAME, "Kitchen"] and again.active == "Kitchen"
    assert [e is None for e in (x.engine for x in again._entries)] == [True, True], "lazy"
    assert again.summary() == [
        {"name": DEFAULT_NAME, "files": 1, "chunks": 1},
        {"name": "Kitchen", "files": 1, "chunks": 1},
    ], "counted from disk, nothing loaded"
    assert again.search("yeast", k=1)[0].source == "bread.md"
    again.delete(DEFAULT_NAME)
    again.rename("Kitchen", "Bakery")
    again.save()
    folders = [p for p in folder.iterdir() if p.is_dir()]
    assert len(folders) == 2, "a deleted collection's folder stays while it can be undone"
    assert Library.open(folder, new_engine=new_engine).names() == ["Bakery"], "not listed"
    again.undo()
    assert again.search("moon", k=1)[0].collection == DEFAULT_NAME, "it loads from its folder"
    again.delete(DEFAULT_NAME)
    again.save()
    third = Library.open(folder, new_engine=new_engine)
    assert third.names() == ["Bakery"] and third.engine().documents()[0].source == "bread.md"
    third.save()
    assert len([p for p in folder.iterdir() if p.is_dir()]) == 1, "no trash to keep it for"


def test_a_damaged_list_is_refused_with_its_path(new_engine, tmp_path):
    (tmp_path / MANIFEST).write_text("{not json")
    with pytest.raises(Exception, match=r"library\.json is damaged"):
        Library.open(tmp_path, new_engine=new_engine)
