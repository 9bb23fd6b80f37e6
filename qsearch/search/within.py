"""Search within: which documents a search may return, from the files, file types and the date
a user chose. `Engine.search` resolves a `Within` to each collection's doc ids; the stores filter
by them before ranking (store/base.py), so a narrowed search still returns k passages whenever
that many exist in the chosen documents.

A file is named by its source as listed (`report.pdf`, `docs/report.pdf`), its base name, its
document id, or a pattern with * ? [ ] (`*.pdf`, `2024-*`; matched case-insensitively). A type
is a file extension (`pdf`, `.xlsx`) or one of the kinds the readers give (`sheet`, `slides`,
`email`, ...). A date is a day or a moment in ISO 8601 (`2025-03-01`, `2025-03-01T14:30`, in
local time unless it says otherwise), seconds since 1970, or an age: `7d`, `12h`, `30m`.
"""

from __future__ import annotations

import fnmatch
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import PurePath, PureWindowsPath

from ..store.base import DocInfo

Since = float | int | str | date | datetime | None  # what `since` may be given as
_AGE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([dhm])\s*", re.IGNORECASE)
_AGE_SECONDS = {"d": 86_400, "h": 3_600, "m": 60}
_GLOB = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class Within:
    """Files (names, ids or patterns), types (extensions or kinds) and a time: a document is
    searched when it matches any of the files (if any are given), any of the types (if any) and
    was added at or after `since` (if given)."""

    files: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    since: float | None = None  # seconds since 1970

    @classmethod
    def of(
        cls,
        files: Sequence[str] | str | None = None,
        file_types: Sequence[str] | str | None = None,
        since: Since = None,
    ) -> Within | None:
        """The filter these arguments ask for, or None when they ask for none (empty lists and
        blank strings too). A single string may list several, separated by commas."""
        names = tuple(_listed(files))
        types = tuple(dict.fromkeys(normal_type(t) for t in _listed(file_types)))
        moment = to_timestamp(since)
        if not names and not types and moment is None:
            return None
        return cls(names, types, moment)

    def matches(self, doc: DocInfo) -> bool:
        if self.since is not None and doc.added < self.since:
            return False
        if self.types and not (doc_type(doc) in self.types or doc.kind in self.types):
            return False
        return not self.files or any(_names(doc, f) for f in self.files)

    def doc_ids(self, docs: Iterable[DocInfo]) -> frozenset[str]:
        """The ids of the documents of `docs` this filter lets through."""
        return frozenset(d.doc_id for d in docs if self.matches(d))

    def unknown_files(self, docs: Iterable[DocInfo]) -> list[str]:
        """The files named here that name none of `docs` (typing mistakes, to be told)."""
        docs = list(docs)
        return [f for f in self.files if not any(_names(d, f) for d in docs)]

    def describe(self) -> str:
        """In words, for a page or a log: 'files a.pdf, b.txt · types pdf · added since …'."""
        parts = []
        if self.files:
            parts.append(f"file{'s' if len(self.files) > 1 else ''} {', '.join(self.files)}")
        if self.types:
            parts.append(f"type{'s' if len(self.types) > 1 else ''} {', '.join(self.types)}")
        if self.since is not None:
            moment = datetime.fromtimestamp(self.since)
            shown = moment.strftime(
                "%Y-%m-%d" if moment.time() == moment.min.time() else "%Y-%m-%d %H:%M"
            )
            parts.append(f"added since {shown}")
        return " · ".join(parts)

    def as_dict(self) -> dict[str, object]:
        """The filter as data (an export's settings): lists and an ISO time, empty ones left out."""
        found: dict[str, object] = {}
        if self.files:
            found["files"] = list(self.files)
        if self.types:
            found["types"] = list(self.types)
        if self.since is not None:
            found["since"] = datetime.fromtimestamp(self.since).astimezone().isoformat()
        return found


def doc_type(doc: DocInfo) -> str:
    """A document's type: its file's extension, lower case ('pdf'), or its kind without one."""
    return file_type(doc.source) or doc.kind


def file_type(source: str) -> str:
    """The extension of `source`, lower case and without its dot ('' when it has none)."""
    return PureWindowsPath(source).suffix.lower().lstrip(".")  # either kind of slash


def normal_type(text: str) -> str:
    return text.strip().lower().lstrip(".")


def to_timestamp(since: Since) -> float | None:
    """`since` as seconds since 1970 (module docstring's forms); None for None or ''."""
    if since is None or (isinstance(since, str) and not since.strip()):
        return None
    if isinstance(since, datetime):
        return since.timestamp()
    if isinstance(since, date):
        return datetime(since.year, since.month, since.day).timestamp()
    if isinstance(since, bool) or not isinstance(since, (int, float, str)):
        raise ValueError(f"since must be a date, a time or an age, got {type(since).__name__}")
    if isinstance(since, (int, float)):
        return float(since)
    age = _AGE.fullmatch(since)
    if age:
        return time.time() - float(age.group(1)) * _AGE_SECONDS[age.group(2).lower()]
    try:
        return datetime.fromisoformat(since.strip()).timestamp()
    except ValueError:
        raise ValueError(
            f"since must be a date or time in ISO 8601 (2025-03-01, 2025-03-01T14:30) or an age "
            f"(7d, 12h, 30m), got {since!r}"
        ) from None


def _listed(given: Sequence[str] | str | None) -> list[str]:
    """The names in `given`: a list of them, or one string of them separated by commas."""
    if given is None:
        return []
    items = given.split(",") if isinstance(given, str) else list(given)
    return [str(x).strip() for x in items if str(x).strip()]


def _names(doc: DocInfo, name: str) -> bool:
    """Whether `name` (a source, a base name, a doc id or a pattern) names `doc`."""
    base = PurePath(PureWindowsPath(doc.source).as_posix()).name
    if name in (doc.source, base, doc.doc_id):
        return True
    if _GLOB.search(name):
        pattern = name.lower()
        return fnmatch.fnmatchcase(doc.source.lower(), pattern) or fnmatch.fnmatchcase(
            base.lower(), pattern
        )
    return False
