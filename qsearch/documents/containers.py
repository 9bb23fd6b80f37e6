"""What the loaders of packaged formats share: the zip check (.docx, .pptx, .xlsx, OpenDocument,
.epub are zip archives: a damaged one, an encrypted one or a zip bomb is refused before any
library parses it), labels for the parts of a file, and one-line reasons from exceptions.
"""

from __future__ import annotations

import functools
import io
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ..types import IngestError, Limits

L = TypeVar("L", bound=Callable)

OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # Microsoft's compound file: .doc, .xls, .msg
TITLE_CHARS = 80  # of a slide's, sheet's, chapter's or e-mail's title in a label


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


def quoted(title: str) -> str:
    """A title in a label: quoted, on one line, at most TITLE_CHARS characters."""
    title = " ".join(title.split())
    if len(title) > TITLE_CHARS:
        title = title[: TITLE_CHARS - 1].rstrip() + "\u2026"
    return f'"{title}"'


def short(error: BaseException) -> str:
    """An exception as a short reason: its first line, or its type's name."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text[:160]


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
            what = Path(source).suffix.lower() or "file"
            raise IngestError(source, f"not a readable {what} ({short(e)})") from None

    return read  # type: ignore[return-value]
