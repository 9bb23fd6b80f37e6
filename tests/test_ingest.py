"""Ingestion: every supported type, every kind of bad file, each with a one-line reason."""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

import psutil
import pytest
from factories import encrypted_pdf, make_pdf

from qsearch.config import Settings
from qsearch.documents.read import IngestError, Limits, find_files, load


def write(folder: Path, name: str, data: bytes | str) -> Path:
    path = folder / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def reason(path: Path, limits: Limits = Limits()) -> str:
    with pytest.raises(IngestError) as info:
        load(path, limits)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    return info.value.reason


def test_pdf_pages_are_kept(tmp_path):
    doc = load(
        write(tmp_path, "three.pdf", make_pdf(["First page text", "Second page", "Third and last"]))
    )
    assert doc.kind == "pdf" and doc.n_pages == 3
    assert doc.text == "First page text\n\nSecond page\n\nThird and last"
    assert [doc.page_at(doc.text.index(w)) for w in ("First", "Second", "Third")] == [1, 2, 3]
    assert len(doc.doc_id) == 64


def test_pdf_problems_have_clear_reasons(tmp_path):
    assert load(write(tmp_path, "open.pdf", encrypted_pdf(""))).text == "Secret launch codes"
    assert "password-protected" in reason(write(tmp_path, "locked.pdf", encrypted_pdf("hunter2")))
    assert "no text layer" in reason(write(tmp_path, "scan.pdf", make_pdf([None, None])))
    assert "truncated" in reason(write(tmp_path, "cut.pdf", make_pdf(["Some text"] * 3)[:150]))
    assert "not a PDF" in reason(write(tmp_path, "fake.pdf", b"hello, I am text"))
    assert "too many pages" in reason(
        write(tmp_path, "long.pdf", make_pdf(["p"] * 5)), Limits(max_pages=4)
    )


def test_text_encodings(tmp_path):
    text = "Café déjà vu — naïve façade"
    assert load(write(tmp_path, "u8.txt", text.encode("utf-8"))).text == text
    assert load(write(tmp_path, "bom.txt", b"\xef\xbb\xbf" + text.encode("utf-8"))).text == text
    assert load(write(tmp_path, "u16.md", text.encode("utf-16"))).text == text
    assert load(write(tmp_path, "u16be.txt", b"\xfe\xff" + text.encode("utf-16-be"))).text == text
    latin = "Le café est très bon. " * 20
    assert load(write(tmp_path, "latin1.txt", latin.encode("latin-1"))).text == latin.strip()
    assert "binary" in reason(write(tmp_path, "photo.txt", bytes(range(256)) * 50))
    assert "empty" in reason(write(tmp_path, "empty.txt", b""))
    assert "no text" in reason(write(tmp_path, "blank.md", "   \n\n  \t "))


def test_html_keeps_visible_text_only(tmp_path):
    html = """<html><head><title>Guide</title><style>body{color:red}</style>
    <script>alert('x')</script></head><body><h1>Install</h1><p>Run <b>make</b> run.</p>
    <noscript>enable js</noscript><ul><li>one</li><li>two</li></ul>
    <script>var secret=1;</script></body></html>"""
    text = load(write(tmp_path, "page.html", html)).text
    assert "# Install" in text and "Run make run." in text and "one\n\ntwo" in text
    assert text.startswith("# Guide")
    for hidden in ("alert", "color:red", "secret", "enable js"):
        assert hidden not in text


def test_docx(tmp_path):
    import docx

    document = docx.Document()
    document.add_heading("Quarterly report", level=1)
    document.add_paragraph("Revenue grew by twelve percent.")
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text, table.rows[0].cells[1].text = "Region", "North"
    path = tmp_path / "report.docx"
    document.save(path)
    assert (
        load(path).text == "# Quarterly report\n\nRevenue grew by twelve percent.\n\nRegion | North"
    )
    assert "not a zip" in reason(write(tmp_path, "fake.docx", "just text"))


def test_zip_bomb_disguised_as_docx(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("word/document.xml", b"\0" * (3 * 2**20))
    path = write(tmp_path, "bomb.docx", buffer.getvalue())
    assert path.stat().st_size < 2**16
    assert "zip bomb" in reason(path, Limits(max_unzipped_bytes=2**20))


def test_limits_and_unsupported_types(tmp_path):
    assert "too large" in reason(write(tmp_path, "big.txt", "a" * 2000), Limits(max_bytes=1000))
    assert "too much text" in reason(
        write(tmp_path, "long.txt", "word " * 500), Limits(max_chars=1000)
    )
    assert "unsupported file type '.exe'" in reason(write(tmp_path, "tool.exe", b"MZ"))
    assert "no extension" in reason(write(tmp_path, "README", "text"))
    assert "can't read" in reason(tmp_path / "missing.txt")


def test_one_bad_file_never_stops_the_batch(tmp_path, minilm_dir):
    good = write(tmp_path, "a.txt", "fine")
    bad = write(tmp_path, "b.pdf", b"%PDF-1.4 broken")
    also_good = write(tmp_path, "c.md", "# also fine")
    from qsearch import Engine

    engine = Engine(Settings(embed_model=str(minilm_dir), device="cpu"))
    parsed, reports = engine.read_files([good, bad, also_good])
    assert [r.status for r in reports] == ["indexed", "error", "indexed"] and len(parsed) == 2
    assert "not a readable PDF" in reports[1].error


def test_find_files_walks_folders(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / ".hidden").mkdir()
    for name in ("a.txt", "sub/b.pdf", "sub/c.exe", ".hidden/d.txt"):
        write(tmp_path, name, "x")
    assert [p.relative_to(tmp_path).as_posix() for p in find_files([tmp_path])] == [
        "a.txt",
        "sub/b.pdf",
    ]


def test_every_real_world_pdf_gets_text_or_a_reason(shared_data):
    pdfs = sorted((shared_data / "pdfs").rglob("*.pdf"))
    assert len(pdfs) >= 25
    outcomes = {}
    for path in pdfs:
        try:
            outcomes[path.name] = load(path).n_pages
        except IngestError as e:
            outcomes[path.name] = e.reason
    assert "password-protected" in outcomes["libreoffice-writer-password.pdf"]
    assert outcomes["pdflatex-4-pages.pdf"] == 4
    assert sum(isinstance(v, int) for v in outcomes.values()) >= 20


def test_a_reader_stuck_inside_a_page_is_killed_at_the_deadline(tmp_path, monkeypatch, minilm):
    from qsearch import Engine
    from qsearch.documents import pool

    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))  # where stuck_loader is
    readers = pool.Readers(size=1, modules=["stuck_loader"])
    monkeypatch.setattr(pool, "_READERS", readers)
    engine = Engine(
        Settings(embed_model=minilm.model_name, max_seconds_per_file=0.5), embedder=minilm
    )
    first = write(tmp_path, "first.txt", "A file read before the stuck one.")
    stuck = write(tmp_path, "stuck.txt", f"STUCK {tmp_path / 'grandchild.pid'}")
    last = write(tmp_path, "last.txt", "A file read after the stuck one, by a new reader.")
    try:
        engine.read_files([first])  # the reader starts (seconds) outside the timed part
        (reader_pid,) = readers.pids()
        started = time.monotonic()
        parsed, reports = engine.read_files([stuck, last])
        seconds = time.monotonic() - started
        assert [r.status for r in reports] == ["error", "indexed"], reports
        assert reports[0].error == (
            "took too long: still reading after 0.5 s, inside one page or part; "
            "the reader was stopped"
        )
        assert seconds < 0.5 + pool.GRACE_SECONDS + 15, "killed at the deadline (+ a new reader)"
        grandchild = int((tmp_path / "grandchild.pid").read_text())
        for pid in (reader_pid, grandchild):  # the reader and what it started are gone
            assert _gone(pid), pid
        assert reader_pid not in readers.pids()
    finally:
        readers.close()


def _gone(pid: int, seconds: float = 5.0) -> bool:
    """The process has exited (a zombie not yet reaped by init counts as exited)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False
