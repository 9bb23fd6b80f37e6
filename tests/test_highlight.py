"""Highlighting marks what BM25 matched: one analysis (store/analysis.py) for BM25, the result cards
and the page view, so stop words are never marked and stemmed matches always are."""

from __future__ import annotations

import re

from qsearch.store.analysis import query_terms, term_spans, tokenize
from qsearch.web.evidence import _terms
from qsearch.web.render import highlight

QUERY = "How are indexes built for the harbours?"
PASSAGE = "The indexing of the harbour and how the index is built are here."


def marked(html: str) -> list[str]:
    return re.findall(r"<mark>(.*?)</mark>", html)


def test_cards_mark_stemmed_matches_and_no_stop_words():
    assert marked(highlight(PASSAGE, QUERY)) == ["indexing", "harbour", "index", "built"]


def test_every_marked_word_is_one_bm25_matched():
    terms = set(query_terms(QUERY))
    for word in marked(highlight(PASSAGE, QUERY)):
        assert set(tokenize(word)) <= terms, word
    unmarked = re.sub(r"<mark>.*?</mark>", " ", highlight(PASSAGE, QUERY))
    assert not set(tokenize(unmarked)) & terms, "a word BM25 matched was left unmarked"


def test_the_page_view_outlines_the_same_words():
    assert sorted(_terms(PASSAGE, QUERY)) == ["built", "harbour", "index", "indexing"]
    assert _terms("The and are how what", "how are the things") == []


def test_document_text_is_escaped_around_the_marks():
    html = highlight("<b>indexes</b> & <script>", "indexes")
    assert html == "&lt;b&gt;<mark>indexes</mark>&lt;/b&gt; &amp; &lt;script&gt;"


def test_cjk_pairs_are_marked_as_bm25_matches_them():
    assert marked(highlight("我住在東京都。", "東京")) == ["東京"]
    assert term_spans("東京都", "東京 京都") == [(0, 3)], "overlapping pairs merge"


def test_a_sheet_passage_shows_as_a_table_under_its_column_names():
    """A sheet's rows on a card: the column names over the cells (escaped, terms marked), the
    rows that match the query on the card and the whole table one click away."""
    from qsearch.web.render import is_sheet_part, sheet_table

    rows = [f"Category: Grain {n} \u00b7 2021: {n} \u00b7 Change: 1" for n in range(6)]
    rows.insert(4, "Category: Milk <b>products</b> \u00b7 2021: 5,418 \u00b7 Change: -34")
    text = '## Sheet "Imports"\n\nFood imports | Source: X\n\n' + "\n\n".join(rows)
    table = sheet_table(text, "milk imports")
    head = re.findall(r"<th style=[^>]*>(.*?)</th>", table.split("<details")[0])
    assert head == ["Category", "2021", "Change"], head
    assert "<td" in table and "&lt;b&gt;products&lt;/b&gt;" in table and "<b>" not in table
    assert "<mark>Milk</mark>" in table and "Sheet &quot;<mark>Imports</mark>" in table
    card = table.split("<details")[0]
    assert card.count("<tr>") == 1 + 4 and "Milk" in card, "4 rows on the card, milk's among"
    assert "all 7 rows (3 more)" in table
    assert sheet_table("Plain prose without a record. Another sentence.", "x") is None
    from qsearch.types import Hit
    from qsearch.web.render import hits_html

    hit = Hit(1, 0.9, "food.xlsx", None, None, text, 0, len(text), "d", where='sheet "I", rows 1–8')
    assert "<table class='qs-sheet'" in hits_html([hit], "milk", {}), "a sheet's card: a table"
    prose = Hit(1, 0.9, "a.txt", None, None, "Category: Milk · 2021: 5", 0, 9, "d")
    assert "qs-sheet" not in hits_html([prose], "milk", {}), "only a sheet's rows"
    assert is_sheet_part('sheet "Q3", rows 2\u20139') and is_sheet_part("row 4")
    assert not is_sheet_part('slide 2 "Results"') and not is_sheet_part(None)
