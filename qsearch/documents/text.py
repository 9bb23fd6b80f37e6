"""Bytes -> str for text files: a BOM decides; else UTF-8; else the most likely legacy encoding.
The loaders of plain text (also JSON and XML, read as they are) and of rich text (.rtf).
"""

from __future__ import annotations

import codecs

from ..types import Deadline, Extracted, IngestError, ReadOptions

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def decode_text(data: bytes, source: str) -> str:
    """Bytes -> str: a BOM decides; else UTF-8; else the most likely legacy encoding.

    A file with NUL bytes or many control characters and no BOM is binary, and refused.
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError:
                raise _error(source, f"not valid {encoding.upper()} text despite its BOM") from None
    if _looks_binary(data):
        raise _error(source, "binary data, not text (is the file extension wrong?)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    matches = list(from_bytes(data[:1_000_000]))
    if not matches or matches[0].encoding is None:
        raise _error(source, "not UTF-8, and no other text encoding fits")
    best = matches[0]
    tied = {m.encoding for m in matches if (m.chaos, m.coherence) == (best.chaos, best.coherence)}
    encoding = (
        "cp1252" if "cp1252" in tied else best.encoding
    )  # the common Western legacy encoding wins ties
    return data.decode(encoding, errors="replace")


def _looks_binary(data: bytes) -> bool:
    sample = data[:65536]
    if b"\x00" in sample:
        return True
    controls = sum(1 for b in sample if b < 32 and b not in (9, 10, 12, 13, 27))
    return controls > len(sample) * 0.05


def _error(source: str, reason: str) -> Exception:
    return IngestError(source, reason)


def load_text(data: bytes, source: str, deadline: Deadline, options: ReadOptions) -> Extracted:
    return Extracted("text", [decode_text(data, source)])


def load_rtf(data: bytes, source: str, deadline: Deadline, options: ReadOptions) -> Extracted:
    """Rich text: its text by striprtf, in the code page the file declares."""
    if data.lstrip()[:5] != b"{\\rtf":
        raise _error(source, "not an RTF file (it does not begin with {\\rtf)")
    from striprtf.striprtf import rtf_to_text

    try:
        text = rtf_to_text(data.decode("latin-1"), errors="replace")
    except (ValueError, LookupError, IndexError, RecursionError) as e:
        raise _error(source, f"not a readable RTF file ({str(e)[:120]})") from None
    return Extracted("rtf", [text])
