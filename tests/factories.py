"""Files the tests make: valid, damaged and hostile PDFs, .docx and zip bombs."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable


def make_pdf(pages: list[str | None]) -> bytes:
    """A valid PDF with one page per entry: its text in Helvetica, or None for a page without
    text."""
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        None,
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    kids = []
    for text in pages:
        lines = [] if text is None else text.split("\n")
        ops = "".join(
            f"BT /F1 12 Tf 72 {720 - 16 * i} Td ({line}) Tj ET\n" for i, line in enumerate(lines)
        )
        objects.append(f"<< /Length {len(ops)} >>\nstream\n{ops}endstream")
        kids.append(len(objects) + 1)
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {len(objects)} 0 R >>"
        )
    objects[1] = (
        f"<< /Type /Pages /Kids [{' '.join(f'{k} 0 R' for k in kids)}] /Count {len(kids)} >>"
    )
    out, offsets = io.BytesIO(), []
    out.write(b"%PDF-1.4\n")
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1"))
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    out.write("".join(f"{o:010d} 00000 n \n" for o in offsets).encode())
    out.write(
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return out.getvalue()


def encrypted_pdf(user_password: str) -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf(["Secret launch codes"]))))
    writer.encrypt(user_password=user_password, owner_password="owner", algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def zip_bomb(unpacked_mb: int) -> bytes:
    """A small zip (named like a .docx) that unpacks to `unpacked_mb` MB of zeros."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("word/document.xml", "w") as f:
            block = b"\0" * 2**20
            for _ in range(unpacked_mb):
                f.write(block)
    return buffer.getvalue()


def broken_xref_pdf(pages: list[str]) -> bytes:
    """A PDF whose cross-reference table points at the wrong offsets (readers must rebuild it)."""
    data = make_pdf(pages)
    head, _, tail = data.partition(b"xref\n")
    rows = tail.split(b"\n")
    damaged = [
        b"%010d 00000 n " % (int(row[:10]) + 7) if row.endswith(b" n ") else row for row in rows
    ]
    return head + b"xref\n" + b"\n".join(damaged)


def rezip(data: bytes, member: str, edit: Callable[[bytes], bytes]) -> bytes:
    """A copy of the zip `data` (a .docx, .xlsx, .epub ...) with `member` changed by `edit`."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as z:
        for info in source.infolist():
            content = source.read(info.filename)
            if info.filename == member:
                content = edit(content)
            z.writestr(info, content, compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()
