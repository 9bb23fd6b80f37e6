"""What the page keeps: collections in --data-dir across a server restart, the collection file a
user downloads and opens again, and the low-confidence log, through the page's own handlers on a
real context (the bundled MiniLM; no reranker)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from qsearch import Settings
from qsearch.web.handlers import SAMPLES, Handlers
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
