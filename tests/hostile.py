"""Hostile files of every type qsearch reads (documents/formats.py), built from the real files in
tests/data/formats where a type needs a container: 100,000-deep nesting, entity expansion
("billion laughs"), zip bombs and zips that lie, 1,000,000-column rows, 5 MB headers, huge
attribute lists, long unbroken runs, cut and byte-flipped copies. Each is at most a few MB.

`write_corpus(folder)` writes them all and returns their names; tests/test_hostile_corpus.py
runs them through `qsearch chunk` and `qsearch index`, bench/hostile_files.py times them.
"""

from __future__ import annotations

import functools
import io
import random
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

from factories import make_pdf, rezip, zip_bomb

FORMATS = Path(__file__).parent / "data" / "formats"
DEEP = 100_000  # nesting depth
WIDE = 1_000_000  # columns in one row
MB = 2**20
LAUGHS = (  # ten levels of ten: a billion "lol"s from a few hundred bytes
    '<!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
        for i in range(1, 10)
    )
    + "]>"
)

# the real files each container type is built from, and the part that holds its text
REAL = {
    ".docx": ("testWORD.docx", "word/document.xml"),
    ".pptx": ("testPPT.pptx", "ppt/slides/slide1.xml"),
    ".xlsx": ("testEXCEL.xlsx", "xl/worksheets/sheet1.xml"),
    ".xlsm": ("testEXCEL.xlsx", "xl/worksheets/sheet1.xml"),
    ".odt": ("testODFwithOOo3.odt", "content.xml"),
    ".ods": ("test-columnar.ods", "content.xml"),
    ".odp": ("example.odp", "content.xml"),
    ".epub": ("testEPUB.epub", None),  # its first chapter, found in the zip
}
PLAIN = {  # the real file each other type is cut and flipped from
    ".pdf": None,
    ".xls": "testEXCEL.xls",
    ".msg": "testMSG.msg",
    ".eml": "testRFC822_multipart_attachments.eml",
    ".rtf": "testRTF.rtf",
    ".html": "kettle-shop-page.html",
    ".csv": "testCSV.csv",
    ".xml": "testXML.xml",
}


def write_corpus(folder: Path) -> list[str]:
    """Write every hostile file into `folder`; their names, sorted."""
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, bytes] = {}
    files |= _webpages()
    files |= _text_files()
    files |= _mail()
    files |= _rtf()
    files |= _pdf()
    files |= _images()
    for suffix in REAL:
        files |= _container(suffix)
    for suffix, name in PLAIN.items():
        real = (
            make_pdf(["A page about tides"] * 3) if name is None else (FORMATS / name).read_bytes()
        )
        files |= _damaged(real, suffix)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return sorted(files)


# --- damage any file ---------------------------------------------------------------------------


def _damaged(data: bytes, suffix: str) -> dict[str, bytes]:
    """The file cut at a third and at two thirds, and with 1 byte in 200 flipped (seeded)."""
    rng = random.Random(len(data))
    flipped = bytearray(data)
    for i in rng.sample(range(len(data)), max(1, len(data) // 200)):
        flipped[i] ^= 0xFF
    name = suffix.lstrip(".")
    return {
        f"cut-third-{name}{suffix}": data[: len(data) // 3],
        f"cut-two-thirds-{name}{suffix}": data[: 2 * len(data) // 3],
        f"flipped-{name}{suffix}": bytes(flipped),
    }


# --- web pages, text, JSON, XML, CSV -----------------------------------------------------------


def _html(body: str, head: str = "<title>Hostile</title>") -> bytes:
    return (
        f"<html><head>{head}</head><body><p>Before.</p>{body}<p>After.</p></body></html>".encode()
    )


def _webpages() -> dict[str, bytes]:
    attributes = " ".join(f"a{i}=1" for i in range(400_000))
    pages = {
        "deep-divs.html": _html("<div>" * DEEP + "Deep text." + "</div>" * DEEP),
        "deep-unclosed.htm": _html("<div><span>" * DEEP + "Deep text."),
        "deep-formatting.html": _html("<b><i>" * DEEP + "Deep text." + "</i></b>" * DEEP),
        "deep-lists.html": _html("<ul><li>" * DEEP + "Deep text."),
        "deep-tables.html": _html("<table><tr><td>" * (DEEP // 3) + "Deep text."),
        "deep-svg.html": _html("<svg>" + "<g>" * DEEP + "</svg>"),
        "deep-headings.html": _html("<h1>" * DEEP + "Deep text."),
        "misnested.html": _html("<b><i></b></i>" * DEEP + "Text."),
        "attribute-list.html": _html(f"<div {attributes}>Text.</div>"),
        "attribute-list-quoted.html": _html(
            "<div " + " ".join(f'a{i}=">"' for i in range(400_000)) + ">Text.</div>"
        ),
        "attribute-value.html": _html(f"<p title='{'x' * 5 * MB}'>Text.</p>"),
        "long-word.html": _html(f"<p>{'x' * 5 * MB}</p>"),
        "less-than-run.html": _html("<" * 5 * MB),
        "end-tag-run.html": _html("</" * 2 * MB),
        "bang-run.html": _html("<!" * 2 * MB),
        "cdata-run.html": _html("<![CDATA[" * DEEP),
        "entity-run.html": _html("&#" * 2 * MB),
        "unclosed-comment.html": _html("<!--" + "x" * 5 * MB),
        "unclosed-script.html": _html("<script>" + "x<" * 2 * MB),
        "unclosed-tag.html": _html("<p a='1' " + "b " * 2 * MB),
        "br-run.html": _html("<br>" * WIDE),
        "wide-table.html": _html("<table><tr>" + "<td>1" * WIDE + "</table>"),
        "many-paragraphs.html": _html("<p>word " * 400_000),
        "many-titles.html": _html("Text.", "<title>t</title>" * 200_000),
        "billion-laughs.xhtml": (
            f'<?xml version="1.0"?>{LAUGHS}<html xmlns="http://www.w3.org/1999/xhtml">'
            "<body><p>&lol9;</p></body></html>"
        ).encode(),
        "five-mb-head.html": _html("Text.", "<title>t</title>" + "<meta name=a>" * 400_000),
    }
    pages["deep-divs.mhtml"] = _mime_page(pages["deep-divs.html"])
    pages["attribute-list.mht"] = _mime_page(pages["attribute-list.html"])
    return pages


def _mime_page(html: bytes) -> bytes:
    return (
        b"From: <Saved by a browser>\r\nSubject: A saved page\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/related; boundary="b"\r\n\r\n--b\r\n'
        b"Content-Type: text/html; charset=utf-8\r\n\r\n" + html + b"\r\n--b--\r\n"
    )


def _text_files() -> dict[str, bytes]:
    deep_json = "[" * DEEP + '"deep"' + "]" * DEEP
    return {
        "long-line.txt": b"x" * 5 * MB,
        "newlines.text": b"\n" * 5 * MB,
        "spaces-and-tabs.md": b" \t" * 2 * MB + b"x",
        "nul-bytes.markdown": b"\0" * MB,
        "odd-utf16.rst": b"\xff\xfe" + b"a\0" * 1000 + b"a",
        "not-utf8.log": bytes(range(128, 256)) * 20_000,
        "deep.json": deep_json.encode(),
        "deep-objects.jsonl": ('{"a":' * DEEP + "1" + "}" * DEEP).encode(),
        "deep.xml": ("<a>" * DEEP + "Deep text." + "</a>" * DEEP).encode(),
        "billion-laughs.xml": f'<?xml version="1.0"?>{LAUGHS}<r>&lol9;</r>'.encode(),
        "attribute-list.xml": (
            "<r " + " ".join(f"a{i}='1'" for i in range(400_000)) + ">x</r>"
        ).encode(),
        "wide-rows.csv": b"\n".join([b"a," * WIDE] * 3),
        "wide-row.tsv": b"\t".join(b"%d" % (i % 10) for i in range(WIDE)),
        "huge-field.csv": b'a,b\n"' + b"x" * 5 * MB + b'",1\n',
        "unclosed-quote.csv": b'a,b\n1,"' + b"x," * 2 * MB,
    }


# --- e-mail --------------------------------------------------------------------------------------


def _mail() -> dict[str, bytes]:
    head = b"From: a@example.org\r\nTo: b@example.org\r\n"
    body = b"\r\n\r\nBody text.\r\n"
    nested = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
        for i in range(DEEP // 10)
    )
    return {
        "five-mb-subject.eml": head + b"Subject: " + b"x" * 5 * MB + body,
        "five-mb-folded-subject.eml": head + b"Subject: x" + b"\r\n x" * (MB // 2) + body,
        "million-headers.eml": head + b"X-A: 1\r\n" * 600_000 + b"Subject: s" + body,
        "five-mb-address-list.eml": b"Subject: s\r\nTo: " + b"a@b, " * MB + body,
        "encoded-words.eml": head + b"Subject: " + b"=?utf-8?q?x?= " * 400_000 + body,
        "nested-multipart.eml": head + b"Subject: s\r\nMIME-Version: 1.0\r\n" + nested + b"x",
        "deep-html-body.eml": head
        + b"Subject: s\r\nContent-Type: text/html\r\n\r\n"
        + b"<div>" * DEEP
        + b"Deep text.",
    }


# --- rich text -----------------------------------------------------------------------------------


def _rtf() -> dict[str, bytes]:
    start = b"{\\rtf1\\ansi "
    return {
        "deep-groups.rtf": start + b"{" * DEEP + b"Deep text." + b"}" * DEEP + b"}",
        "unclosed-groups.rtf": start + b"{\\b " * DEEP + b"Deep text.",
        "control-words.rtf": start + b"\\par" * MB + b"}",
        "long-control-word.rtf": start + b"\\" + b"a" * 5 * MB + b" text}",
        "hex-escapes.rtf": start + b"\\'e9" * MB + b"}",
        "unicode-escapes.rtf": start + b"\\u233?" * 800_000 + b"}",
        "binary-run.rtf": start + b"\\bin999999999 " + b"x" * MB + b"}",
        "long-word.rtf": start + b"x" * 5 * MB + b"}",
    }


# --- PDF -----------------------------------------------------------------------------------------


def _pdf_with(objects: dict[int, bytes], root: int = 1) -> bytes:
    """A PDF of these numbered objects (their bodies), with a correct cross-reference table."""
    out, offsets = io.BytesIO(), {}
    out.write(b"%PDF-1.4\n")
    for number, body in sorted(objects.items()):
        offsets[number] = out.tell()
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    xref, size = out.tell(), max(objects) + 1
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % size)
    for n in range(1, size):
        out.write(b"%010d 00000 n \n" % offsets.get(n, 0))
    out.write(
        b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, root, xref)
    )
    return out.getvalue()


def _page_pdf(content: bytes, filters: bytes = b"") -> bytes:
    return _pdf_with(
        {
            1: b"<< /Type /Catalog /Pages 2 0 R >>",
            2: b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            3: b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
            b"/Resources << /Font << /F1 5 0 R >> >> >>",
            4: b"<< /Length %d %s >>\nstream\n%s\nendstream" % (len(content), filters, content),
            5: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        }
    )


def _pdf() -> dict[str, bytes]:
    bomb = zlib.compress(b"0 0 m " * (50 * MB // 6), 9)
    return {
        "deep-arrays.pdf": _page_pdf(
            b"BT /F1 12 Tf 72 700 Td " + b"[" * DEEP + b"(x)" + b"]" * DEEP + b" TJ ET"
        ),
        "deep-dictionaries.pdf": _pdf_with(
            {
                1: b"<< /Type /Catalog /Pages 2 0 R /X "
                + b"<< /A " * DEEP
                + b"1"
                + b" >>" * DEEP
                + b" >>",
                2: b"<< /Type /Pages /Kids [] /Count 0 >>",
            }
        ),
        "page-tree-loop.pdf": _pdf_with(
            {
                1: b"<< /Type /Catalog /Pages 2 0 R >>",
                2: b"<< /Type /Pages /Kids [2 0 R 3 0 R] /Count 2 >>",
                3: b"<< /Type /Pages /Kids [2 0 R] /Count 1 /Parent 2 0 R >>",
            }
        ),
        "flate-bomb.pdf": _page_pdf(bomb, b"/Filter /FlateDecode"),
        "five-mb-string.pdf": _page_pdf(b"BT /F1 12 Tf 72 700 Td (" + b"x" * 5 * MB + b") Tj ET"),
        "million-operators.pdf": _page_pdf(b"BT /F1 12 Tf " + b"(x) Tj " * 700_000 + b"ET"),
        "billion-pages.pdf": _pdf_with(
            {
                1: b"<< /Type /Catalog /Pages 2 0 R >>",
                2: b"<< /Type /Pages /Kids [3 0 R] /Count 1000000000 >>",
                3: b"<< /Type /Page /Parent 2 0 R >>",
            }
        ),
    }


# --- images --------------------------------------------------------------------------------------


def _images() -> dict[str, bytes]:
    from PIL import Image

    small = io.BytesIO()
    Image.new("L", (64, 32), 255).save(small, "PNG")
    png = small.getvalue()
    huge = png[:16] + struct.pack(">II", 200_000, 200_000) + png[24:29]  # IHDR's width, height
    huge = huge[:29] + struct.pack(">I", zlib.crc32(huge[12:29])) + png[33:]
    images = {"huge-dimensions.png": huge}
    for kind, suffix in (
        ("JPEG", ".jpg"),
        ("JPEG", ".jpeg"),
        ("TIFF", ".tif"),
        ("TIFF", ".tiff"),
        ("WEBP", ".webp"),
        ("PNG", ".png"),
    ):
        out = io.BytesIO()
        Image.new("RGB", (300, 200), "white").save(out, kind)
        images |= _damaged(out.getvalue(), suffix)
    tiff = io.BytesIO()
    Image.new("L", (8, 8)).save(tiff, "TIFF")
    frames = bytearray(tiff.getvalue())  # its first IFD's entry count: 65,535 entries
    first_ifd = struct.unpack("<I", frames[4:8])[0]
    frames[first_ifd : first_ifd + 2] = b"\xff\xff"
    images["many-tags.tiff"] = bytes(frames)
    return images


# --- the zip-based types -------------------------------------------------------------------------


def _text_part(data: bytes, suffix: str) -> str:
    """The zip member of a real file that holds its text (for an e-book: its first chapter)."""
    member = REAL[suffix][1]
    if member is not None:
        return member
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return next(n for n in z.namelist() if n.endswith((".xhtml", ".html", ".htm")))


def _inside_root(xml: bytes, inner: bytes) -> bytes:
    """`xml` with `inner` placed just inside its root element (after the root's start tag)."""
    start = xml.index(b"<", xml.index(b">", xml.index(b"<", xml.find(b"?>") + 1)) + 1)
    end = xml.index(b">", start)
    root_start = xml.rfind(b"<", 0, end)
    if xml[root_start : root_start + 2] in (b"<?", b"<!"):
        root_start = start
    cut = xml.index(b">", root_start) + 1
    return xml[:cut] + inner + xml[cut:]


def _container(suffix: str) -> dict[str, bytes]:
    real = (FORMATS / REAL[suffix][0]).read_bytes()
    part = _text_part(real, suffix)
    name = suffix.lstrip(".")

    def edit(change: Callable[[bytes], bytes]) -> bytes:
        return rezip(real, part, change)

    def declaration_first(xml: bytes, addition: bytes) -> bytes:
        head, sep, rest = xml.partition(b"?>")
        return head + sep + addition + rest if sep else addition + xml

    files = {
        f"deep-{name}{suffix}": edit(
            lambda x: _inside_root(x, b"<x>" * DEEP + b"Deep" + b"</x>" * DEEP)
        ),
        f"billion-laughs-{name}{suffix}": edit(
            lambda x: declaration_first(x, LAUGHS.encode()).replace(b"</", b"&lol9;</", 1)
        ),
        f"attribute-list-{name}{suffix}": edit(
            lambda x: _inside_root(
                x, b"<x " + b" ".join(b"a%d='1'" % i for i in range(400_000)) + b"/>"
            )
        ),
        f"long-run-{name}{suffix}": edit(
            lambda x: _inside_root(x, b"<x>" + b"x" * 5 * MB + b"</x>")
        ),
        f"wide-row-{name}{suffix}": edit(lambda x: _inside_root(x, _wide_row(suffix))),
        f"zip-bomb-{name}{suffix}": _renamed_bomb(real, part),
        f"lying-sizes-{name}{suffix}": _lying_sizes(real, part),
        f"unknown-compression-{name}{suffix}": _zip_field(real, "compression", 9),
        f"zip-version-22.5-{name}{suffix}": _zip_field(real, "version", 225),
        f"encrypted-flag-{name}{suffix}": _zip_field(real, "flags", 1),
    }
    files |= _damaged(real, suffix)
    return files


def _wide_row(suffix: str) -> bytes:
    """A row of WIDE cells in the markup of `suffix`'s text part."""
    if suffix in (".xlsx", ".xlsm"):
        return b"<sheetData><row r='1'>" + b"<c><v>1</v></c>" * WIDE + b"</row></sheetData>"
    if suffix in (".odt", ".ods", ".odp"):
        cell = b"<table:table-cell><text:p>1</text:p></table:table-cell>"
        return (
            b"<table:table><table:table-row>"
            + cell * (WIDE // 4)
            + b"</table:table-row></table:table>"
        )
    if suffix == ".docx":
        return (
            b"<w:tbl><w:tr>"
            + b"<w:tc><w:p><w:r><w:t>1</w:t></w:r></w:p></w:tc>" * (WIDE // 4)
            + b"</w:tr></w:tbl>"
        )
    if suffix == ".pptx":
        return (
            b"<a:tbl><a:tr>"
            + b"<a:tc><a:txBody><a:p/></a:txBody></a:tc>" * (WIDE // 4)
            + b"</a:tr></a:tbl>"
        )
    return b"<table><tr>" + b"<td>1</td>" * WIDE + b"</tr></table>"  # an e-book chapter


def _renamed_bomb(real: bytes, part: str) -> bytes:
    """A zip bomb (300 MB of zeros, declared) holding the real file's members and a huge part."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(real)) as source, zipfile.ZipFile(out, "w") as z:
        for info in source.infolist():
            z.writestr(info, source.read(info.filename), zipfile.ZIP_DEFLATED)
        with zipfile.ZipFile(io.BytesIO(_bomb())) as bomb:
            z.writestr("bomb.xml", bomb.read("word/document.xml"), zipfile.ZIP_DEFLATED)
    return out.getvalue()


@functools.cache
def _bomb() -> bytes:
    return zip_bomb(300)


def _lying_sizes(real: bytes, part: str) -> bytes:
    """The text part's declared size (in both zip headers) says 100 bytes; it holds 50 MB."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(real)) as source, zipfile.ZipFile(out, "w") as z:
        for info in source.infolist():
            content = source.read(info.filename)
            if info.filename == part:
                content = content + b"<!--" + b" " * 50 * MB + b"-->"
            z.writestr(info.filename, content, zipfile.ZIP_DEFLATED)
    data = bytearray(out.getvalue())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as z:
        info = z.getinfo(part)
    local = info.header_offset
    struct.pack_into("<I", data, local + 22, 100)  # the local header's uncompressed size
    for offset in _central_entries(bytes(data)):
        name_length = struct.unpack_from("<H", data, offset + 28)[0]
        if bytes(data[offset + 46 : offset + 46 + name_length]).decode() == part:
            struct.pack_into("<I", data, offset + 24, 100)  # the central directory's
    return bytes(data)


def _central_entries(data: bytes) -> list[int]:
    """The offsets of the central directory's entries."""
    end = data.rindex(b"PK\x05\x06")
    count, _, start = struct.unpack_from("<HII", data, end + 10)
    offsets, offset = [], start
    for _ in range(count):
        offsets.append(offset)
        n, m, k = struct.unpack_from("<HHH", data, offset + 28)
        offset += 46 + n + m + k
    return offsets


def _zip_field(real: bytes, field: str, value: int) -> bytes:
    """The real file with one field of every central directory entry set to `value`: its
    compression method, the zip version needed to extract it, or its flags (bit 0: encrypted)."""
    data = bytearray(real)
    position = {"version": 6, "flags": 8, "compression": 10}[field]
    for offset in _central_entries(real):
        struct.pack_into("<H", data, offset + position, value)
    return bytes(data)
