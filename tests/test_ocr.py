"""OCR: scanned PDF pages and images become text (Tesseract), known answers drawn with Pillow."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys

import pytest
from factories import make_pdf

from qsearch.documents import ocr
from qsearch.documents.read import IngestError, Limits, ReadOptions, load

# Tests that need the real Tesseract; the test of its absence runs everywhere (PATH without it)
needs_tesseract = pytest.mark.skipif(
    not ocr.available(), reason="tesseract-ocr is not installed (make test installs it)"
)
SENTENCES = [
    "The harbour master logs every ship at dawn.",
    "Invoice 4471 was paid in March by cheque.",
    "Keep the fire door closed at all times.",
]


def scan(lines: list[str], size: tuple[int, int] = (1700, 2200)):  # noqa: ANN201 - a PIL image, a letter page
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("L", size, 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=44)
    for i, line in enumerate(lines):
        draw.text((150, 200 + 90 * i), line, fill=0, font=font)
    return image


def image_pdf(*images) -> bytes:  # noqa: ANN002
    out = io.BytesIO()
    images[0].save(out, format="PDF", resolution=200, save_all=True, append_images=list(images[1:]))
    return out.getvalue()


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def found_share(expected: list[str], text: str) -> float:
    wanted = [w for s in expected for w in re.findall(r"[a-z0-9]+", s.lower())]
    return sum(w in words(text) for w in wanted) / len(wanted)


@needs_tesseract
def test_a_scanned_pdf_is_read_by_ocr(tmp_path):
    (tmp_path / "scan.pdf").write_bytes(image_pdf(scan(SENTENCES)))
    doc = load(tmp_path / "scan.pdf")
    assert doc.ocr_pages == (1,) and doc.kind == "pdf"
    assert found_share(SENTENCES, doc.text) >= 0.9, doc.text


@needs_tesseract
def test_a_mixed_pdf_gives_both_pages_and_marks_only_the_scan(tmp_path, tok):
    from pypdf import PdfReader, PdfWriter

    from qsearch.documents.chunk import chunk_document

    writer = PdfWriter()
    for data in (
        make_pdf(["A typed page about tide tables and harbour charts."]),
        image_pdf(scan(SENTENCES)),
    ):
        writer.append(PdfReader(io.BytesIO(data)))
    out = io.BytesIO()
    writer.write(out)
    (tmp_path / "mixed.pdf").write_bytes(out.getvalue())
    doc = load(tmp_path / "mixed.pdf")
    assert doc.n_pages == 2 and doc.ocr_pages == (2,)
    assert "tide tables" in doc.text and found_share(SENTENCES, doc.text) >= 0.9
    chunks = chunk_document(doc, tok, max_tokens=12, overlap=0)
    assert {c.page for c in chunks if c.ocr} == {2} and {c.page for c in chunks if not c.ocr} == {1}


@needs_tesseract
def test_images_and_multi_page_tiffs(tmp_path):
    scan(SENTENCES[:1]).save(tmp_path / "note.png")
    scan(SENTENCES[1:2]).convert("RGB").save(tmp_path / "note.jpg", quality=90)
    scan(SENTENCES[2:]).save(tmp_path / "note.webp")
    pages = [scan(SENTENCES[:1]), scan(SENTENCES[2:])]
    pages[0].save(tmp_path / "pages.tiff", save_all=True, append_images=pages[1:])
    for name, expected in (
        ("note.png", SENTENCES[:1]),
        ("note.jpg", SENTENCES[1:2]),
        ("note.webp", SENTENCES[2:]),
    ):
        doc = load(tmp_path / name)
        assert doc.kind == "image" and found_share(expected, doc.text) >= 0.9, (name, doc.text)
    tiff = load(tmp_path / "pages.tiff")
    assert tiff.n_pages == 2 and tiff.ocr_pages == (1, 2) and "harbour" in tiff.text.lower()
    with pytest.raises(
        IngestError, match="image too large: page 1 has 4 megapixels, the limit is 1"
    ):
        load(tmp_path / "note.png", Limits(max_pixels=1_000_000))


def bomb_png(width: int = 20_000, height: int = 10_000) -> bytes:
    """A PNG of a few bytes whose header says width x height (200 megapixels): Pillow refuses
    to open it as a decompression bomb (DecompressionBombError, not an OSError)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    rows = zlib.compress(b"\0" * 100)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )


def test_an_image_pillow_refuses_as_a_bomb_is_too_large_by_its_size():
    with pytest.raises(IngestError) as info:
        list(ocr.image_pages(bomb_png(), "huge.png", 60_000_000, 10))
    assert info.value.reason == "image too large: page 1 has 200 megapixels, the limit is 60"


@needs_tesseract
def test_one_picture_too_large_is_skipped_and_the_slides_read(tmp_path):
    """Before: the picture's DecompressionBombError made the whole deck 'unexpected error'."""
    import pptx
    from factories import rezip
    from pptx.util import Inches

    deck = pptx.Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[1])
    slide.shapes.title.text = "Quarterly results"
    slide.placeholders[1].text = "Revenue grew in every region"
    slide.shapes.add_picture(io.BytesIO(_png(scan([], (200, 100)))), Inches(1), Inches(4))
    saved = io.BytesIO()
    deck.save(saved)
    path = tmp_path / "results.pptx"
    path.write_bytes(rezip(saved.getvalue(), "ppt/media/image1.png", lambda _: bomb_png()))
    doc = load(path)
    assert doc.text == "# Slide 1: Quarterly results\n\nRevenue grew in every region"
    assert doc.notes == ("picture(s) on slide(s) 1 not read by OCR: over 60 megapixels",)


@needs_tesseract
def test_blank_and_picture_only_pages_still_answer_no_text(tmp_path):
    from PIL import Image, ImageDraw

    blank = Image.new("L", (1700, 2200), 255)
    picture = Image.new("L", (1700, 2200), 255)
    ImageDraw.Draw(picture).ellipse((300, 300, 1400, 1400), fill=90)
    for name, image in (("blank.pdf", blank), ("picture.pdf", picture)):
        (tmp_path / name).write_bytes(image_pdf(image))
        with pytest.raises(IngestError, match="no text layer"):
            load(tmp_path / name)
    (tmp_path / "blank.png").write_bytes(_png(blank))
    with pytest.raises(IngestError, match="no text found in the image"):
        load(tmp_path / "blank.png")


def test_no_ocr_and_a_missing_tesseract_say_so_and_break_nothing(tmp_path, monkeypatch):
    (tmp_path / "scan.pdf").write_bytes(image_pdf(scan(SENTENCES)))
    (tmp_path / "note.png").write_bytes(_png(scan(SENTENCES)))
    (tmp_path / "typed.pdf").write_bytes(make_pdf(["An ordinary page with its text layer."]))
    with pytest.raises(IngestError, match=r"OCR is off"):
        load(tmp_path / "scan.pdf", options=ReadOptions(ocr=False))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # Tesseract hidden
    assert (
        not ocr.available()
        and ocr.status("eng") == "OCR is off: install tesseract-ocr to read scanned pages"
    )
    with pytest.raises(
        IngestError, match="no text layer; install tesseract-ocr to read scanned pages"
    ):
        load(tmp_path / "scan.pdf")
    with pytest.raises(IngestError, match="install tesseract-ocr"):
        load(tmp_path / "note.png")
    assert "ordinary page" in load(tmp_path / "typed.pdf").text


def test_ocr_without_its_packages_says_which_extra(tmp_path, monkeypatch):
    """`pip install qsearch` without the ocr extra: Tesseract may be there, pytesseract is not."""
    (tmp_path / "scan.pdf").write_bytes(image_pdf(scan(SENTENCES)))
    monkeypatch.setitem(sys.modules, "pytesseract", None)  # find_spec answers None, as uninstalled
    assert not ocr.available()
    assert ocr.status("eng") == 'OCR is off: pip install "qsearch[ocr]" to read scanned pages'
    with pytest.raises(IngestError, match=r'no text layer; pip install "qsearch\[ocr\]"'):
        load(tmp_path / "scan.pdf")


@needs_tesseract
def test_cli_chunk_json_shows_ocr_text_and_pages(tmp_path, minilm_dir):
    (tmp_path / "scan.pdf").write_bytes(image_pdf(scan(["A typed heading"]), scan(SENTENCES)))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "qsearch",
            "chunk",
            "--json",
            "--embed-model",
            str(minilm_dir),
            str(tmp_path / "scan.pdf"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["ocr_pages"] == [1, 2] and "OCR is on" in done.stderr
    assert found_share(SENTENCES, " ".join(c["text"] for c in result["first_chunks"])) >= 0.9
    assert all(c["ocr"] for c in result["first_chunks"])
    off = subprocess.run(
        [
            sys.executable,
            "-m",
            "qsearch",
            "chunk",
            "--json",
            "--no-ocr",
            "--embed-model",
            str(minilm_dir),
            str(tmp_path / "scan.pdf"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "OCR is off" in json.loads(off.stdout.strip().splitlines()[-1])["error"]


@needs_tesseract
def test_an_unknown_language_is_a_clear_note(tmp_path):
    (tmp_path / "scan.pdf").write_bytes(image_pdf(scan(SENTENCES)))
    with pytest.raises(IngestError, match="no language pack 'xyz'.*apt-get install tesseract-ocr-"):
        load(tmp_path / "scan.pdf", options=ReadOptions(ocr_lang="xyz"))
    assert "no language pack for xyz" in ocr.status("xyz")


def _png(image) -> bytes:  # noqa: ANN001
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


# What each real-world PDF of ../shared/data/pdfs (py-pdf/sample-files) gives, from its own
# description: ImageMagick's files are a smiley drawn with no text (007's README), the others as
# named. GeoTopo (117 text pages, a 120 s read) is left out: it has a text layer.
SHARED_PDFS = {
    "imagemagick-ASCII85Decode.pdf": "no text layer.*no text found, by OCR either",
    "imagemagick-CCITTFaxDecode.pdf": "no text layer.*no text found, by OCR either",
    "imagemagick-lzw.pdf": "no text layer.*no text found, by OCR either",
    "grayscale-image.pdf": "no text layer.*no text found, by OCR either",
    "cmyk-image.pdf": "no text layer.*no text found, by OCR either",
    "libreoffice-writer-password.pdf": "password-protected PDF",
    "unreadablemetadata.pdf": "not a readable PDF",
}


@needs_tesseract
@pytest.mark.slow
def test_shared_scanned_pdfs_report(shared_data):
    """The real-world PDFs without a text layer: OCR runs on each and finds what is there."""
    from qsearch.documents.read import find_files

    paths = {p.name: p for p in find_files([shared_data / "pdfs"])}
    for name, reason in SHARED_PDFS.items():
        with pytest.raises(IngestError) as caught:
            load(paths[name])
        assert re.search(reason, caught.value.reason), (name, caught.value.reason)
    images = load(paths["imagemagick-images.pdf"])  # six smileys and a page of text
    assert not images.ocr_pages and images.text.strip()
    assert list(images.notes) == [f"page {i}: no text found, by OCR either" for i in range(1, 7)]
    typed = load(paths["minimal-document.pdf"])
    assert typed.text.strip() and not typed.ocr_pages and not typed.notes


@needs_tesseract
def test_a_scanned_pdf_is_searchable_and_its_hits_say_ocr(tmp_path, minilm):
    from qsearch import Engine, Settings

    (tmp_path / "scan.pdf").write_bytes(image_pdf(scan(SENTENCES)))
    engine = Engine(Settings(embed_model=minilm.model_name), embedder=minilm)
    report = engine.add_files([tmp_path / "scan.pdf"])
    assert report.files[0].status == "indexed" and report.files[0].ocr_pages == [1]
    hit = engine.search("which invoice was paid by cheque?", k=1)[0]
    assert hit.source.endswith("scan.pdf") and hit.ocr and hit.page == 1 and "4471" in hit.text
