"""The collection file (store/portable.py): a round trip answers alike; tampering is refused."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import zipfile

import numpy as np
import pytest
from conftest import unit_vectors
from factories import make_pdf
from fakes import HashingEmbedder

from qsearch import Engine, Settings
from qsearch.store.portable import CollectionFileError, read_collection, write_collection
from qsearch.store.vectors import DocInfo, VectorIndex
from qsearch.types import Chunk

DIM = 64
TEXTS = {
    "rivers.txt": "The Rhine rises in the Swiss Alps and flows north to the North Sea.",
    "bread.md": "Knead the dough, let it rise for an hour, and bake the bread at 220 degrees.",
    "plants.txt": "Plants turn sunlight, water and carbon dioxide into sugar and oxygen.",
}


@pytest.fixture
def embedder() -> HashingEmbedder:
    return HashingEmbedder(DIM)


@pytest.fixture
def engine(embedder, tmp_path) -> Engine:
    engine = Engine(Settings(embed_model=embedder.model_name), embedder=embedder)
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, text in TEXTS.items():
        (folder / name).write_text(text)
    (folder / "alps.pdf").write_bytes(make_pdf(["Glaciers carve valleys in the Alps", "Snow"]))
    report = engine.add_files(sorted(folder.iterdir()))
    assert not report.errors and len(engine.documents()) == 4
    return engine


@pytest.fixture
def saved(engine, tmp_path):
    return write_collection(engine.index, tmp_path / "collection.zip")


def read(path, **limits):
    options = {"embed_model": HashingEmbedder.model_name, "dim": DIM}
    return read_collection(path, **{**options, "max_files": 20, "max_chunks": 1000, **limits})


def test_round_trip_answers_the_same_query_with_the_same_hits(engine, embedder, saved):
    index = read(saved)
    opened = Engine(Settings(embed_model=embedder.model_name), embedder=embedder, index=index)
    for query in ("where does the Rhine flow?", "baking bread", "glaciers in the Alps"):
        for mode in ("dense", "hybrid"):
            before, after = (
                engine.search(query, k=4, mode=mode),
                opened.search(query, k=4, mode=mode),
            )
            assert [h.to_dict() for h in after] == [h.to_dict() for h in before]
    assert {d.doc_id: vars(d) for d in opened.documents()} == {
        d.doc_id: vars(d) for d in engine.documents()
    }
    assert opened.index.originals == engine.index.originals and len(index.originals) == 1
    best = opened.search("glaciers carve valleys", k=1, mode="lexical")[0]
    assert best.source.endswith("alps.pdf") and best.page == 1


def test_the_model_name_is_compared_as_the_store_compares_it(saved):
    assert len(read(saved, embed_model="/models/hashing-embedder/")) == len(read(saved))


def _rewrite(path, out, changes: dict) -> None:
    """Copy the zip at `path` to `out`, with members replaced, added, or dropped (None)."""
    with zipfile.ZipFile(path) as z:
        members = {name: z.read(name) for name in z.namelist()}
    members.update(changes)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            if data is not None:
                z.writestr(name, data)


def _member(path, name):
    with zipfile.ZipFile(path) as z:
        return z.read(name)


def _npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def _header_only(shape) -> bytes:
    buffer = io.BytesIO()
    header = {"descr": "<f4", "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()


def _json_edit(path, name, edit) -> bytes:
    value = json.loads(_member(path, name))
    edit(value)
    return json.dumps(value).encode()


def _vectors(path) -> np.ndarray:
    return np.load(io.BytesIO(_member(path, "vectors.npy")))


def _set(key, value):
    return lambda d: d.__setitem__(key, value)


def _first(key, value):
    return lambda rows: rows[0].__setitem__(key, value)


def _nan(v):
    v[0, 0] = np.nan
    return v


TAMPERED = {  # name: (how the file is changed, what the one-line error must say)
    "wrong dimension": (
        lambda p: {"vectors.npy": _npy(_vectors(p)[:, :32].copy())},
        "vectors.npy has shape",
    ),
    "a pickle inside the .npy": (
        lambda p: {"vectors.npy": _npy(np.array([{"x": 1}] * len(_vectors(p)), dtype=object))},
        "vectors.npy must hold float32 numbers, got object",
    ),
    "a raw pickle as the .npy": (
        lambda p: {"vectors.npy": pickle.dumps(_vectors(p))},
        "vectors.npy is not a .npy array",
    ),
    "another model": (
        lambda p: {"manifest.json": _json_edit(p, "manifest.json", _set("embed_model", "o/m"))},
        "embedded with 'o/m' at dimension 64, but this qsearch embeds with 'fake/hashing-",
    ),
    "another dimension in the manifest": (
        lambda p: {"manifest.json": _json_edit(p, "manifest.json", _set("dim", 32))},
        "--embed-model fake/hashing-embedder --dim 32",
    ),
    "a header claiming a billion rows": (
        lambda p: {"vectors.npy": _header_only((10**9, DIM)) + b"\0" * 4096},
        "vectors.npy has shape (1000000000, 64)",
    ),
    "Fortran order": (
        lambda p: {"vectors.npy": _npy(np.asfortranarray(_vectors(p)))},
        "in C order",
    ),
    "deeply nested JSON": (
        lambda p: {"chunks.json": b"[" * 100_000 + b"]" * 100_000},
        "chunks.json is not valid JSON",
    ),
    "missing member": (lambda p: {"chunks.json": None}, "has no chunks.json"),
    "non-finite values": (
        lambda p: {"vectors.npy": _npy(_nan(_vectors(p)))},
        "non-finite values",
    ),
    "rows not unit length": (
        lambda p: {"vectors.npy": _npy(_vectors(p) * 2)},
        "has length 2.0000, not 1",
    ),
    "float64 vectors": (
        lambda p: {"vectors.npy": _npy(_vectors(p).astype(np.float64))},
        "must hold float32 numbers, got float64",
    ),
    "an unexpected member": (lambda p: {"evil.pkl": b"x"}, "unexpected member 'evil.pkl'"),
    "a string offset": (
        lambda p: {"chunks.json": _json_edit(p, "chunks.json", _first("start", "0"))},
        "chunks.json[0]: start must be int, got '0'",
    ),
    "a bool count": (
        lambda p: {"manifest.json": _json_edit(p, "manifest.json", _set("chunks", True))},
        "chunks must be a count",
    ),
    "offsets that don't fit the text": (
        lambda p: {"chunks.json": _json_edit(p, "chunks.json", _first("end", 10**6))},
        "chunks.json[0]: offsets",
    ),
    "an extra chunk field": (
        lambda p: {"chunks.json": _json_edit(p, "chunks.json", _first("eval", "os.system"))},
        "chunks.json[0] must have the fields",
    ),
    "a path as doc_id": (
        lambda p: {"documents.json": _json_edit(p, "documents.json", _first("doc_id", "../x"))},
        "doc_id must be 64 hex digits",
    ),
    "a zip bomb": (
        lambda p: {"chunks.json": b" " * 20_000_000},
        "chunks.json unpacks to 20,000,000",
    ),
    "an original that is no PDF": (
        lambda p: {f"originals/{_doc_id(p, 'pdf')}": b"MZ\x90\x00"},
        "is not a PDF",
    ),
    "an original for a text file": (
        lambda p: {f"originals/{_doc_id(p, 'text')}": make_pdf(["x"])},
        "is not the original of a PDF listed",
    ),
    "chunks moved to another document": (
        lambda p: {"documents.json": _json_edit(p, "documents.json", _swap_counts)},
        "belongs to",
    ),
}


def _doc_id(path, kind: str) -> str:
    return next(
        d["doc_id"] for d in json.loads(_member(path, "documents.json")) if d["kind"] == kind
    )


def _swap_counts(docs):
    docs[0]["chunks"], docs[-1]["chunks"] = docs[0]["chunks"] + 1, docs[-1]["chunks"] - 1


@pytest.mark.parametrize("case", TAMPERED)
def test_tampered_files_are_refused_with_one_line_and_change_nothing(case, saved, tmp_path):
    make, message = TAMPERED[case]
    bad = tmp_path / "bad.zip"
    _rewrite(saved, bad, make(saved))
    listing = sorted(tmp_path.rglob("*"))
    with pytest.raises(CollectionFileError) as refused:
        read(bad)
    assert message in str(refused.value) and "\n" not in str(refused.value)
    assert sorted(tmp_path.rglob("*")) == listing
    assert len(read(saved)) > 0  # the good file still opens


def test_limits_and_truncation(saved, tmp_path):
    with pytest.raises(CollectionFileError, match="over this server's limit of 3 chunks"):
        read(saved, max_chunks=3)
    with pytest.raises(
        CollectionFileError, match="holds 4 documents, over .* limit of 2 documents"
    ):
        read(saved, max_files=2)
    data = saved.read_bytes()
    for cut in (len(data) // 2, len(data) - 30):
        (tmp_path / "cut.zip").write_bytes(data[:cut])
        with pytest.raises(CollectionFileError, match="not a readable collection file"):
            read(tmp_path / "cut.zip")


def test_a_damaged_member_is_refused(saved, tmp_path):
    """A byte flipped inside a stored member: the zip's CRC check refuses it."""
    data = bytearray(saved.read_bytes())
    at = data.find(b"\x93NUMPY") + 200
    data[at] ^= 0xFF
    (tmp_path / "flipped.zip").write_bytes(bytes(data))
    with pytest.raises(CollectionFileError, match="not a readable collection file"):
        read(tmp_path / "flipped.zip")


def test_the_written_file_is_data_only(saved, engine):
    with zipfile.ZipFile(saved) as z:
        names = sorted(z.namelist())
        manifest = json.loads(z.read("manifest.json"))
    assert names[:4] == [
        "chunks.json",
        "documents.json",
        "manifest.json",
        "originals/" + names[3][10:],
    ]
    assert names[4:] == ["vectors.npy"]
    assert manifest["embed_model"] == "fake/hashing-embedder" and manifest["dim"] == DIM
    assert (manifest["documents"], manifest["chunks"]) == (4, len(engine.index))


def test_each_chunk_keeps_its_own_vector_whatever_the_document_order(tmp_path):
    """The writer groups chunks by document in the documents' order, not by storage order."""
    index = VectorIndex(8, meta={"embed_model": "m"})
    vectors = unit_vectors(5, 8)
    for name, rows in (("a", [0, 1, 2]), ("b", [3, 4])):
        doc_id = hashlib.sha256(name.encode()).hexdigest()
        text = [f"{name} passage {r}" for r in rows]
        chunks = [Chunk(doc_id, name, t, 0, len(t)) for t in text]
        index.add(DocInfo(doc_id, name, len(rows)), chunks, vectors[rows])
    index.docs = dict(reversed(index.docs.items()))  # documents listed b, a
    path = write_collection(index, tmp_path / "c.zip")
    opened = read_collection(path, embed_model="m", dim=8, max_files=2, max_chunks=5)
    assert [d.source for d in opened.docs.values()] == ["b", "a"]
    got = dict(zip((c.text for c in opened.chunks.values()), opened.vectors()))
    want = dict(zip((c.text for c in index.chunks.values()), vectors))
    assert got.keys() == want.keys()
    assert all(np.array_equal(got[t], want[t]) for t in want)


def test_a_chunks_where_survives_and_format_1_files_still_open(tmp_path):
    """Format 2 carries each chunk's `where` (a slide, sheet rows); a format-1 file, written
    before it existed, opens with none; a `where` of the wrong type or length is refused."""
    index = VectorIndex(8, meta={"embed_model": "m"})
    doc_id = hashlib.sha256(b"deck").hexdigest()
    texts, labels = ["# Slide 1: Plan", "# Slide 2: Costs"], ['slide 1 "Plan"', 'slide 2 "Costs"']
    chunks = [Chunk(doc_id, "deck.pptx", t, 0, len(t), where=w) for t, w in zip(texts, labels)]
    index.add(DocInfo(doc_id, "deck.pptx", 2, kind="slides"), chunks, unit_vectors(2, 8))
    path = write_collection(index, tmp_path / "c.zip")
    options = dict(embed_model="m", dim=8, max_files=2, max_chunks=5)
    assert json.loads(_member(path, "manifest.json"))["format_version"] == 2
    assert [c.where for c in read_collection(path, **options).chunks.values()] == labels

    def as_format_1(rows):
        for row in rows:
            del row["where"]

    old = tmp_path / "old.zip"
    _rewrite(
        path,
        old,
        {
            "manifest.json": _json_edit(path, "manifest.json", _set("format_version", 1)),
            "chunks.json": _json_edit(path, "chunks.json", as_format_1),
        },
    )
    assert [c.where for c in read_collection(old, **options).chunks.values()] == [None, None]
    for bad, reason in ((7, "where must be str or null"), ("x" * 501, "1 to 500 characters")):
        tampered = tmp_path / "bad.zip"
        _rewrite(
            path, tampered, {"chunks.json": _json_edit(path, "chunks.json", _first("where", bad))}
        )
        with pytest.raises(CollectionFileError, match=reason):
            read_collection(tampered, **options)
