"""Reliability: a corpus of broken and hostile files, bounded cost, sessions kept apart, crash-safe saves."""

from __future__ import annotations

import json
import os
import random
import resource
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from factories import broken_xref_pdf, encrypted_pdf, make_pdf, zip_bomb

from qsearch import Engine, Settings
from qsearch.documents.read import IngestError, Limits, load
from qsearch.store.vectors import VectorIndex
from qsearch.web.render import files_html

ROOT = Path(__file__).resolve().parents[1]


def bad_input_corpus(folder: Path) -> dict[str, str]:
    """Write the corpus; returns file name -> expected outcome ("indexed" or a phrase of the reason)."""
    import docx

    files: dict[str, tuple[bytes | str, str]] = {
        "truncated.pdf": (make_pdf(["Some text on a page"] * 3)[:200], "truncated"),
        "broken-xref.pdf": (broken_xref_pdf(["Xref damaged but the text survives"]), "indexed"),
        "encrypted-no-user-password.pdf": (encrypted_pdf(""), "indexed"),
        "encrypted-with-password.pdf": (encrypted_pdf("hunter2"), "password-protected"),
        "image-only.pdf": (make_pdf([None, None, None]), "no text layer"),
        "zero-bytes.txt": (b"", "empty file"),
        "one-page.pdf": (make_pdf(["A single page about lighthouses"]), "indexed"),
        "many-pages.pdf": (
            make_pdf([f"Page {i} of the long report on tides" for i in range(400)]),
            "indexed",
        ),
        "not-a-zip.docx": ("plain text pretending to be Word", "not a zip"),
        "zip-bomb.docx": (zip_bomb(300), "zip bomb"),
        "scripts.html": (
            "<html><body><p>Visible harbour text</p><script>steal()</script>"
            "<style>p{}</style></body></html>",
            "indexed",
        ),
        "utf16.txt": ("Texte en UTF-16 : déjà vu".encode("utf-16"), "indexed"),
        "latin1.txt": (("Le phare est très ancien. " * 10).encode("latin-1"), "indexed"),
        "binary.txt": (os.urandom(4096), "binary"),
        "résumé 東京 ünïcode.md": ("# Résumé\n\nUnicode names are fine.", "indexed"),
        "tool.exe": (b"MZ\x90\x00", "unsupported file type"),
    }
    document = docx.Document()
    document.add_paragraph("A real Word document about sailing.")
    document.save(folder / "real.docx")
    expected = {"real.docx": "indexed"}
    for name, (data, outcome) in files.items():
        (folder / name).write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        expected[name] = outcome
    with open(
        folder / "single-line-50mb.txt", "w"
    ) as f:  # one 50 MB line: refused by its size in text
        f.write("x" * (50 * 2**20 - 1))
    expected["single-line-50mb.txt"] = "too much text"
    return expected


@pytest.fixture(scope="module")
def engine(minilm):
    return Engine(Settings(embed_model=minilm.model_name, device="cpu"), embedder=minilm)


def test_every_bad_file_gets_a_clear_reason_and_the_rest_index(engine, tmp_path):
    expected = bad_input_corpus(tmp_path)
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    report = engine.add_files(sorted(tmp_path.iterdir()))
    seconds = time.monotonic() - started
    peak_growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    outcomes = {Path(f.path).name: f for f in report.files}
    assert set(outcomes) == set(expected)
    for name, outcome in expected.items():
        f = outcomes[name]
        if outcome == "indexed":
            assert f.status == "indexed", (name, f.error)
        else:
            assert f.status == "error" and outcome in f.error, (name, f.error)
            assert "\n" not in f.error and len(f.error) < 300
    assert outcomes["many-pages.pdf"].pages == 400
    assert seconds < 120 and peak_growth_mb < 1500, (seconds, peak_growth_mb)
    print(
        f"\n{len(expected)} files: {len(report.indexed)} indexed, {len(report.errors)} refused "
        f"with a reason, in {seconds:.1f} s, peak memory +{peak_growth_mb:.0f} MB"
    )


def test_limits_on_pages_characters_and_seconds(tmp_path):
    long_pdf = tmp_path / "long.pdf"
    long_pdf.write_bytes(make_pdf([f"page {i}" for i in range(300)]))
    with pytest.raises(IngestError, match="too many pages: 300"):
        load(long_pdf, Limits(max_pages=100))
    with pytest.raises(IngestError, match="took too long"):
        load(long_pdf, Limits(max_seconds=0.01))
    with pytest.raises(IngestError, match="too much text"):
        load(long_pdf, Limits(max_chars=500))


def test_names_are_labels_never_paths(engine, tmp_path):
    source = tmp_path / "upload.txt"
    source.write_text("Escaping names must never write files anywhere.")
    before = set(Path(tmp_path.anchor).iterdir())
    report = engine.add_files([source], names=["../../../etc/evil.txt"])
    assert report.files[0].status == "indexed" and report.files[0].path == "../../../etc/evil.txt"
    assert set(Path(tmp_path.anchor).iterdir()) == before
    html = files_html([("<img src=x onerror=alert(1)>.txt", 1, None)])
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;.txt" in html


def test_collection_limits(minilm, tmp_path):
    small = Engine(
        Settings(embed_model=minilm.model_name, max_files=2, max_chunks=3), embedder=minilm
    )
    for i in range(4):
        (tmp_path / f"f{i}.txt").write_text(f"File number {i} has its own words: {'lorem ' * i}")
    report = small.add_files(sorted(tmp_path.iterdir()))
    assert [f.status for f in report.files] == ["indexed", "indexed", "error", "error"]
    assert "full (2 files at most)" in report.files[2].error


# --- sessions on the real app --------------------------------------------------------------


def test_concurrent_sessions_never_see_each_other(app_server, tmp_path):
    from gradio_client import Client, handle_file

    demo, url = app_server
    n = 6
    secrets = [f"codeword-{random.randint(10**5, 10**6)}-{i}" for i in range(n)]
    for i, secret in enumerate(secrets):
        (tmp_path / f"secret-{i}.txt").write_text(
            f"The private codeword of session {i} is {secret}."
        )

    def session(i: int) -> list[str]:
        c = Client(url, verbose=False)
        c.predict([handle_file(str(tmp_path / f"secret-{i}.txt"))], api_name="/add_documents")
        leaks = []
        for j, other in enumerate(secrets):
            hits = json.loads(c.predict(query=other, top_k=10, api_name="/search"))
            found = [h["source"] for h in hits if other in h["text"]]
            if j != i and found:
                leaks.append(f"session {i} saw {found}")
            if j == i:
                assert found == [f"secret-{i}.txt"]
        return leaks

    with ThreadPoolExecutor(n) as pool:
        leaks = [leak for result in pool.map(session, range(n)) for leak in result]
    assert leaks == [], leaks


def test_sessions_are_freed_when_they_end_or_idle(minilm):
    from qsearch.web.sessions import Sessions, TooManySessions

    made = []
    sessions = Sessions(
        lambda: made.append(Engine(embedder=minilm)) or made[-1], idle_seconds=0.2, max_sessions=3
    )
    a, first = sessions.open(None)
    assert sessions.open(a) == (a, first) and len(sessions) == 1
    assert sessions.find("a") is None and sessions.open("a")[0] != "a", "only issued tokens open"
    b = sessions.open(None)[0]
    with pytest.raises(TooManySessions, match="too many open sessions"):
        sessions.open(None)
    flag = sessions.stop_flag(b)
    sessions.end(b)
    assert len(sessions) == 2 and sessions.peek(b) is None and flag.is_set(), (
        "an ended session's run stops"
    )
    time.sleep(0.3)
    sessions.open(None)
    assert len(sessions) == 1, "idle sessions were swept"


def test_uploads_are_deleted_from_the_server(minilm_dir, tmp_path):
    from gradio_client import Client, handle_file

    import app

    demo = app.create_app(
        Settings(embed_model=str(minilm_dir), rerank_model="none/none", device="cpu"),
        upload_cache=(1, 1),
    )
    _, url, _ = app.launch(demo, prevent_thread_lock=True, quiet=True)
    try:
        marker = f"unique-upload-{random.randint(10**8, 10**9)}.txt"
        (tmp_path / marker).write_text("Temporary upload that the server must not keep.")
        report, *_ = Client(url, verbose=False).predict(
            [handle_file(str(tmp_path / marker))], api_name="/add_documents"
        )
        assert "1 indexed" in report
        temp_root = Path(os.environ["GRADIO_TEMP_DIR"])
        deadline = time.monotonic() + 20
        while list(temp_root.rglob(marker)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert list(temp_root.rglob(marker)) == [], "the upload cache deletes old uploads"
    finally:
        demo.close()


def test_oversized_uploads_are_refused_by_the_server(minilm_dir, tmp_path):
    from gradio_client import Client, handle_file

    import app

    demo = app.create_app(
        Settings(embed_model=str(minilm_dir), rerank_model="none/none", device="cpu", max_file_mb=1)
    )
    _, url, _ = app.launch(demo, prevent_thread_lock=True, quiet=True, max_file_mb=1)
    try:
        big = tmp_path / "big.txt"
        big.write_text("word " * 300_000)
        with pytest.raises(
            ValueError, match="exceeds the maximum file size of 1048576 bytes"
        ):  # the client checks
            Client(url, verbose=False).predict([handle_file(str(big))], api_name="/add_documents")
        import httpx  # and the server refuses it too, whoever sends it

        refused = httpx.post(
            f"{url}gradio_api/upload", files={"files": ("big.txt", big.read_bytes())}
        )
        assert (
            refused.status_code == 413 and "maximum allowed size of 1048576 bytes" in refused.text
        )
    finally:
        demo.close()


# --- crash safety ------------------------------------------------------------------------------

SAVER = textwrap.dedent("""
    import sys, numpy as np
    from qsearch.store.vectors import VectorIndex, DocInfo
    from qsearch.types import Chunk
    folder = sys.argv[1]
    try:
        index = VectorIndex.load(folder)
    except Exception:
        index = VectorIndex(64)
    rng = np.random.default_rng(len(index))
    while True:
        n = len(index.docs)
        chunks = [Chunk(f"d{n}", f"f{n}", "x" * 2000, 0, 2000) for _ in range(200)]
        vectors = rng.standard_normal((200, 64)).astype("float32")
        index.add(DocInfo(f"d{n}", f"f{n}", 200), chunks, vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
        index.save(folder)
        print(len(index.docs), flush=True)
""")


@pytest.mark.slow
def test_sigkill_during_saves_never_breaks_the_index(tmp_path):
    folder, kills = tmp_path / "ix", 0
    rng = random.Random(7)
    for _ in range(25):
        before = len(VectorIndex.load(folder).docs) if (folder / "CURRENT").exists() else 0
        proc = subprocess.Popen(
            [sys.executable, "-c", SAVER, str(folder)], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        time.sleep(rng.uniform(1.0, 2.5))
        proc.send_signal(signal.SIGKILL)
        printed = [int(line) for line in proc.communicate()[0].split()]
        kills += 1
        index = VectorIndex.load(folder)  # always loads: the old or the new complete version
        assert len(index) == 200 * len(index.docs)
        last = printed[-1] if printed else before
        assert len(index.docs) in (last, last + 1), (before, printed[-3:], len(index.docs))
    leftovers = [p.name for p in folder.iterdir() if p.name.startswith(".tmp-")]
    VectorIndex(64).save(folder)
    assert not [p for p in folder.iterdir() if p.name.startswith((".tmp-",))], (
        "the next save cleans up"
    )
    print(
        f"\n{kills} kills survived; {len(leftovers)} unfinished temporary folders left and then cleaned"
    )


@pytest.mark.slow
def test_sigkill_during_cli_indexing(minilm_dir, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(40):
        (docs / f"doc{i}.txt").write_text(
            f"Document {i}. " + "A sentence about harbours and tides. " * 200
        )
    folder, rng = tmp_path / "ix", random.Random(3)
    for _ in range(6):
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "qsearch",
                "index",
                "--index",
                str(folder),
                "--embed-model",
                str(minilm_dir),
                str(docs),
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(3, 12))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if (folder / "CURRENT").exists():
            index = VectorIndex.load(folder)
            assert len(index.docs) in (0, 40) and all(
                c.doc_id in index.docs for c in index.chunks.values()
            )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "qsearch",
            "index",
            "--index",
            str(folder),
            "--embed-model",
            str(minilm_dir),
            str(docs),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0 and len(VectorIndex.load(folder).docs) == 40


# --- load ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_load_twenty_sessions_searching_while_one_uploads(app_server, tmp_path):
    from gradio_client import Client, handle_file

    import app

    _, url = app_server
    sessions, searches = 20, 25
    queries = [
        "how do I treat a burn?",
        "grind size for espresso",
        "largest volcano",
        "python virtual environment",
    ]
    uploads = sorted(app.SAMPLES.iterdir())
    bulk = 15  # the test app allows 20 files per session
    for i in range(bulk):
        (tmp_path / f"bulk-{i}.txt").write_text(
            f"Bulk upload {i}. " + "Tide tables and harbour charts. " * 20
        )

    def searcher(n: int) -> list[float]:
        c = Client(url, verbose=False)
        c.predict([handle_file(str(p)) for p in uploads], api_name="/add_documents")
        latencies = []
        for k in range(searches):
            started = time.perf_counter()
            query = queries[(n + k) % len(queries)]
            hits = json.loads(c.predict(query=query, top_k=5, api_name="/search"))
            latencies.append(time.perf_counter() - started)
            assert hits, "every search finds something"
        return latencies

    def uploader() -> int:
        c = Client(url, verbose=False)
        total = 0
        for i in range(0, bulk, 5):
            report, *_ = c.predict(
                [handle_file(str(tmp_path / f"bulk-{j}.txt")) for j in range(i, i + 5)],
                api_name="/add_documents",
            )
            total += int(report.split(" indexed")[0].rsplit(">", 1)[-1])
        _, hits = c.predict(query="harbour charts", top_k=50, api_name="/search")
        assert len({h["source"] for h in hits}) == bulk, "no upload was lost"
        return total

    started = time.perf_counter()
    with ThreadPoolExecutor(sessions + 1) as pool:
        upload_job = pool.submit(uploader)
        latencies = sorted(x for r in pool.map(searcher, range(sessions)) for x in r)
        assert upload_job.result() == bulk
    elapsed = time.perf_counter() - started
    p50, p95 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.95)]
    print(
        f"\n{sessions} sessions x {searches} searches + {bulk} uploads in {elapsed:.1f} s: "
        f"p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, 0 errors"
    )
    assert len(latencies) == sessions * searches


@pytest.mark.slow
def test_a_full_queue_says_busy_at_once(minilm_dir):
    from gradio_client import Client, handle_file

    import app

    demo = app.create_app(
        Settings(embed_model=str(minilm_dir), rerank_model="none/none", device="cpu")
    )
    _, url, _ = app.launch(demo, prevent_thread_lock=True, quiet=True, queue_size=2)
    try:

        def one(_: int) -> tuple[str, float]:
            c = Client(url, verbose=False)
            started = time.perf_counter()
            try:  # either call may be refused: the queue holds 2
                c.predict(
                    [handle_file(str(app.SAMPLES / "first-aid-basics.txt"))],
                    api_name="/add_documents",
                )
                started = time.perf_counter()
                _, hits = c.predict(query="how do I treat a burn?", top_k=3, api_name="/search")
                return (
                    "ok"
                    if hits and hits[0]["source"] == "first-aid-basics.txt"
                    else f"wrong: {hits}"
                ), 0.0
            except Exception as e:  # noqa: BLE001 - the kind of refusal is what we look at
                return str(e), time.perf_counter() - started

        with ThreadPoolExecutor(24) as pool:
            outcomes = list(pool.map(one, range(24)))
        busy = [seconds for o, seconds in outcomes if "queue is full" in o.lower()]
        assert busy and all(o == "ok" or "queue is full" in o.lower() for o, _ in outcomes), (
            outcomes
        )
        assert max(busy) < 5, f"a full queue answers at once, not after waiting: {max(busy):.1f} s"
    finally:
        demo.close()


def test_share_without_a_route_to_the_share_server_keeps_serving_locally(
    minilm_dir, capsys, monkeypatch
):
    import httpx

    import app

    monkeypatch.setenv(
        "HTTPS_PROXY", "http://127.0.0.1:9"
    )  # no outbound connection, whatever this machine has
    demo = app.create_app(
        Settings(embed_model=str(minilm_dir), rerank_model="none/none", device="cpu")
    )
    started = time.perf_counter()
    _, url, share_url = app.launch(demo, prevent_thread_lock=True, quiet=True, share=True)
    try:
        assert share_url is None and time.perf_counter() - started < 60
        assert httpx.get(url, timeout=10).status_code == 200
        lines = [
            line
            for line in capsys.readouterr().out.splitlines()
            if line.startswith("No public link")
        ]
        assert lines == [
            f"No public link: the share server can't be reached from here (no outbound connection); "
            f"the app is serving locally at {url}"
        ]
    finally:
        demo.close()
