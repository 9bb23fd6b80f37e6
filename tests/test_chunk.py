"""Chunking: known answers with a hand-countable tokenizer (one token per word), then invariants."""

from __future__ import annotations

import random

import pytest

from qsearch.documents.chunk import chunk_document, split_spans, token_starts
from qsearch.types import Document


def doc(text: str, page_starts: tuple[int, ...] = ()) -> Document:
    return Document(source="t.md", text=text, doc_id="d" * 64, kind="text", page_starts=page_starts)


def spans(text: str, tokenizer, max_tokens: int, overlap: int = 0) -> list[str]:
    return [
        text[a:b] for a, b in split_spans(text, token_starts(text, tokenizer), max_tokens, overlap)
    ]


def seq(n: int, tag: str) -> str:
    return " ".join(f"{tag}{i}" for i in range(n))


def test_short_document_is_one_chunk(tok):
    text = "  Hello world.\n\nA second paragraph.  "
    [chunk] = chunk_document(doc(text), tok, max_tokens=10, overlap=2)
    assert chunk.text == "Hello world.\n\nA second paragraph."
    assert text[chunk.start : chunk.end] == chunk.text and chunk.page is None


def test_cuts_at_a_heading_without_overlap(tok):
    a, b = f"# Alpha\n\n{seq(30, 'a')}.", f"## Beta\n\n{seq(30, 'b')}."
    assert spans(f"{a}\n\n{b}", tok, max_tokens=40, overlap=5) == [a, b]


def test_prefers_paragraph_then_sentence_then_word(tok):
    p1, p2 = f"{seq(12, 'a')}.", f"{seq(12, 'b')}."
    assert spans(f"{p1}\n\n{p2}", tok, max_tokens=20) == [p1, p2]
    s1, s2 = f"{seq(12, 'a')}.", f"{seq(12, 'b')}."
    assert spans(f"{s1} {s2}", tok, max_tokens=20) == [s1, s2]
    text = seq(25, "w")
    assert spans(text, tok, max_tokens=10) == [
        seq(10, "w"),
        " ".join(text.split()[10:20]),
        " ".join(text.split()[20:]),
    ]


def test_a_heading_too_early_in_the_window_is_not_a_cut(tok):
    text = f"# T\n\nshort intro.\n\n## Next\n\n{seq(50, 'x')}"
    first = spans(text, tok, max_tokens=40)[0]
    assert first.startswith("# T\n\nshort intro.\n\n## Next")  # 3 tokens is under 1/8 of 40


def test_overlap_starts_at_a_sentence_when_one_is_near(tok):
    sentences = " ".join(f"{seq(7, f's{i}_')}." for i in range(12))
    chunks = spans(sentences, tok, max_tokens=24, overlap=8)
    assert len(chunks) > 2
    for prev, nxt in zip(chunks, chunks[1:]):
        shared = set(prev.split()) & set(nxt.split())
        assert 1 <= len(shared) <= 2 * 8
        assert nxt.split()[0] in prev.split()
        assert nxt.split()[0].endswith("_0"), "a sentence within reach: the overlap starts there"


def test_invariants_on_random_text(tok):
    rng = random.Random(0)
    pieces = []
    for _ in range(300):
        pieces.append(
            rng.choice(
                ["# Heading", "", "", "word " * rng.randint(1, 30) + rng.choice([".", "!", ""])]
            )
        )
    text = "\n".join(pieces)
    d = doc(text)
    for max_tokens, overlap in ((16, 0), (32, 4), (64, 16)):
        for c in chunk_document(d, tok, max_tokens, overlap):
            assert text[c.start : c.end] == c.text == c.text.strip()
        covered = set()
        for start, end in split_spans(text, token_starts(text, tok), max_tokens, overlap):
            assert tok.count(text[start:end]) <= max_tokens
            assert start == 0 or text[start - 1].isspace(), "never starts inside a word"
            assert end == len(text) or text[end].isspace(), "never ends inside a word"
            covered.update(range(start, end))
        assert all(i in covered or text[i].isspace() for i in range(len(text))), "nothing is lost"


def test_identical_chunks_are_kept_once(tok):
    footer = "Confidential footer text repeated on every page."
    pages = [f"Page {i} body text about topic {i}.\n\n{footer}" for i in range(4)]
    text = "\n\n".join(pages)
    starts = tuple(text.index(f"Page {i} body") for i in range(4))
    chunks = chunk_document(doc(text, starts), tok, max_tokens=8, overlap=0)
    assert [c.text for c in chunks].count(footer) == 1
    assert len({c.text for c in chunks}) == len(chunks)


def test_pages_and_page_spans(tok):
    pages = [seq(6, "p1_"), seq(6, "p2_"), seq(6, "p3_")]
    text = "\n\n".join(pages)
    starts = (0, len(pages[0]) + 2, len(pages[0]) + len(pages[1]) + 4)
    chunks = chunk_document(doc(text, starts), tok, max_tokens=10, overlap=0)
    assert [(c.page, c.page_end) for c in chunks] == [
        (1, 1),
        (2, 2),
        (3, 3),
    ]  # page breaks are paragraphs
    chunks = chunk_document(doc(text, starts), tok, max_tokens=16, overlap=0)
    assert [(c.page, c.page_end) for c in chunks] == [(1, 2), (3, 3)]
    [whole] = chunk_document(doc(text, starts), tok, max_tokens=100, overlap=0)
    assert (whole.page, whole.page_end) == (1, 3)


def test_cjk_text_without_spaces_is_cut_between_characters(tok):
    text = "東京は日本の首都です。" * 10 + "大阪は商業の中心地です。" * 10
    chunks = spans(text, tok, max_tokens=30)
    assert len(chunks) >= 7 and "".join(chunks) == text
    assert all(c.endswith("。") for c in chunks[:-1]), "cuts fall at sentence ends"


def test_one_giant_word_is_split_between_tokens(minilm):
    rng = random.Random(1)
    text = "".join(rng.choice("abcdefghij") for _ in range(5000)) + " tail"
    chunks = chunk_document(doc(text), minilm.tokenizer, max_tokens=50, overlap=0)
    assert "".join(c.text for c in chunks).replace(" ", "") == text.replace(" ", "")
    assert all(len(c.text) <= 50 * 32 for c in chunks)


def test_real_tokenizer_respects_the_budget(minilm):
    text = ("Photosynthesis converts light into chemical energy. " * 40 + "\n\n") * 5
    for c in chunk_document(doc(text), minilm.tokenizer, max_tokens=64, overlap=8):
        assert len(minilm.tokenizer(c.text, add_special_tokens=False)["input_ids"]) <= 64


def test_bad_settings_are_refused(tok):
    with pytest.raises(ValueError, match="overlap"):
        chunk_document(doc("text"), tok, max_tokens=10, overlap=10)
