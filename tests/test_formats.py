"""Every format on real files from the libraries' own test corpora (tests/data/formats/README.md):
the text each gives, the structure it keeps, where each passage lies ("where"), the limits, and
a one-line reason for each damaged variant (built here from the real files) while the rest of
the batch goes on. The saved shop page's article, not its menu, answers a question first."""

from __future__ import annotations

import html
import io
import re
import struct
import zipfile
from pathlib import Path

import pytest
from conftest import unit_vectors

from qsearch import Engine, Settings
from qsearch.cli_flags import build_parser
from qsearch.documents import formats, ocr
from qsearch.documents.chunk import chunk_document
from qsearch.documents.read import IngestError, Limits, ReadOptions, load
from qsearch.documents.webpage import MAIN_CONTENT_NOTE
from qsearch.store.base import DocInfo
from qsearch.store.vectors import VectorIndex
from qsearch.types import Hit
from qsearch.web.evidence import evidence_html
from qsearch.web.render import report_html, where

DATA = Path(__file__).parent / "data" / "formats"
ROOT = Path(__file__).parents[1]
NO_OCR = ReadOptions(ocr=False)
# file -> (kind, text it must hold, a passage and the label of the part it lies in, or None)
SAMPLES = {
    "testPPT.pptx": ("slides", "# Slide 1: Attachment Test", ("Watershed", "slide 3")),
    "sld-notes.pptx": ("slides", "Notes: Notes", ("Notes", "slide 1")),
    "testEXCEL.xlsx": (
        "sheet",
        "Number: 7 \u00b7 Square: 49",
        ("Square: 49", 'sheet "Feuil1", row 12'),
    ),
    "testEXCEL.xls": (
        "sheet",
        "Number: 7 \u00b7 Square: 49",
        ("Square: 49", 'sheet "Feuil1", row 12'),
    ),
    "test-columnar.ods": (
        "sheet",
        "Description of the Row: This is row 5 of 10",
        ("This is row 5 of", 'sheet "testing", row 7'),
    ),
    "testCSV.csv": ("sheet", "Number: 3 \u00b7 Square: 9", ("Square: 9", "row 8")),
    "testEPUB.epub": ("ebook", "This is the text for chapter Two", ("chapter Two", '"Chapter 2"')),
    "testRTF.rtf": ("rtf", "Test d\u2019indexation Word", None),
    "testRFC822_multipart_attachments.eml": (
        "email",
        "Attachments: Test TxtA.txt, Test TxtB.txt",
        ("This is test email", 'e-mail "EML 1" from Bugs Bunny <Bugs.Bunny@acme.com>'),
    ),
    "testMSG.msg": (
        "email",
        "Subject: MIME registry use cases",
        ("type detection", 'e-mail "MIME registry use cases" from Jukka Zitting'),
    ),
    "testWORD.docx": ("docx", "Header: This is the header for our document", None),
    "testFooter.odt": ("odt", "Header or footer: Here is footer text", None),
    "testODFwithOOo3.odt": ("odt", "[1] This is of course a simple footnote", None),
    "example.odp": ("slides", "This is the second page", ("second page", 'slide 2 "Slide 2"')),
    "testXML.xml": ("text", "Licensed to the Apache Software Foundation", None),
    "kettle-shop-page.html": ("html", "two tablespoons of citric acid", None),
}


@pytest.mark.parametrize("name", SAMPLES)
def test_each_real_file_reads_with_its_structure_and_where(name):
    kind, holds, passage = SAMPLES[name]
    doc = load(DATA / name, options=NO_OCR)
    assert doc.kind == kind and holds in doc.text, doc.text[:500]
    if passage is None:
        assert doc.parts == () and doc.where(0, len(doc.text)) is None
        return
    words, label = passage
    at = doc.text.index(words)
    assert doc.where(at, at + len(words)).startswith(label), doc.where(at, at + len(words))


def test_structure_kept_headers_slides_and_mail():
    deck = load(DATA / "testPPT.pptx").text
    assert deck.index("# Slide 1: Attachment Test") < deck.index("Rajiv") < deck.index("# Slide 2")
    book = load(DATA / "testEPUB.epub")
    assert [p.label for p in book.parts][-2:] == ['"Chapter 1"', '"Chapter 2"']
    mail = load(DATA / "testMSG.msg").text
    assert mail.startswith("Subject: MIME registry use cases\nFrom: Jukka Zitting")
    word = load(DATA / "testWORD.docx").text  # each section's header and footer, once, named
    assert word.startswith("Header: This is the header for our document\n\n# Sample Word")
    assert word.endswith("That\u2019s it!\n\nFooter: This is the footer for our document")
    assert word.count("header for our document") == word.count("footer for our document") == 1
    page = load(DATA / "kettle-shop-page.html")
    assert page.notes == (MAIN_CONTENT_NOTE,) and "Accept all cookies" not in page.text
    assert not any(w in page.text for w in ("Basket", "Kitchen appliances", "Newsletter"))


def test_a_page_saved_as_one_file_reads_as_the_web_page(tmp_path):
    """.mhtml as browsers save it: multipart/related, the page quoted-printable, then its parts."""
    from email.message import EmailMessage

    saved = EmailMessage()
    saved["Subject"], saved["Snapshot-Content-Location"] = "Descaling", "https://shop.example/"
    saved.make_related()
    page = (DATA / "kettle-shop-page.html").read_text(encoding="utf-8")
    saved.add_related(page, subtype="html", cte="quoted-printable")
    saved.add_related(b"\x89PNG...", maintype="image", subtype="png")
    (tmp_path / "page.mhtml").write_bytes(saved.as_bytes())
    doc = load(tmp_path / "page.mhtml")
    assert doc.kind == "html" and doc.text == load(DATA / "kettle-shop-page.html").text


def test_rows_stay_whole_with_their_header_names_in_every_chunk(tok):
    doc = load(DATA / "testEXCEL.xlsx")
    chunks = chunk_document(doc, tok, max_tokens=20, overlap=6)
    assert len(chunks) > 3
    rows = set(doc.text.split("\n"))  # each row is one line: a chunk holds whole ones only
    assert "Number: 7 \u00b7 Square: 49" in rows
    for c in chunks:
        assert set(c.text.split("\n")) <= rows, c.text
        assert re.fullmatch(r'sheet "Feuil1", rows? \d+(\u2013\d+)?', c.where), c.where
    assert chunks[0].where.startswith('sheet "Feuil1", rows 1\u2013')
    assert chunks[-1].where.endswith("\u201322"), "the sheet's last row is row 22"


def test_the_evidence_view_shows_a_passage_in_its_slide(tok):
    doc = load(DATA / "testPPT.pptx")
    chunks = chunk_document(doc, tok, max_tokens=30, overlap=0)
    index = VectorIndex(8, meta={"embed_model": "m"})
    info = DocInfo(doc.doc_id, doc.source, len(chunks), kind=doc.kind)
    index.add(info, chunks, unit_vectors(len(chunks), 8))
    chunk = next(c for c in chunks if c.where == "slide 2")
    fields = (chunk.source, None, None, chunk.text, chunk.start, chunk.end, doc.doc_id)
    hit = Hit(1, 0.9, *fields, where=chunk.where)
    shown = evidence_html(hit, index, "test file")
    assert "testPPT.pptx, slide 2</div>" in shown and "<mark>test</mark>" in shown
    assert "# Slide 2" in shown and "Rajiv Kumar Nistala" in shown, "the rest of its slide"
    assert "Attachment Test" not in shown and "Watershed" not in shown, "not the other slides"
    assert where(hit) == "testPPT.pptx, slide 2"


@pytest.mark.skipif(not ocr.available(), reason="tesseract-ocr is not installed")
def test_pictures_in_slides_are_read_by_ocr():
    doc = load(DATA / "frame_image.odp")
    assert "Picture text (OCR): odfdo" in doc.text
    assert doc.notes == ("text of pictures read by OCR on slide(s) 1",)
    assert "odfdo" not in load(DATA / "frame_image.odp", options=NO_OCR).text


def test_a_pptx_pictures_text_is_read_by_ocr_or_its_absence_said(tmp_path, monkeypatch):
    """A slide whose words are only in a picture (drawn here: no corpus deck has one)."""
    import pptx
    from pptx.util import Inches
    from test_ocr import SENTENCES, scan

    deck = pptx.Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[5])  # a title and nothing else
    slide.shapes.title.text = "Harbour rules"
    picture = io.BytesIO()
    scan(SENTENCES, size=(1700, 500)).save(picture, format="PNG")
    slide.shapes.add_picture(picture, Inches(0.5), Inches(2), width=Inches(9))
    deck.save(tmp_path / "rules.pptx")
    if ocr.available():
        doc = load(tmp_path / "rules.pptx")
        assert "Picture text (OCR): The harbour master logs every ship" in doc.text, doc.text
        assert doc.notes == ("text of pictures read by OCR on slide(s) 1",)
        assert doc.where(0, len(doc.text)) == 'slide 1 "Harbour rules"'
    monkeypatch.setattr(ocr, "available", lambda: False)
    doc = load(tmp_path / "rules.pptx")
    assert "harbour master" not in doc.text
    assert doc.notes == (f"the text of its 1 picture(s) was not read: {ocr.INSTALL_HINT}",)


# --- limits and damaged files -----------------------------------------------------------------


def reason(path: Path, limits: Limits = Limits()) -> str:
    with pytest.raises(IngestError) as info:
        load(path, limits, NO_OCR)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    return info.value.reason


def test_limits_on_slides_cells_characters_unzipped_size_and_time(tmp_path):
    assert reason(DATA / "testPPT.pptx", Limits(max_pages=2)) == (
        "too many slides: 3, the limit is 2"
    )
    for name in ("testEXCEL.xls", "test-columnar.ods", "testCSV.csv"):
        assert "too many cells: over 20 by" in reason(DATA / name, Limits(max_cells=20)), name
    assert reason(DATA / "testEXCEL.xlsx", Limits(max_cells=20)) == (
        "too many cells: over 20 stored in its sheets"  # counted in its XML, before openpyxl
    )
    assert "too much text" in reason(DATA / "testMSG.msg", Limits(max_chars=100))
    for name in ("testPPT.pptx", "testEPUB.epub", "testFooter.odt", "testEXCEL.xlsx"):
        assert "zip bomb" in reason(DATA / name, Limits(max_unzipped_bytes=5000)), name
    assert "took too long" in reason(DATA / "testPPT.pptx", Limits(max_seconds=-1))


ZIPPED = {  # extension -> the member its reader needs
    ".pptx": "ppt/presentation.xml",
    ".xlsx": "xl/workbook.xml",
    ".docx": "word/document.xml",
    ".odt": "content.xml",
    ".ods": "content.xml",
    ".odp": "content.xml",
    ".epub": "META-INF/container.xml",
}
OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600)


def damaged(tmp_path: Path) -> dict[Path, str]:
    """Damaged variants of the real files, each with (a piece of) the reason it must get."""
    cases: dict[str, tuple[bytes, str]] = {}
    for suffix, member in ZIPPED.items():
        real = next(p for p in sorted(DATA.iterdir()) if p.suffix == suffix).read_bytes()
        cases[f"truncated{suffix}"] = (real[: len(real) // 2], "it is not a zip archive")
        cases[f"text{suffix}"] = (b"just some words", "it is not a zip archive")
        cases[f"locked{suffix}"] = (OLE2, "password-protected (encrypted)")
        cases[f"empty-zip{suffix}"] = (_zip({"a.txt": b"x"}), f"no {member} inside the zip")
    cases["drm.epub"] = (_drm((DATA / "testEPUB.epub").read_bytes()), "DRM-protected")
    xls, msg = (DATA / "testEXCEL.xls").read_bytes(), (DATA / "testMSG.msg").read_bytes()
    cases["truncated.xls"] = (xls[:3000], "not a readable .xls")
    cases["zip.xls"] = (_zip({"xl/workbook.xml": b"<workbook/>"}), "an .xlsx named .xls?")
    cases["truncated.msg"] = (msg[:5000], "not a readable .msg")
    cases["text.msg"] = (b"Subject: hi\n\nnot outlook", "not an Outlook .msg file")
    cases["junk.eml"] = (b"just a line of text", "not an e-mail")
    cases["plain.rtf"] = (b"no rtf header here", "not an RTF file")
    for suffix in (".csv", ".tsv", ".json", ".xml", ".html"):
        cases[f"binary{suffix}"] = (bytes(range(256)) * 20 + suffix.encode(), "binary data")
    cases["page.mhtml"] = (b"Subject: x\nContent-Type: text/plain\n\nhi", "no HTML inside")
    # what the libraries raise past the loaders' own checks: one line each, not "unexpected"
    null_charset = b'Subject: s\nContent-Type: text/html; charset="\0"\n\n<p>Harbour</p>\n'
    cases["null-charset.eml"] = (null_charset, "not a readable .eml (embedded null character)")
    cases["null-charset.mhtml"] = (null_charset, "not a readable .mhtml (embedded null")
    cases["ppmd.epub"] = (
        _unsupported_compression(_drm((DATA / "testEPUB.epub").read_bytes())),
        "not a readable EPUB e-book (.epub): a damaged zip archive (unknown compression: PPMd)",
    )
    cases["version-22.5.docx"] = (  # before: "unexpected error: NotImplementedError: zip file..."
        _zip_version((DATA / "testWORD.docx").read_bytes(), 225),
        "not a readable Word document (.docx): a damaged zip archive (it claims zip version 22.5",
    )
    cases["old.doc"] = (b"x", "save it as .docx")
    cases["bundle.zip"] = (b"x", "unpack it")
    cases["tool.exe"] = (b"MZ", "unsupported file type '.exe'")
    paths = {}
    for name, (data, why) in cases.items():
        (tmp_path / name).write_bytes(data)
        paths[tmp_path / name] = why
    return paths


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buffer.getvalue()


def _drm(epub: bytes) -> bytes:
    """The real e-book with an encryption.xml as Adobe's DRM writes one (AES over a chapter)."""
    with zipfile.ZipFile(io.BytesIO(epub)) as z:
        members = {name: z.read(name) for name in z.namelist()}
    members["META-INF/encryption.xml"] = (
        b'<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" '
        b'xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData><enc:EncryptionMethod '
        b'Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/><enc:CipherData>'
        b'<enc:CipherReference URI="chapters/chapter1.html"/></enc:CipherData>'
        b"</enc:EncryptedData></encryption>"
    )
    return _zip(members)


def _zip_version(data: bytes, version: int) -> bytes:
    """The zip with the version needed to extract its first member (in the central directory)
    set to `version` (225: 22.5, which zipfile refuses with NotImplementedError)."""
    central = data.find(b"PK\x01\x02")
    return data[: central + 6] + struct.pack("<H", version) + data[central + 8 :]


def _unsupported_compression(epub: bytes) -> bytes:
    """The e-book with its last member (the encryption.xml) marked as compressed by PPMd (98),
    which zipfile can list but not read (NotImplementedError)."""
    ppmd = struct.pack("<H", 98)
    local, central = epub.rfind(b"PK\x03\x04"), epub.rfind(b"PK\x01\x02")
    data = bytearray(epub)
    data[local + 8 : local + 10] = data[central + 10 : central + 12] = ppmd
    return bytes(data)


@pytest.fixture(scope="module")
def engine(minilm):
    return Engine(Settings(embed_model=minilm.model_name, device="cpu"), embedder=minilm)


def test_markup_pythons_html_parser_rejected_is_read(tmp_path):
    """Before: BeautifulSoup's html.parser refused it ("The markup you provided was rejected")."""
    (tmp_path / "odd.html").write_bytes(b"<p>Harbour rules</p><![ x")
    assert load(tmp_path / "odd.html").text == "Harbour rules"


def test_each_damaged_file_gets_its_reason_and_the_batch_goes_on(engine, tmp_path):
    bad = damaged(tmp_path)
    good = [DATA / name for name in SAMPLES]
    files = [p for pair in zip(bad, good) for p in pair] + list(bad)[len(good) :]
    report = engine.add_files(files)
    outcome = {Path(f.path).name: f for f in report.files}
    for path, why in bad.items():
        f = outcome[path.name]
        assert f.status == "error" and why in f.error and len(f.error) < 300, (path.name, f.error)
    assert all(outcome[p.name].status == "indexed" for p in good), report.errors[:3]
    shown = report_html(report)
    assert all(f"<code>{html.escape(str(p))}</code>" in shown for p in files), "each in the report"
    hits = engine.search("Watershed Avalanche Black Panther Mystery", k=3)
    assert hits[0].source.endswith("testPPT.pptx") and hits[0].where == "slides 1\u20133"
    assert hits[0].to_dict()["where"] == "slides 1\u20133", "the whole deck is one passage"


def test_a_saved_shop_pages_article_answers_before_its_menu(minilm, tmp_path):
    """The first hit for a question the article answers is the article (the real MiniLM)."""
    engine = Engine(Settings(embed_model=minilm.model_name, device="cpu"), embedder=minilm)
    samples = sorted((ROOT / "assets" / "samples").iterdir())
    engine.add_files([DATA / "kettle-shop-page.html", *samples])
    for question in ("how do I descale a kettle", "what removes limescale from a kettle?"):
        first = engine.search(question, k=3)[0]
        assert first.source.endswith("kettle-shop-page.html"), (question, first.source)
        assert "citric acid" in first.text or "vinegar" in first.text, first.text
        assert not re.search(r"Basket|Login|Cookie|Deals|Gift cards", first.text), first.text


# --- the accepted types, from one place -----------------------------------------------------


def test_the_accepted_types_come_from_one_table():
    suffixes = [s for f in formats.FORMATS for s in f.suffixes]
    assert len(suffixes) == len(set(suffixes)), "an extension in two formats: one loader lost"
    assert all(re.fullmatch(r"\.[a-z0-9]+", s) for s in suffixes), suffixes
    assert set(formats.REFUSED).isdisjoint(formats.LOADERS)
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert formats.describe() in readme, "the README lists the types formats.describe() gives"
    parser = build_parser(*[lambda args: 0] * 4)
    commands = parser._subparsers._group_actions[0].choices  # argparse's subcommand parsers
    for name in ("index", "chunk"):
        assert formats.describe() in " ".join(commands[name].format_help().split())
    from qsearch.web.handlers import Handlers

    assert formats.describe() in " ".join((Handlers.add_documents.__doc__ or "").split())


# --- a sheet's header: found under a title, and with years for names ----------------------------


def _sheet(rows: list[list[object]]) -> str:
    """The text the reader makes of an .xlsx holding `rows`."""
    import io

    import openpyxl

    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    data = io.BytesIO()
    book.save(data)
    from qsearch.documents.sheets import load_xlsx
    from qsearch.types import Deadline, Limits, ReadOptions

    found = load_xlsx(data.getvalue(), "t.xlsx", Deadline(Limits()), ReadOptions())
    return "\n".join(found.pages)


@pytest.mark.parametrize(
    ("rows", "record"),
    [
        (  # a title in one cell, a header of years (seen in a user's trial: no names shown)
            [["Imports (t)"], [], ["Category", 2021, 2022, "Change"], ["Milk", 5418, 1261, -34]],
            "Category: Milk \u00b7 2021: 5418 \u00b7 2022: 1261 \u00b7 Change: -34",
        ),
        (  # a title of two cells over the table: it looked like the header, and named nothing
            [["Food imports", None, None, "Source: X"], ["Category", "Tonnes", "Value", None],
             ["Milk", 5418, 1261, None]],
            "Category: Milk \u00b7 Tonnes: 5418 \u00b7 Value: 1261",
        ),
        (  # a header over text rows is kept: the rows below fill no column it leaves unnamed
            [["Name", "City"], ["Alice", "Paris"], ["Bob", "Oslo"]],
            "Name: Alice \u00b7 City: Paris",
        ),
    ],
)  # fmt: skip
def test_a_sheets_header_is_found_under_a_title_and_with_years(rows, record):
    text = _sheet(rows)
    assert record in text, text
    if rows[0][0] == "Food imports":
        assert "Food imports | Source: X" in text, "the title reads as it is"
    if rows[0][0] == "Name":
        assert "Name: Bob \u00b7 City: Oslo" in text and "Name: Name" not in text
