"""What the page keeps: collections in --data-dir across a server restart, the collection file a
user downloads and opens again, and the low-confidence log, through the page's own handlers on a
real context (the bundled MiniLM; no reranker)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from qsearch import Settings
from qsearch.config import ServerSettings
from qsearch.web.handlers import SAMPLES, Handlers
from qsearch.web.limits import ServerLimits
from qsearch.web.server import Context

PAGE = dict(top_k=3, rerank=False, instruction="", mode="hybrid", rerank_candidates=10)
QUERY = "how do I treat a burn?"


def no_progress(*_: object, **__: object) -> None:
    return None


def handlers(minilm_dir: Path, data: Path) -> Handlers:
    settings = Settings(
        embed_model=str(minilm_dir),
        rerank_model="none/none",
        device="cpu",
        dtype="float32",
        data_dir=str(data / "collections"),
        low_confidence_log=str(data / "weak.jsonl"),
    )
    return Handlers(Context.create(settings))


@pytest.fixture(scope="module")
def first(minilm_dir, tmp_path_factory):  # noqa: ANN201 - (handlers, data folder, token)
    data = tmp_path_factory.mktemp("keeping")
    on = handlers(minilm_dir, data)
    *_, token = on.add_files([str(SAMPLES / "first-aid-basics.txt")], None, no_progress)
    return on, data, token


def sources(hits: list[dict]) -> list[str]:
    return [h["source"] for h in hits]


def test_a_restarted_server_finds_the_collection_by_its_token(first, minilm_dir):
    on, data, token = first
    _, before = on.search_page(QUERY, token=token, **PAGE)
    restarted = handlers(minilm_dir, data)  # a new process: nothing in memory
    kept, files, _, _ = restarted.restore(token)
    assert "first-aid-basics.txt" in files and kept == token, "the browser keeps its token"
    _, after = restarted.search_page(QUERY, token=token, **PAGE)
    assert sources(after) == sources(before) and after[0]["text"] == before[0]["text"]
    new, empty, _, _ = restarted.restore("y" * 43)  # a token nobody was given opens nothing
    assert "first-aid-basics.txt" not in empty and new != "y" * 43, "it gets a token of its own"


def test_a_downloaded_collection_opens_in_a_fresh_session_with_the_same_hits(first, tmp_path):
    on, _, token = first
    _, before = on.search_page(QUERY, token=token, **PAGE)
    path = on.download_collection(token)
    report, files, _, other = on.open_collection(path, None)
    assert "Opened" in report and other != token and "first-aid-basics.txt" in files
    _, after = on.search_page(QUERY, token=other, **PAGE)
    assert sources(after) == sources(before)
    assert [round(h["meaning"], 5) for h in after] == [round(h["meaning"], 5) for h in before]


def test_a_tampered_collection_file_is_refused_and_changes_nothing(first, tmp_path):
    on, _, token = first
    path = Path(on.download_collection(token))
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tampered, "w") as out:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "manifest.json":
                manifest = json.loads(data)
                manifest["embed_model"] = "someone/another-model"
                data = json.dumps(manifest).encode()
            out.writestr(item, data)
    report, files, _, same = on.open_collection(str(tampered), token)
    assert report.count("Not opened") == 1 and "another-model" in report
    assert same == token and "first-aid-basics.txt" in files, "the collection is unchanged"


def test_a_weak_search_is_logged_and_a_good_one_is_not(first):
    on, data, token = first
    log = data / "weak.jsonl"
    lines = log.read_text().splitlines() if log.exists() else []
    on.search_page(QUERY, token=token, **PAGE)
    assert (log.read_text().splitlines() if log.exists() else []) == lines
    on.search_page("lattice quantum chromodynamics gluon propagator", token=token, **PAGE)
    logged = log.read_text().splitlines()
    assert len(logged) == len(lines) + 1
    entry = json.loads(logged[-1])
    assert entry["query"].startswith("lattice") and "burn" not in logged[-1].lower()


def test_every_api_client_of_a_private_server_opens_the_owners_collections(minilm_dir, tmp_path):
    """API and MCP clients have no browser storage to keep a token in: on a private server they
    all open the owner's library (--api-collections auto), so a new connection finds what another
    made, and so does a client after a restart; the owner's token is readable by its owner only."""
    from gradio_client import Client, handle_file

    import app as qsearch_app

    settings = Settings(
        embed_model=str(minilm_dir), rerank_model="none/none", device="cpu", data_dir=str(tmp_path)
    )
    assert ServerLimits.resolve(ServerSettings(api_collections="auto")).api_owner
    for public in (dict(share=True), dict(host="0.0.0.0"), dict(limits="on")):
        assert not ServerLimits.resolve(ServerSettings(api_collections="auto", **public)).api_owner

    def names(url: str) -> list[str]:
        listed = Client(url, verbose=False).predict(api_name="/list_collections")
        return [c["name"] for c in json.loads(listed)]

    def served() -> tuple[object, str]:
        demo = qsearch_app.create_app(settings, server=ServerSettings(api_collections="auto"))
        _, url, _ = qsearch_app.launch(demo, prevent_thread_lock=True, quiet=True)
        return demo, url

    demo, url = served()
    try:
        script = Client(url, verbose=False)
        script.predict("Field notes", api_name="/create_collection")
        report, *_ = script.predict(
            [handle_file(str(SAMPLES / "first-aid-basics.txt"))], "", api_name="/add_documents"
        )
        assert "1 indexed" in report, report
        assert names(url) == ["My documents", "Field notes"], "another connection sees them"
    finally:
        demo.close()
    assert (tmp_path / "owner-token").stat().st_mode & 0o077 == 0
    demo, url = served()  # restarted: nothing in memory
    try:
        assert names(url) == ["My documents", "Field notes"]
        hits = Client(url, verbose=False).predict(
            QUERY, top_k=3, collections="Field notes", api_name="/search"
        )
        assert json.loads(hits)[0]["source"] == "first-aid-basics.txt"
    finally:
        demo.close()


# --- where collections are kept by default -------------------------------------------------------


def test_collections_are_kept_by_default_and_tests_keep_them_in_a_temporary_folder(monkeypatch):
    """No setting: the user data folder (platformdirs), which conftest.py points at a temporary
    folder, so no test writes to the real one; and the page says where and for how long."""
    from conftest import DATA_HOME

    from qsearch.web.keeping import data_place

    place = data_place(Settings(), env={})
    assert place.kind == "local" and place.folder == Path(DATA_HOME) / "qsearch"
    said = place.describe(24)
    assert f"kept on this computer in {place.folder}" in said and "24 hours" in said
    assert str(place.folder) not in place.describe(24, show_path=False), "a public page: no path"


def test_a_space_keeps_collections_in_its_storage_else_in_a_temporary_folder(tmp_path, monkeypatch):
    from qsearch.web import keeping

    storage = tmp_path / "data"
    monkeypatch.setattr(keeping, "SPACE_STORAGE", storage)
    without = keeping.data_place(Settings(), env={"SPACE_ID": "user/app"})
    assert without.kind == "temporary" and "no persistent storage" in without.note
    assert "temporary folder" in without.describe(24) and "may be gone" in without.describe(24)
    storage.mkdir()
    place = keeping.data_place(Settings(), env={"SPACE_ID": "user/app"})
    assert place == keeping.DataPlace(storage, "space")
    assert "on this Space's persistent storage" in place.describe(24)


@pytest.mark.parametrize("value", ["off", "OFF", " none ", "memory"])
def test_keeping_can_be_turned_off_or_moved(value, tmp_path):
    from qsearch.web.keeping import Keeper, data_place

    assert data_place(Settings(data_dir=value), env={}).folder is None
    assert Keeper(Settings(data_dir=value)).store is None
    moved = data_place(Settings(data_dir=str(tmp_path / "elsewhere")), env={"SPACE_ID": "x"})
    assert moved.kind == "set" and moved.folder == tmp_path / "elsewhere"
