"""Spreadsheets (.xlsx with openpyxl, .xls with xlrd, .csv/.tsv; .ods in opendoc.py) -> one part
per row, each a record that keeps its header names: "Region: North · Q3: 1,204".

The header is the first row of two or more cells that are all words, or words and years
("Category | 2021 | 2022"); rows above it, such as a title, read as they are. A title of two
cells or more looks like a header too: until a row has been read under it, a header-like row
that fills a column it leaves empty takes its place (and the title reads as it is), so the
names sit over the data. A cell under no name gives its value alone; a sheet without a header
gives its rows' values joined by " | ". Each
row is a part labelled with its sheet and row number as the spreadsheet shows them, so a
passage says 'sheet "Q3", rows 2–40'. Every cell counts against `Limits.max_cells`.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
import zipfile
from collections.abc import Iterable, Sequence
from typing import IO, Any

from ..types import Deadline, Extracted, IngestError, Part, ReadOptions
from .cell_text import cell_text
from .containers import OLE2, check_zip, quoted, unreadable
from .text import decode_text

Row = tuple[int, list[str]]  # (row number as the sheet shows it, each cell's text)
_NUMBER = re.compile(r"[-+]?[\d.,\s%]+|[-+]?\d[\d.,]*[eE][-+]?\d+")
_YEAR = re.compile(r"(1[89]|2[01])\d\d")  # a column named by a year: 1800 to 2199
_ROW_OR_CELL = re.compile(rb"<(?:[^\s/<>:!?]+:)?(row|c)[\s/>]")  # <row>, <c>, <x:c ...>
_NAME_ENDS = re.compile(rb"[\s/>]")
MAX_ROW_CELLS = 16_384  # the most columns Excel and LibreOffice allow in a sheet


class Cells:
    """Counts a file's cells against its limit (IngestError past it) and checks its deadline."""

    def __init__(self, source: str, deadline: Deadline):
        self.source, self.deadline, self.count = source, deadline, 0

    def row(self, width: int, where: str) -> None:
        """Refuse a row wider than any spreadsheet's (MAX_ROW_CELLS)."""
        if width > MAX_ROW_CELLS:
            raise IngestError(self.source, too_wide(width, where))

    def take(self, n: int, where: str) -> None:
        self.count += n
        limit = self.deadline.limits.max_cells
        if self.count > limit:
            raise IngestError(self.source, f"too many cells: over {limit:,} by {where}")
        self.deadline.check(self.source, where)


def too_wide(width: int, where: str) -> str:
    return f"a row of {width:,} cells ({where}): a spreadsheet row holds at most {MAX_ROW_CELLS:,}"


def _is_header(cells: Sequence[str]) -> bool:
    """Two or more cells, all words, or words and years (a column per year)."""
    filled = [c for c in cells if c]
    numbers = [c for c in filled if _is_number(c)]
    return (
        len(filled) >= 2
        and len(numbers) < len(filled)
        and all(_YEAR.fullmatch(c.strip()) for c in numbers)
    )


def _fills_more(cells: Sequence[str], header: Sequence[str]) -> bool:
    """Whether `cells` fill a column `header` leaves without a name (a title over the table)."""
    return any(c and not (i < len(header) and header[i]) for i, c in enumerate(cells))


def _is_number(text: str) -> bool:
    """A number as a sheet shows it, currency symbols and brackets around it included."""
    bare = "".join(c for c in text if unicodedata.category(c) != "Sc" and c not in "()")
    return bool(_NUMBER.fullmatch(bare.strip()))


def add_sheet(found: Extracted, name: str | None, rows: Iterable[Row]) -> None:
    """Append a sheet's rows to `found` as parts: records under the header, once it is found.
    `name` is None for a file of one table (.csv), whose parts are just "row N"."""
    header: list[str] | None = None
    heading = f"## Sheet {quoted(name)}\n\n" if name is not None else ""
    pending: Row | None = None  # a header candidate, kept until a row follows it
    for number, cells in rows:
        if not any(cells):
            continue
        if _is_header(cells) and (header is None or (pending and _fills_more(cells, header))):
            if pending is not None:  # what looked like the header was a title: read as it is
                heading = _append(found, name, *pending, None, heading)
            pending, header = (number, cells), cells
            continue
        heading = _append(found, name, number, cells, header, heading)
        pending = None
    if pending is not None:  # a header and nothing under it: its names are the sheet's text
        _append(found, name, *pending, None, heading)


def _append(
    found: Extracted,
    name: str | None,
    number: int,
    cells: list[str],
    header: list[str] | None,
    heading: str,
) -> str:
    """Append one row; returns the heading still to write (only the sheet's first row has it)."""
    text = record(header, cells) if header is not None else " | ".join(c for c in cells if c)
    where = f"sheet {quoted(name)}, " if name is not None else ""
    found.pages.append(heading + text)
    found.parts.append(Part(f"{where}row {number}", number, f"{where}rows "))
    return ""


def record(header: Sequence[str], cells: Sequence[str]) -> str:
    """A row under its header: 'Region: North · Q3: 1,204' (a cell without a name: its value)."""
    named = (
        f"{header[i]}: {c}" if i < len(header) and header[i] else c for i, c in enumerate(cells)
    )
    return " \u00b7 ".join(text for text, c in zip(named, cells) if c)


def table_lines(rows: Sequence[Sequence[str]]) -> list[str]:
    """A table in a document (.docx, .pptx, .odt) as lines: records when its first row is a
    header, else cells joined by " | "."""
    rows = [[" ".join(c.split()) for c in row] for row in rows]
    rows = [r for r in rows if any(r)]
    if len(rows) >= 2 and _is_header(rows[0]):
        return [record(rows[0], r) for r in rows[1:]]
    return [" | ".join(c for c in r if c) for r in rows]


# --- the loaders -------------------------------------------------------------------------------


def load_xlsx(data: bytes, source: str, deadline: Deadline, options: ReadOptions) -> Extracted:
    check_zip(data, source, deadline.limits, "Excel workbook (.xlsx)", "xl/workbook.xml")
    import openpyxl

    found, cells = (
        Extracted("sheet", [], no_text_reason="every sheet is empty"),
        Cells(source, deadline),
    )
    try:
        limit = deadline.limits.max_cells
        count, widest = stored_cells(data, limit)
        if count > limit:
            raise IngestError(source, f"too many cells: over {limit:,} stored in its sheets")
        if widest > MAX_ROW_CELLS:
            raise IngestError(source, too_wide(widest, "stored in a sheet"))
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except IngestError:
        raise
    except Exception as e:  # noqa: BLE001 - openpyxl raises many kinds on damaged files
        raise unreadable(source, ".xlsx", e) from None
    try:
        for sheet in book.worksheets:
            add_sheet(found, sheet.title, _xlsx_rows(sheet, cells))
    except IngestError:
        raise
    except Exception as e:  # noqa: BLE001
        raise unreadable(source, ".xlsx", e) from None
    finally:
        book.close()
    return found


def stored_cells(data: bytes, limit: int) -> tuple[int, int]:
    """(the cells (<c> elements) stored in an .xlsx, the most in one row), counted in its XML
    before openpyxl reads it (stopping once over `limit`): openpyxl builds each row whole before
    it yields it (one row of 8 million cells took 3.6 GB; of 1 million, 20 s), and finding a
    sheet's size may parse all its rows. Every part is counted (a sheet may be stored under any
    name) but xl/calcChain.xml, which lists formula cells again. Under the limits a row is still
    built whole: the reader's memory cap (pool.py) bounds that."""
    count, widest = 0, 0
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        for info in z.infolist():
            if info.filename != "xl/calcChain.xml" and count <= limit:
                with z.open(info) as member:
                    cells, wide = _count_cells(member, limit - count)
                    count, widest = count + cells, max(widest, wide)
    return count, widest


def _count_cells(member: IO[bytes], limit: int) -> tuple[int, int]:
    count, widest, in_row, rest = 0, 0, 0, b""
    while count <= limit and (chunk := member.read(2**20)):
        block = rest + chunk
        cut = block.rfind(b"<")
        if cut < 0 or _NAME_ENDS.search(block, cut):  # the last tag's name is complete
            cut = len(block)
        for match in _ROW_OR_CELL.finditer(block, 0, cut):  # none that starts before `cut`
            if match.group(1) == b"c":  # crosses it
                count, in_row = count + 1, in_row + 1
            else:
                widest, in_row = max(widest, in_row), 0
        rest = block[cut:]
    for match in _ROW_OR_CELL.finditer(rest):
        count, in_row = (count + 1, in_row + 1) if match.group(1) == b"c" else (count, 0)
    return count, max(widest, in_row)


def _xlsx_rows(sheet: Any, cells: Cells) -> Iterable[Row]:
    sheet.reset_dimensions()  # rows as stored, not padded to a (often wrong) declared width
    for number, row in enumerate(sheet.iter_rows(), 1):
        # an empty row counts as a cell: openpyxl yields one for each row number a sheet skips,
        # and a row numbered 2,000,000,000 would otherwise be read until the deadline
        cells.take(max(len(row), 1), f'sheet "{sheet.title}" row {number}')
        yield number, [cell_text(c.value, getattr(c, "number_format", "") or "") for c in row]


def load_xls(data: bytes, source: str, deadline: Deadline, options: ReadOptions) -> Extracted:
    import xlrd

    if not data.startswith(OLE2):
        hint = " (it is a zip: an .xlsx named .xls?)" if data.startswith(b"PK") else ""
        raise IngestError(source, f"not a readable .xls{hint}")
    found, cells = (
        Extracted("sheet", [], no_text_reason="every sheet is empty"),
        Cells(source, deadline),
    )
    try:
        book = xlrd.open_workbook(file_contents=data, on_demand=True, logfile=io.StringIO())
        for index in range(book.nsheets):
            sheet = book.sheet_by_index(index)
            cells.take(sheet.nrows * sheet.ncols, f'sheet "{sheet.name}"')
            rows = (
                (r + 1, [_xls_cell(c, book.datemode) for c in sheet.row(r)])
                for r in range(sheet.nrows)
            )
            add_sheet(found, sheet.name, rows)
    except IngestError:
        raise
    except Exception as e:  # noqa: BLE001 - xlrd raises many kinds on damaged files
        raise unreadable(source, ".xls", e) from None
    return found


def _xls_cell(cell: Any, datemode: int) -> str:
    import xlrd

    if cell.ctype == xlrd.XL_CELL_DATE:
        try:
            return cell_text(xlrd.xldate_as_datetime(cell.value, datemode))
        except (ValueError, OverflowError, xlrd.xldate.XLDateError):
            return cell_text(cell.value)
    if cell.ctype == xlrd.XL_CELL_BOOLEAN:
        return cell_text(bool(cell.value))
    if cell.ctype in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK, xlrd.XL_CELL_ERROR):
        return ""
    return cell_text(cell.value)


def load_csv(data: bytes, source: str, deadline: Deadline, options: ReadOptions) -> Extracted:
    """A .csv (its delimiter sniffed: comma, semicolon, tab or bar) or .tsv file."""
    text = decode_text(data, source)
    if source.lower().endswith(".tsv"):
        dialect: Any = csv.excel_tab
    else:
        try:
            dialect = csv.Sniffer().sniff(text[:65536], delimiters=",;\t|")
        except csv.Error:  # one column, or no consistent delimiter
            dialect = csv.excel
    found, cells = (
        Extracted("sheet", [], no_text_reason="every row is empty"),
        Cells(source, deadline),
    )
    try:
        reader = csv.reader(io.StringIO(text, newline=""), dialect)
        add_sheet(found, None, _csv_rows(reader, cells))
    except csv.Error as e:
        raise unreadable(source, "CSV file", e) from None
    return found


def _csv_rows(reader: Iterable[list[str]], cells: Cells) -> Iterable[Row]:
    for number, row in enumerate(reader, 1):
        cells.take(len(row), f"row {number}")
        cells.row(len(row), f"row {number}")
        yield number, [" ".join(c.split()) for c in row]
