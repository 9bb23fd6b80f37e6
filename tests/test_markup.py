"""Hostile web pages read in about linear time, their text kept, what was cut said in notes
(documents/markup.py, documents/webpage.py). Each page is a few MB at most; times are bounds
with room for a loaded machine (measured on 2 shared cores: docs/reliability.md)."""

from __future__ import annotations

import time

import pytest

from qsearch.documents.markup import MAX_ATTRIBUTES, MAX_DEPTH, MAX_TAGS, rewrite
from qsearch.documents.read import ReadOptions, load
from qsearch.documents.webpage import read_page

DEEP = 100_000
MB = 2**20


def _page(body: str) -> str:
    return (
        f"<html><head><title>T</title></head><body><p>Before.</p>{body}<p>After.</p></body></html>"
    )


def _read(html: str) -> tuple:
    started = time.monotonic()
    page = read_page(html)
    return page, time.monotonic() - started


@pytest.mark.parametrize(
    "body",
    [
        "<div>" * DEEP + "Deep text." + "</div>" * DEEP,  # before: 120 s (BeautifulSoup)
        "<div><span>" * DEEP + "Deep text.",  # never closed
        "<b><i>" * DEEP + "Deep text." + "</i></b>" * DEEP,
        "<ul><li>" * DEEP + "Deep text.",
    ],
)
def test_deep_nesting_is_flattened_below_a_stated_depth_with_its_text_kept(body):
    page, seconds = _read(_page(body))
    assert "Before." in page.text and "Deep text." in page.text, page.text[-200:]
    assert f"web page nested deeper than {MAX_DEPTH} levels" in " ".join(page.notes)
    assert seconds < 10, seconds


@pytest.mark.parametrize("value", ["1", '">"'])
def test_a_tag_of_400000_attributes_keeps_its_first_ones(value):
    """Before: libxml2 compares each attribute with every one before it (40,000: 6 s); with
    quoted ">" the tag doesn't end where a naive scan thinks it does."""
    attributes = " ".join(f"a{i}={value}" for i in range(400_000))
    page, seconds = _read(_page(f"<div {attributes}>Text inside.</div>"))
    assert "Text inside." in page.text and "After." in page.text
    assert f"only their first {MAX_ATTRIBUTES} were read" in " ".join(page.notes)
    assert seconds < 10, seconds
    assert page.markup.count("a1=") == 1 and "a100=" not in page.markup


@pytest.mark.parametrize(
    "body, kept",
    [
        ("<" * 5 * MB, "<<<<"),  # Python's html.parser: quadratic
        ("</" * 2 * MB, "Before."),
        ("<![CDATA[" * DEEP, "Before."),
        ("<!--" + "x" * 5 * MB, "Before."),
        ("&#" * 2 * MB, "&#&#"),
        ("x" * 5 * MB, "xxxx"),
        ("<script>" + "x<" * 2 * MB, "Before."),
    ],
)
def test_long_runs_cost_about_linear_time(body, kept):
    page, seconds = _read(_page(body))
    assert kept in page.text and seconds < 10, seconds


def test_past_max_tags_the_rest_is_read_as_text():
    page, seconds = _read(_page("<p>word " * (MAX_TAGS + 5000)))
    assert page.text.count("word") == MAX_TAGS + 5000 and seconds < 10
    assert f"web page of over {MAX_TAGS:,} tags" in " ".join(page.notes)


def test_a_plain_page_reads_as_before():
    html = (
        "<!DOCTYPE html><html><head><title>Guide</title><style>p{}</style></head><body>"
        "<h2>Install <em>now</em></h2><p>Run <b>make</b>&nbsp;run.<br>Then <i>test</i>.</p>"
        '<table><tr><td>a</td><td>b</td></tr></table><script>var x = "<div>";</script>'
        "<noscript>enable js</noscript><p title='a \"q\" <b>'>Tail &amp; end</p></body></html>"
    )
    page = read_page(html)
    assert page.title == "Guide" and not page.notes
    assert "## Install now" in page.text and "Run make\u00a0run.\nThen test." in page.text
    assert "a b" in page.text and "Tail & end" in page.text
    for hidden in ("p{}", "var x", "enable js"):
        assert hidden not in page.text


def test_text_only_rewrite_keeps_every_word():
    """The fallback when libxml2 would still nest too deeply: no tags at all, all the text."""
    rewritten = rewrite(_page("<div>" * 10 + "Deep." + "</div>" * 10), max_depth=0)
    assert "<div" not in rewritten.html and "Deep." in rewritten.html


def test_a_hostile_page_file_is_read_with_its_notes(tmp_path):
    (tmp_path / "deep.html").write_text(_page("<div>" * DEEP + "Deep text." + "</div>" * DEEP))
    doc = load(tmp_path / "deep.html", options=ReadOptions(ocr=False))
    assert "Deep text." in doc.text and any("nested deeper" in n for n in doc.notes)
