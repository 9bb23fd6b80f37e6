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
