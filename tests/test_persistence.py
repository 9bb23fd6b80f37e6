"""Libraries saved by token (web/keeping.py's CollectionStore): reload, restart, expiry, crashes,
tokens, and a collection kept by an older qsearch (one index per token) opened and moved."""

from __future__ import annotations

import os
import secrets
import signal
import time

import pytest
from fakes import HashingEmbedder

from qsearch import Engine, IndexFolderError, Library, Settings
from qsearch.library import copied
from qsearch.store import folders
from qsearch.web.keeping import CollectionStore

TEXTS = {
    "rivers.txt": "The Rhine rises in the Swiss Alps and flows north to the North Sea.",
    "bread.md": "Knead the dough, let it rise for an hour, and bake the bread at 220 degrees.",
}
QUERY = "where does the Rhine flow?"
HOUR = 3600.0


@pytest.fixture
def embedder() -> HashingEmbedder:
    return HashingEmbedder(64)


@pytest.fixture
def new_engine(embedder):
    return lambda: Engine(Settings(embed_model=embedder.model_name), embedder=embedder)


@pytest.fixture
def library(new_engine, tmp_path) -> Library:
    library = Library(new_engine)
    _add(library.engine(), tmp_path, TEXTS)
    return library


@pytest.fixture
def engine(library) -> Engine:
    return library.engine()


def _add(engine: Engine, tmp_path, texts: dict[str, str]) -> None:
    folder = tmp_path / "docs"
    folder.mkdir(exist_ok=True)
    for name, text in texts.items():
        (folder / name).write_text(text)
    assert not engine.add_files([folder / name for name in texts]).errors


def _hits(found: Engine | Library, query: str = QUERY) -> list[dict]:
    engine = found.engine() if isinstance(found, Library) else found
    return [h.to_dict() | {"collection": None} for h in engine.search(query, k=3)]


def test_save_load_and_a_restart_keep_the_hits(library, engine, new_engine, tmp_path):
    token = secrets.token_urlsafe(32)
    store = CollectionStore(tmp_path / "data", HOUR)
    assert store.load(token, new_engine) is None
    store.save(token, library)
    loaded = store.load(token, new_engine)
    assert loaded is not engine and _hits(loaded) == _hits(engine)
    restarted = CollectionStore(tmp_path / "data", HOUR).load(token, new_engine)
    assert _hits(restarted) == _hits(engine) and len(restarted.engine().documents()) == 2
    assert (
        CollectionStore(tmp_path / "data", HOUR).load(secrets.token_urlsafe(32), new_engine) is None
    )


def test_the_token_is_not_written_to_disk(library, tmp_path):
    token = secrets.token_urlsafe(32)
    CollectionStore(tmp_path / "data", HOUR).save(token, library)
    names = [p.name for p in (tmp_path / "data").rglob("*")]
    assert names and not any(token in name for name in names)


def test_expiry_by_an_injected_clock(library, new_engine, tmp_path):
    store = CollectionStore(tmp_path / "data", HOUR)
    tokens = [secrets.token_urlsafe(32) for _ in range(2)]
    for token in tokens:
        store.save(token, library)
    assert store.expire(now=time.time() + HOUR - 60) == 0
    assert all(store.load(t, new_engine) is not None for t in tokens)
    assert store.expire(now=time.time() + HOUR + 60) == 2
    assert all(store.load(t, new_engine) is None for t in tokens)
    assert list(store.root.iterdir()) == []


def test_expiry_keeps_a_used_collection(library, engine, new_engine, tmp_path):
    store = CollectionStore(tmp_path / "data", HOUR)
    used, idle = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    store.save(used, library)
    store.save(idle, library)
    two_hours_ago = time.time() - 2 * HOUR
    for folder in store.root.iterdir():
        os.utime(folder / "USED", (two_hours_ago, two_hours_ago))
    store.touch(used)
    assert store.expire() == 1
    assert store.load(idle, new_engine) is None and _hits(store.load(used, new_engine)) == _hits(
        engine
    )


def test_a_crash_mid_save_keeps_the_previous_save(
    library, engine, new_engine, tmp_path, monkeypatch
):
    token = secrets.token_urlsafe(32)
    store = CollectionStore(tmp_path / "data", HOUR)
    store.save(token, library)
    before = _hits(engine, "baking bread")
    _add(engine, tmp_path, {"more.txt": "Sourdough bread needs a starter and a slow rise."})
    assert _hits(engine, "baking bread") != before
    real_write, written = folders._write, []

    def crash_after_two_files(path, data):
        if len(written) == 2:
            raise OSError("No space left on device (simulated crash mid-save)")
        written.append(path)
        real_write(path, data)

    monkeypatch.setattr(folders, "_write", crash_after_two_files)
    with pytest.raises(OSError, match="simulated"):
        store.save(token, library)
    monkeypatch.undo()
    assert written  # the new version was half written when it failed
    restarted = CollectionStore(tmp_path / "data", HOUR).load(token, new_engine)
    assert _hits(restarted, "baking bread") == before and len(restarted.engine().documents()) == 2
    store.save(token, library)  # the next save succeeds and cleans up the half-written version
    assert _hits(store.load(token, new_engine), "baking bread") == _hits(engine, "baking bread")
    assert [p.name for p in store._folder(token).rglob(".tmp-*")] == []


def test_a_hard_kill_mid_save_keeps_the_previous_save(library, engine, new_engine, tmp_path):
    """The save process dies (os._exit, no cleanup) after writing part of the new version."""
    token = secrets.token_urlsafe(32)
    store = CollectionStore(tmp_path / "data", HOUR)
    store.save(token, library)
    before = _hits(engine, "baking bread")
    _add(engine, tmp_path, {"more.txt": "Sourdough bread needs a starter and a slow rise."})
    pid = os.fork()
    if pid == 0:  # the child: write one file of the new version, then die
        real_write = folders._write
        folders._write = lambda path, data: (real_write(path, data), os._exit(9))
        try:
            store.save(token, library)
        finally:
            os._exit(0)  # not reached when the kill worked
    assert _wait(pid, seconds=60) == 9
    assert any(p.name.startswith(".tmp-") for p in store._folder(token).rglob("*"))
    restarted = CollectionStore(tmp_path / "data", HOUR).load(token, new_engine)
    assert _hits(restarted, "baking bread") == before


def _wait(pid: int, seconds: float) -> int:
    """The child's exit code; a child still running after `seconds` is killed and fails the test."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail(f"the saving child process did not finish in {seconds} s")


def test_saving_an_empty_library_forgets_it(library, engine, new_engine, tmp_path):
    token = secrets.token_urlsafe(32)
    store = CollectionStore(tmp_path / "data", HOUR)
    store.save(token, library)
    library.clear()
    store.save(token, library)
    assert store.load(token, new_engine).engine().documents() == [], "the trash is not kept"
    for removed in library.trash:
        removed.expires = 0.0  # its minutes have passed: nothing is left to keep
    store.save(token, library)
    assert store.load(token, new_engine) is None
    store.save(token, Library(new_engine))  # a fresh library (one empty collection) is empty too
    store.forget(token)
    assert list(store.root.iterdir()) == []


def test_named_collections_and_the_active_one_survive_a_restart(library, new_engine, tmp_path):
    token = secrets.token_urlsafe(32)
    store = CollectionStore(tmp_path / "data", HOUR)
    library.rename("My documents", "Rivers and bread")
    library.create("Empty for now")
    library.switch("rivers and BREAD")
    store.save(token, library)
    again = CollectionStore(tmp_path / "data", HOUR).load(token, new_engine)
    assert again.names() == ["Rivers and bread", "Empty for now"]
    assert again.active == "Rivers and bread" and _hits(again) == _hits(library)
    assert again.summary()[0] == {"name": "Rivers and bread", "files": 2, "chunks": 2}


def test_an_index_kept_by_an_older_qsearch_opens_and_moves_into_a_library(
    engine, new_engine, tmp_path
):
    """Before named collections, a token's folder held one index at its top: it opens as one
    collection, and the next save moves it into the library's layout (nothing lost)."""
    token = secrets.token_urlsafe(32)
    store = CollectionStore(tmp_path / "data", HOUR)
    engine.save(store._folder(token))  # what the older store wrote
    (store._folder(token) / "USED").touch()
    old = store.load(token, new_engine)
    assert old.names() == ["My documents"] and _hits(old) == _hits(engine)
    store.save(token, old)
    top = sorted(p.name for p in store._folder(token).iterdir())
    assert "CURRENT" not in top and "library.json" in top and "USED" in top, top
    assert _hits(store.load(token, new_engine)) == _hits(engine)


@pytest.mark.parametrize(
    "token",
    ["", "short", "../../etc/passwd-xxxxxxxx", "a" * 129, "abc/def-ghijklmnopq", "é" * 20, None],
)
def test_bad_tokens_are_refused_before_any_path_is_made(token, engine, new_engine, tmp_path):
    store = CollectionStore(tmp_path / "data", HOUR)
    for call in (
        lambda: store.save(token, library),
        lambda: store.load(token, new_engine),
        lambda: store.forget(token),
        lambda: store.touch(token),
    ):
        with pytest.raises(ValueError, match="16 to 128 URL-safe characters"):
            call()
    assert list(store.root.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == [
        "data",
        "docs",
    ]


def test_a_collection_of_another_model_is_refused(library, engine, tmp_path):
    token = secrets.token_urlsafe(32)
    store = CollectionStore(tmp_path / "data", HOUR)
    store.save(token, library)
    other = HashingEmbedder(32)
    opened = store.load(token, lambda: Engine(Settings(), embedder=other))
    assert opened.engine().documents() == [], "not mixed into vectors of another model"
    assert "dimension 64" in " ".join(opened.problems), "and the page can say why"
    with pytest.raises(IndexFolderError, match="dimension 64"):
        copied(engine.index, lambda: Engine(Settings(), embedder=other))
