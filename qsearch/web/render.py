"""Hits and collections -> HTML for the web app. Every piece of document text is escaped.

Pure functions with inline styles, so they work in any Gradio theme and are easy to test:
the only markup added to document text is <mark> around query terms, and the terms are
found in the raw text before escaping, so nothing in a document can become markup.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from functools import lru_cache

from ..store.analysis import language_of, query_terms, term_spans, tokenize
from ..types import HIT_FIELDS, AddReport, Hit

_BAR = (
    "display:inline-block;height:8px;border-radius:4px;vertical-align:middle;"
    "background:{color};width:{width:.0f}px"
)
SNIPPET_SENTENCES = 2  # a card shows its passage's best sentences, the rest one click away
SHORT = 320  # a passage this short (characters) is shown whole
_SENTENCE = re.compile(r"[^.!?\n\u3002\uff01\uff1f]+[.!?\u3002\uff01\uff1f]*")


@lru_cache(maxsize=65536)
def _stems(text: str, language: str) -> frozenset[str]:
    """The search terms of `text` as BM25 makes them in `language` (stemmed, no stop words)."""
    return frozenset(tokenize(text, language))


def highlight(text: str, query: str) -> str:
    """`text` escaped, with the words BM25 matches for `query` wrapped in <mark>."""
    spans = term_spans(text, query)  # the words BM25 matched, stems included
    out, last = [], 0
    for start, end in spans:
        out.append(html.escape(text[last:start]))
        out.append(f"<mark>{html.escape(text[start:end])}</mark>")
        last = end
    out.append(html.escape(text[last:]))
    return "".join(out)


def snippet(text: str, query: str) -> str:
    """The passage's sentences that share the most terms with the query (in their order), with
    an ellipsis where text was left out; the first sentences when none does."""
    sentences = [m for m in _SENTENCE.finditer(text) if m.group().strip()]
    language = language_of(text, fallback=language_of(query))  # the passage's, as BM25 read it
    terms = frozenset(query_terms(query, [language]))
    score = {id(m): len(terms & _stems(m.group(), language)) for m in sentences}
    best = sorted(sentences, key=lambda m: -score[id(m)])[:SNIPPET_SENTENCES]
    best = sorted(best, key=lambda m: m.start())
    parts, end = [], 0
    for m in best:
        parts.append(("… " if m.start() > end else "") + m.group().strip())
        end = m.end()
    return " ".join(parts) + (" …" if end < len(text.rstrip()) else "")


BARS = (  # (Hit.to_dict key, colour): each bar on its own 0..1 scale, explained by HIT_FIELDS
    ("meaning", "#2563eb"),
    ("keywords", "#d97706"),
    ("overall", "#7c3aed"),
    ("rerank", "#16a34a"),
)
WEAK_COLOR = "#9ca3af"  # a weak match's bars are grey, whatever they measure
WEAK_NOTE = "weak match: below the minimum relevance"
NO_STRONG_MATCH = (
    "No strong match: none of these passages reaches the minimum relevance, so they probably "
    "don't answer your query. Try other words, or upload documents that cover it."
)
LEGEND = (
    '<div class="qs-legend" style="font-size:0.85em;color:#4b5563">'
    + "<br>".join(
        f'<span style="display:inline-block;width:10px;height:10px;border-radius:2px;'
        f'background:{color}"></span> <b>{key}</b>: {html.escape(HIT_FIELDS[key])}'
        for key, color in BARS
    )
    + f'<br><span style="display:inline-block;width:10px;height:10px;border-radius:2px;'
    f'background:{WEAK_COLOR}"></span> <b>faded, grey bars</b>: a weak match, '
    f"{html.escape(HIT_FIELDS['weak'].removeprefix('true when '))}; weak matches are folded "
    "under “weak matches hidden” (Search options: Minimum relevance)"
    "</div>"
)


def bar(value: float, color: str, width: int = 100) -> str:
    """A horizontal bar for a value in [0, 1]."""
    value, track = min(max(value, 0.0), 1.0), "background:#e5e7eb;border-radius:4px"
    return (
        f'<span style="display:inline-block;width:{width}px;{track}">'
        f'<span class="qs-bar" style="{_BAR.format(color=color, width=value * width)}"></span>'
        "</span>"
    )


def where(hit: Hit) -> str:
    """'file.pdf, page 3', 'file.pdf, pages 3-4 (OCR)', 'deck.pptx, slide 2 "Results"' (a part
    of a file without pages) or just the file name."""
    name = hit.source.replace("\\", "/").rsplit("/", 1)[-1]
    if hit.page is None:
        return f"{name}, {hit.where}" if hit.where else name
    ocr = " (OCR)" if hit.ocr else ""
    if hit.page_end is not None and hit.page_end != hit.page:
        return f"{name}, pages {hit.page}\u2013{hit.page_end}{ocr}"
    return f"{name}, page {hit.page}{ocr}"


def breakdown(h: Hit) -> dict[str, float | None]:
    """The card's bars by their Hit.to_dict names (None when a bar doesn't apply)."""
    fields = h.to_dict()
    return {key: fields[key] for key, _ in BARS}


def movement(h: Hit) -> str:
    """'↑5, was #6', '↓2, was #1' or 'same place' after a rerank; '' without one."""
    if h.retrieval_rank is None:
        return ""
    moved = h.retrieval_rank - h.rank
    if not moved:
        return "same place"
    arrow = "\u2191" if moved > 0 else "\u2193"
    return f"{arrow}{abs(moved)}, was #{h.retrieval_rank}"


def _card(h: Hit, query: str, *, collection: bool = False) -> str:
    """One result: where it is from, its bars (grey and faded when it is a weak match), its text."""
    scores = breakdown(h)
    rows = [
        f'<div class="qs-score qs-{key}" title="{html.escape(HIT_FIELDS[key])}" '
        f'data-value="{scores[key]:.4f}"><span style="display:inline-block;width:70px">{key}</span>'
        f"{bar(scores[key], WEAK_COLOR if h.weak else color)} "
        f"<small>{scores[key]:.2f}</small></div>"
        for key, color in BARS
        if scores[key] is not None
    ]
    moved = movement(h)
    badge = (
        f' <span class="qs-move" style="color:#15803d;font-size:0.9em">{moved}</span>'
        if moved
        else ""
    )
    if h.weak:
        badge += (
            f' <span class="qs-weak-note" style="color:#6b7280;font-size:0.9em">{WEAK_NOTE}</span>'
        )
    if collection and h.collection:  # hits of several collections say which one
        badge += (
            ' <span class="qs-collection" style="color:#4b5563;font-size:0.9em;border:1px solid '
            f'#d1d5db;border-radius:4px;padding:0 4px">{html.escape(h.collection)}</span>'
        )
    kind, fade = ("qs-card qs-weak", "opacity:0.55;") if h.weak else ("qs-card", "")
    return (
        f'<div class="{kind}" data-weak="{str(h.weak).lower()}" style="{fade}border:1px solid '
        '#d1d5db;border-radius:8px;padding:8px 12px;margin:6px 0"><div style="display:flex;'
        f'gap:12px;align-items:center;flex-wrap:wrap"><b>#{h.rank}</b> <span class="qs-source">'
        f'{html.escape(where(h))}</span>{badge}</div><div style="margin:4px 0;font-size:0.85em;'
        f'display:flex;flex-wrap:wrap;gap:2px 16px">{"".join(rows)}</div>'
        f"{_passage(h.text, query, sheet=is_sheet_part(h.where))}"
        "</div>"
    )


def _passage(text: str, query: str, *, sheet: bool = False) -> str:
    """A short passage whole; a long one as its best sentences, the whole one click away; a
    sheet's rows as a small table under their column names."""
    table = sheet_table(text, query) if sheet else None
    if table is not None:
        return table
    style = "white-space:pre-wrap;line-height:1.4"
    if len(text) <= SHORT:
        return f'<div class="qs-text" style="{style}">{highlight(text, query)}</div>'
    return (
        f'<div class="qs-snippet" style="line-height:1.4">{highlight(snippet(text, query), query)}'
        f'</div><details class="qs-more"><summary style="cursor:pointer;color:#4b5563">'
        f'whole passage</summary><div class="qs-text" style="{style}">{highlight(text, query)}'
        "</div></details>"
    )


SHEET_ROWS = 4  # a sheet passage's rows shown on its card; the rest one click away
_FIELD = " \u00b7 "  # between a record's cells (documents/sheets.py)
_TABLE = "border-collapse:collapse;font-size:0.85em;margin:4px 0"
_CELL = "border:1px solid #e5e7eb;padding:2px 6px;text-align:left;vertical-align:top"


def is_sheet_part(where_: str | None) -> bool:
    """Whether a passage lies in a spreadsheet's rows ('sheet "Q3", rows 2–9', 'row 4' of a CSV)."""
    return bool(where_) and where_.startswith(('sheet "', "row ", "rows "))  # type: ignore[union-attr]


def records(text: str) -> tuple[list[str], list[dict[str, str]], list[str]]:
    """A sheet passage's rows read back from their text ("Region: North · Q3: 1,204" per line,
    documents/sheets.py): (the column names in order, one dict per row, the other lines: a sheet's
    heading, a title, a row of one cell). A cell under no name is under "" (or "#2", "#3"...)."""
    columns: dict[str, None] = {}
    rows, other = [], []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        fields = line.split(_FIELD)
        if line.startswith("## ") or len(fields) < 2:  # a heading, a title, a row without names
            other.append(line)
            continue
        row, unnamed = {}, 0
        for field_ in fields:
            name, sep, value = field_.partition(": ")
            if not sep:
                unnamed += 1
                name, value = "" if unnamed == 1 else f"#{unnamed}", field_
            row[name] = value
            columns.setdefault(name, None)
        rows.append(row)
    return list(columns), rows, other


def sheet_table(text: str, query: str, shown: int = SHEET_ROWS) -> str | None:
    """A sheet passage as a table: its column names over its rows (the rows that share the most
    terms with the query first on the card, the whole table one click away); cells escaped, the
    query's terms marked. None when the text holds no named cell (not records)."""
    columns, rows, other = records(text)
    if not rows or all(c == "" or c.startswith("#") for c in columns):
        return None
    language = language_of(text, fallback=language_of(query))
    terms = frozenset(query_terms(query, [language]))
    score = [len(terms & _stems(" ".join(r.values()), language)) for r in rows]
    best = sorted(sorted(range(len(rows)), key=lambda i: -score[i])[:shown])  # in sheet order
    lines = "".join(
        "<div class='qs-sheet-line' style='color:#4b5563'>"
        f"{highlight(o.removeprefix('## '), query)}</div>"
        for o in other
    )
    card = f"<div class='qs-text'>{lines}{_table(columns, [rows[i] for i in best], query)}</div>"
    if len(best) == len(rows):
        return card
    return (
        f"{card}<details class='qs-more'><summary style='cursor:pointer;color:#4b5563'>"
        f"all {len(rows)} rows ({len(rows) - len(best)} more)</summary>"
        f"{_table(columns, rows, query)}</details>"
    )


def _table(columns: list[str], rows: list[dict[str, str]], query: str) -> str:
    """Rows under their column names, as an HTML table (names and cells escaped)."""
    head = "".join(
        f"<th style='{_CELL};background:#f9fafb'>{html.escape('' if c.startswith('#') else c)}</th>"
        for c in columns
    )
    body = "".join(
        "<tr>"
        + "".join(f"<td style='{_CELL}'>{highlight(r.get(c, ''), query)}</td>" for c in columns)
        + "</tr>"
        for r in rows
    )
    return f"<table class='qs-sheet' style='{_TABLE}'><thead><tr>{head}</tr></thead>{body}</table>"


def progress_html(desc: str, fraction: tuple[int, int] | None) -> str:
    """An upload's progress where its report will appear: a bar and qsearch's own words (stage,
    count, ETA at this run's pace)."""
    done, total = fraction or (0, 0)
    share = done / total if total else 0.0
    return (
        f"<div class='qs-progress' data-done='{done}' data-total='{total}' "
        "style='padding:6px 0;color:#374151'>"
        f"{bar(share, '#7c3aed', width=240)} <span class='qs-progress-text'>"
        f"{html.escape(desc or 'starting')}</span></div>"
    )


def hits_html(
    hits: Sequence[Hit], query: str, timings_ms: dict[str, float], *, notice: str = ""
) -> str:
    """Ranked result cards: source and page, score bars (each on its own 0..1 scale), passage.
    The weak matches (Hit.weak: below the minimum relevance, decided once by search/strength.py)
    are drawn faded and folded under "N weak matches hidden", one click away; "No strong match"
    shows exactly when every card is weak. `notice` above them."""
    times = " \u00b7 ".join(f"{k.removesuffix('_ms')} {v:.0f} ms" for k, v in timings_ms.items())
    strong, weak = [h for h in hits if not h.weak], [h for h in hits if h.weak]
    notices = [notice] if notice else []
    if hits and not strong:
        notices.append(NO_STRONG_MATCH)
    head = "".join(
        f'<div class="qs-notice" style="color:#92400e">{html.escape(n)}</div>' for n in notices
    )
    several = len({h.collection for h in hits}) > 1  # cards then say which collection
    folded = ""
    if weak:
        plural = "es" if len(weak) > 1 else ""
        folded = (
            f'<details class="qs-weak-fold" data-count="{len(weak)}"><summary '
            'style="cursor:pointer;color:#4b5563;margin:6px 0">'
            f"{len(weak)} weak match{plural} hidden (below the minimum relevance)</summary>"
            f"{''.join(_card(h, query, collection=several) for h in weak)}</details>"
        )
    foot = (
        f'<div class="qs-timings" style="color:#6b7280;font-size:0.85em">{times}</div>'
        if times
        else ""
    )
    cards = "".join(_card(h, query, collection=several) for h in strong)
    return f'<div class="qs-results">{head}{cards}{folded}{foot}</div>'


def message_html(text: str) -> str:
    """A plain message in the results area (empty index, empty query, no match)."""
    return f'<div class="qs-message" style="padding:16px;color:#374151">{html.escape(text)}</div>'


def files_html(rows: Sequence[tuple[str, int, int | None]]) -> str:
    """The indexed files as a table: name, chunks, pages; names escaped."""
    if not rows:
        return message_html("No documents yet: upload files or load the samples.")
    body = "".join(
        f"<tr><td>{html.escape(name)}</td><td style='text-align:right'>{chunks}</td>"
        f"<td style='text-align:right'>{pages if pages else ''}</td></tr>"
        for name, chunks, pages in rows
    )
    total = sum(r[1] for r in rows)
    return (
        "<table class='qs-files' style='width:100%'><thead><tr>"
        "<th style='text-align:left'>file</th>"
        f"<th>chunks</th><th>pages</th></tr></thead><tbody>{body}</tbody></table>"
        f"<small>{len(rows)} files, {total} chunks</small>"
    )


def report_html(report: AddReport, note: str = "") -> str:
    """What an upload did: a summary line, one line per file (its outcome, or why not), and a
    `note` about the whole collection (e.g. why it is not kept on disk)."""
    lines = []
    for f in report.files:
        if f.ok:
            pages = f", {_count(f.pages, 'page')}" if f.pages else ""
            ocr = (
                f", OCR on page{'s' if len(f.ocr_pages) > 1 else ''} {_numbers(f.ocr_pages)}"
                if f.ocr_pages
                else ""
            )
            notes = "".join(
                f'<br><small style="color:#92400e">{html.escape(n)}</small>' for n in f.notes
            )
            lines.append(
                f'<span style="color:#15803d">{f.status}</span> '
                f"<code>{html.escape(f.path)}</code>: "
                f"{_count(f.chunks, 'chunk')}{pages}{ocr}{notes}"
            )
        else:
            lines.append(
                f'<span style="color:#b91c1c">failed</span> <code>{html.escape(f.path)}</code>: '
                f"{html.escape(f.error or 'unknown error')}"
            )
    n_unchanged = sum(f.status == "unchanged" for f in report.files)
    summary = (
        f"<b>{len(report.indexed)} indexed, {n_unchanged} unchanged, "
        f"{len(report.errors)} failed</b> "
        f"in {report.seconds:.1f} s"
    )
    if note:
        lines.append(f'<span style="color:#92400e">Note: {html.escape(note)}.</span>')
    return f'<div class="qs-report">{"<br>".join([summary, *lines])}</div>'


def _numbers(pages: Sequence[int]) -> str:
    return ", ".join(map(str, pages[:10])) + (
        f" and {len(pages) - 10} more" if len(pages) > 10 else ""
    )


def _count(n: int, noun: str) -> str:
    """A count and its noun: 1 chunk, 3 chunks."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"
