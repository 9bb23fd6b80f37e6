"""What the loaders of packaged formats share: the zip check (.docx, .pptx, .xlsx, OpenDocument,
.epub are zip archives: a damaged one, an encrypted one or a zip bomb is refused before any
library parses it), labels for the parts of a file, and one-line reasons from exceptions: what
is wrong with the file in words ("a damaged zip archive (unknown compression)"), never an
exception's name; the exception itself goes with the IngestError as its `detail`, for the log.
"""

from __future__ import annotations

import functools
import io
import re
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ..types import IngestError, Limits

L = TypeVar("L", bound=Callable)

OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # Microsoft's compound file: .doc, .xls, .msg
TITLE_CHARS = 80  # of a slide's, sheet's, chapter's or e-mail's title in a label
# the compression methods Python's zipfile reads: stored, deflated, bzip2, LZMA
ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
ZIP_METHOD_NAMES = {9: "Deflate64", 10: "PKWARE imploding", 93: "Zstandard", 95: "xz", 98: "PPMd"}
ZIP_METHOD_NAMES |= {99: "AES encryption", 6: "imploding", 1: "shrinking", 97: "WavPack"}


def check_zip(data: bytes, source: str, limits: Limits, what: str, required: str) -> None:
    """Refuse what isn't a readable `what` (e.g. "PowerPoint .pptx") holding `required`."""
    if data.startswith(OLE2):
        raise IngestError(
            source,
            f"not a readable {what}: it is password-protected (encrypted), or an older "
            "binary Office file given this name",
        )
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, ValueError, OSError):
        raise IngestError(source, f"not a valid {what} (it is not a zip archive)") from None
    except (NotImplementedError, EOFError, zlib.error, KeyError, IndexError) as e:
        detail = f"{type(e).__name__}: {e}"
        raise IngestError(source, f"not a readable {what}: {short(e)}", detail=detail) from None
    unzipped = sum(info.file_size for info in infos)
    if unzipped > limits.max_unzipped_bytes:
        raise IngestError(
            source,
            f"refused: unpacks to {unzipped / 2**20:,.0f} MB (a zip bomb?), "
            f"the limit is {limits.max_unzipped_bytes / 2**20:.0f} MB",
        )
    names = {info.filename for info in infos}
    if required not in names:
        raise IngestError(source, f"not a valid {what} (no {required} inside the zip)")
    if any(info.flag_bits & 1 for info in infos):
        raise IngestError(source, f"not a readable {what}: its contents are encrypted")
    methods = sorted({info.compress_type for info in infos} - ZIP_METHODS)
    if methods:
        named = ", ".join(ZIP_METHOD_NAMES.get(m, f"method {m}") for m in methods)
        raise IngestError(
            source, f"not a readable {what}: a damaged zip archive (unknown compression: {named})"
        )


def quoted(title: str) -> str:
    """A title in a label: quoted, on one line, at most TITLE_CHARS characters."""
    title = " ".join(title.split())
    if len(title) > TITLE_CHARS:
        title = title[: TITLE_CHARS - 1].rstrip() + "\u2026"
    return f'"{title}"'


def short(error: BaseException) -> str:
    """What `error`, raised by a library reading a damaged file, says is wrong with it, in words
    and on one line (at most 160 characters): never just the exception's name."""
    text = str(error).splitlines()[0].strip() if str(error).strip() else ""
    for kinds, pattern, words in _PLAIN:
        if isinstance(error, kinds) and (match := re.search(pattern, text)):
            return match.expand(words)[:160]
    return (text or "damaged, or not in the form its type promises")[:160]


# (exception types, a pattern of their message, the reason in words: \\1 is the pattern's group)
_XML_ERRORS: tuple[type[BaseException], ...] = (SyntaxError,)  # lxml's and expat's are these
_PLAIN: list[tuple[tuple[type[BaseException], ...], str, str]] = [
    ((NotImplementedError,), r"compression", "a damaged zip archive (unknown compression)"),
    ((NotImplementedError,), r"zip file version ([\d.]+)",
     r"a damaged zip archive (it claims zip version \1, which no reader knows)"),
    ((NotImplementedError,), r"encryption|encrypted", "a zip archive with encrypted contents"),
    ((zipfile.BadZipFile,), r"CRC-32 for file '?([^']*)",
     r"a damaged zip archive (\1 fails its checksum)"),
    ((zipfile.BadZipFile,), r".*", "a damaged zip archive"),
    ((zlib.error, EOFError), r".*",
     "a damaged zip archive (its compressed data is cut or corrupt)"),
    ((KeyError,), r"no item named '([^']*)'", r"a part it needs is missing (\1)"),
    ((KeyError,), r"^'?(.*?)'?$", r"something it refers to is missing (\1)"),
    (_XML_ERRORS, r"[Ee]xcessive depth|depth", "its XML is nested too deeply (over 256 levels)"),
    (_XML_ERRORS, r"amplification|entity reference loop",
     "its XML expands entities beyond reason (an entity bomb?)"),
    (_XML_ERRORS, r"Text node too long|huge text", "its XML has a text over 10 MB in one piece"),
    (_XML_ERRORS, r"(.+?)(?:, line \d+, column \d+.*)?$", r"damaged XML inside: \1"),
    ((RecursionError,), r".*", "nested too deeply to read"),
    ((MemoryError,), r".*", "too large to read in memory"),
    ((UnicodeError,), r".*", "text in an encoding other than the one it declares"),
]  # fmt: skip


def unreadable(source: str, what: str, error: BaseException) -> IngestError:
    """ "not a readable `what` (what is wrong)" for `error`, which a library raised reading the
    file; the exception goes with it as its detail, for the log."""
    return IngestError(
        source, f"not a readable {what} ({short(error)})", detail=f"{type(error).__name__}: {error}"
    )


def one_line_reasons(loader: L) -> L:
    """`loader` (data, source, deadline, options) whose exceptions other than IngestError (a
    library's many kinds on damaged input) become "not a readable .eml (reason)"."""

    @functools.wraps(loader)
    def read(data: bytes, source: str, *args: object) -> object:
        try:
            return loader(data, source, *args)
        except IngestError:
            raise
        except Exception as e:  # noqa: BLE001 - said in one line, with the file's type
            raise unreadable(source, Path(source).suffix.lower() or "file", e) from None

    return read  # type: ignore[return-value]
