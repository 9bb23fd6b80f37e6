"""Hostile files built here, each a few kilobytes: cells a file declares by repetition or span
(number-columns-repeated, number-rows-repeated, gridSpan, one very wide row) are counted
before anything expands them, so each is refused (or read) at once, in little memory; and
an Excel number format shows the number as the sheet does."""

from __future__ import annotations

import io
import time
import tracemalloc
from collections.abc import Callable

import pytest
from factories import rezip

from qsearch.documents.cell_text import cell_text
from qsearch.documents.read import IngestError, Limits, ReadOptions, load

NO_OCR = ReadOptions(ocr=False)
FEW_CELLS = Limits(max_cells=100_000)
# Python's allocations while a file is read: a few MB for these small files; expanding what
# they declare would take hundreds (measured before the counts came first: see each test)
MAX_PEAK_MB = 40


def read_costs(path, limits: Limits = FEW_CELLS) -> tuple[str, float, float]:
    """(the text or the reason, seconds, peak MB of Python allocations) of reading `path`."""
    tracemalloc.start()
    started = time.monotonic()
    try:
        outcome = load(path, limits, NO_OCR).text
    except IngestError as e:
        outcome = e.reason
    finally:
        seconds = time.monotonic() - started
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return outcome, seconds, peak


def _xlsx(edit_sheet: Callable[[bytes], bytes] = lambda xml: xml) -> bytes:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Q3"
    sheet.append(["Region", "Sales"])
    sheet.append(["North", 1204])
    out = io.BytesIO()
    book.save(out)
    return rezip(out.getvalue(), "xl/worksheets/sheet1.xml", edit_sheet)


MAIN = b"http://schemas.openxmlformats.org/spreadsheetml/2006/main"


@pytest.mark.parametrize("prefix", [b"", b"x:"])
def test_a_row_of_many_cells_is_refused_before_openpyxl_builds_it(tmp_path, prefix):
    """Before: openpyxl built the whole row (here 131 MB; 8 million cells: 3.6 GB, 48 s) and
    only then were its cells counted. A namespace prefix (<x:c>) hides nothing."""
    cell = b"<%sc><%sv>1</%sv></%sc>" % (prefix, prefix, prefix, prefix)
    wide = b'<row r="3">' + cell * 300_000 + b"</row></sheetData>"
    named = b'<worksheet xmlns:x="%s" ' % MAIN
    path = tmp_path / "wide.xlsx"
    path.write_bytes(
        _xlsx(lambda xml: xml.replace(b"</sheetData>", wide).replace(b"<worksheet ", named, 1))
    )
    reason, seconds, peak = read_costs(path)
    assert reason == "too many cells: over 100,000 stored in its sheets"
    assert peak < MAX_PEAK_MB and seconds < 5, (peak, seconds)


def test_a_sheet_skipping_two_billion_rows_is_refused_not_read_until_the_deadline(tmp_path):
    """openpyxl yields an empty row for each row number a sheet skips: each counts."""
    path = tmp_path / "gap.xlsx"
    path.write_bytes(_xlsx(lambda xml: xml.replace(b'r="2"', b'r="2000000000"')))
    reason, seconds, _ = read_costs(path, Limits(max_cells=20_000))
    assert reason.startswith('too many cells: over 20,000 by sheet "Q3" row') and seconds < 5


def _odf(kind: str, rows: list[tuple[list[str], int]], columns: int = 1) -> bytes:
    """An OpenDocument file of `kind` holding one table: each row's texts, repeated `times`;
    its first cell repeated across `columns` columns."""
    import odfdo

    document, table = odfdo.Document(kind), odfdo.Table("S")
    for texts, times in rows:
        row = odfdo.Row()
        row.repeated = times if times > 1 else None
        for i, text in enumerate(texts):
            cell = odfdo.Cell(text)
            cell.repeated = columns if i == 0 and columns > 1 else None
            row.append(cell)
        table.append(row)
    if kind == "presentation":
        frame = odfdo.Frame(size=("20cm", "10cm"), position=("1cm", "1cm"))
        frame.append(table)
        page = odfdo.DrawPage("p1")
        page.append(frame)
        document.body.append(page)
    else:
        document.body.append(table)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


@pytest.mark.parametrize(
    "name, rows, columns, where",
    [
        # before: a list of 50 million references built first (400 MB; 1e9 was 8 GB)
        ("wide.ods", [(["North", "1204"], 1)], 50_000_000, 'sheet "S" row 1'),
        # before: no count at all; a million rows made whole (1e8 was 3.7 GB)
        ("long.odt", [(["Region", "Sales"], 1), (["North", "1204"], 1_000_000)], 1, "table row 2"),
        ("long.odp", [(["Region", "Sales"], 1), (["North", "1204"], 1_000_000)], 1, "table row 2"),
    ],
)
def test_repeated_opendocument_cells_are_counted_before_they_are_repeated(
    tmp_path, name, rows, columns, where
):
    path = tmp_path / name
    path.write_bytes(
        _odf({"s": "spreadsheet", "t": "text", "p": "presentation"}[name[-1]], rows, columns)
    )
    reason, seconds, peak = read_costs(path)
    assert reason.startswith("too many cells: over 100,000 by ") and reason.endswith(where), reason
    assert peak < MAX_PEAK_MB and seconds < 5, (peak, seconds)


def test_repeated_opendocument_rows_under_the_limit_still_read(tmp_path):
    path = tmp_path / "few.ods"
    path.write_bytes(_odf("spreadsheet", [(["Region", "Sales"], 1), (["North", "1204"], 3)]))
    assert load(path, options=NO_OCR).text.count("Region: North \u00b7 Sales: 1204") == 3


def test_a_word_cell_spanning_millions_of_columns_is_read_once(tmp_path):
    """Before: python-docx's row.cells gave the cell once per spanned column: 50 million
    references to it (a 400 MB tuple, seconds), however small the file."""
    import docx

    document = docx.Document()
    table = document.add_table(rows=2, cols=2)
    for (r, c), text in {(0, 0): "Region", (0, 1): "Sales", (1, 0): "North"}.items():
        table.cell(r, c).text = text
    table.cell(1, 1).text = "1204"
    table.cell(1, 0)._tc.grid_span = 50_000_000  # python-docx's own writer of <w:gridSpan>
    path = tmp_path / "span.docx"
    document.save(path)
    text, seconds, peak = read_costs(path, Limits())
    assert text == "Region: North \u00b7 Sales: 1204", text
    assert peak < MAX_PEAK_MB and seconds < 5, (peak, seconds)


# --- number formats ------------------------------------------------------------------------

FORMATS = [  # (format code, value, as Excel shows it)
    ("#,##0.00_);[Red](#,##0.00)", 1234.5, "1,234.50"),
    ("#,##0.00_);[Red](#,##0.00)", -1234.5, "-1,234.50"),
    ('#,##0.00 "€"', 1234.5, "1,234.50 €"),
    ("0.00%;[Red]-0.00%", 0.1234, "12.34%"),
    ("#,##0.00", 1234.5, "1,234.50"),
    ('_-* #,##0.00 "€"_-;-* #,##0.00 "€"_-;_-* "-"?? "€"_-;_-@_-', 1234.5, "1,234.50 €"),
    ('_("$"* #,##0.00_);_("$"* \\(#,##0.00\\);_("$"* "-"??_);_(@_)', 1234.5, "$1,234.50"),
    ("[$€-407] #,##0.00", 1234.5, "€ 1,234.50"),
    ("0", 2.5, "3"),  # half away from zero, as Excel rounds
    ("0.00", 7, "7.00"),
    ("0%", 0.5, "50%"),
    ("0.00E+00", 1234.5, "1.23E+03"),
    ("General", 1234.5, "1234.5"),
    ("General", 7.0, "7"),
    ("000-0000", 5551234, "5551234"),  # a pattern: the number as stored
]


@pytest.mark.parametrize("code, value, shown", FORMATS)
def test_a_number_shows_as_its_format_says(code, value, shown):
    assert cell_text(value, code) == shown


def test_number_formats_through_a_real_workbook(tmp_path):
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Format", "Amount"])
    for code, value, _ in FORMATS:
        sheet.append([code, value])
        sheet.cell(sheet.max_row, 2).number_format = code
    book.save(tmp_path / "formats.xlsx")
    lines = load(tmp_path / "formats.xlsx").text.split("\n\n")[1:]
    assert [line.rsplit("Amount: ", 1)[1] for line in lines] == [s for *_, s in FORMATS]
