"""Keywords in the text's own language (store/analysis.py, store/bm25.py): stop words and stems
per language, a neutral path for the rest, mixed collections, and English as it was.

`LexicalIndex(language="en")` is the analysis qsearch had before it detected languages (every
text and query English), the reference the new behaviour is compared with."""

from __future__ import annotations

import numpy as np

from qsearch.store.analysis import (
    DETECT_CONFIDENCE,
    analyzer,
    detect,
    language_of,
    query_terms,
    term_spans,
    tokenize,
)
from qsearch.store.bm25 import LexicalIndex
from qsearch.web.render import highlight, snippet

DE = [
    "Die Fundamentalgruppe eines topologischen Raumes wird aus geschlossenen Wegen gebildet.",
    "Der Rhein fließt durch Basel, Straßburg und Köln bis in die Nordsee.",
]
FR = [
    "Les effets de la caféine sur le sommeil sont connus depuis longtemps.",
    "La tour Eiffel a été construite pour l'Exposition universelle de 1889.",
]
EN = [
    "A man may die of old age, said the doctor, and the town agreed.",
    "The proteins bind to receptors on the surface of the cell.",
]
GERMAN_QUERY = "Wie berechnet man die Fundamentalgruppe?"
FRENCH_QUERY = "Quels sont les effets de la caféine sur le sommeil ?"


def index(texts: list[str], language: str | None = None) -> LexicalIndex:
    lexical = LexicalIndex(language)
    lexical.build(list(range(len(texts))), texts)
    return lexical


def test_each_language_gets_its_stop_words_and_stemmer():
    assert detect(GERMAN_QUERY)[0] == "de" and detect(FRENCH_QUERY)[0] == "fr"
    assert tokenize(GERMAN_QUERY) == ["berechn", "fundamentalgrupp"]
    assert tokenize(FRENCH_QUERY) == ["quel", "effet", "caféin", "sommeil"]
    # before: English stop words and stems for every language
    assert analyzer("en").terms(GERMAN_QUERY) == [
        "wie",
        "berechnet",
        "man",
        "die",
        "fundamentalgrupp",
    ]


def test_german_and_french_stop_words_no_longer_score_as_keywords():
    mixed = index(DE + FR + EN)
    before = index(DE + FR + EN, language="en")
    assert set(mixed.languages) == {"de", "fr", "en"}
    english = len(DE) + len(FR)  # the English passage with "man" and "die" in it
    for query, stop in [(GERMAN_QUERY, {"wie", "man", "die"}), (FRENCH_QUERY, {"les", "la", "le"})]:
        assert not stop & set(mixed.query_terms(query)), query
    assert before.scores(GERMAN_QUERY)[english] > 0, "before: 'man' and 'die' scored"
    assert mixed.scores(GERMAN_QUERY)[english] == 0
    scores, ids, _ = mixed.search(GERMAN_QUERY, 10)
    assert list(ids) == [0], "only the passage on the fundamental group matches"
    scores, ids, _ = mixed.search(FRENCH_QUERY, 10)
    assert list(ids) == [2]


def test_stems_meet_in_the_documents_language():
    lexical = index(DE + EN)
    assert lexical.search("Fundamentalgruppen", 5)[1].tolist() == [0]
    assert index(DE + EN, language="en").search("Fundamentalgruppen", 5)[1].tolist() == []
    # an English query in the same collection still finds English passages by English stems
    assert lexical.search("binding protein", 5)[1].tolist() == [3]


def test_the_keyword_bound_holds_in_a_mixed_collection():
    lexical = index(DE + FR + EN)
    for query in [GERMAN_QUERY, FRENCH_QUERY, "proteins bind", "caféine Rhein doctor", "die man"]:
        every, bound = lexical.scores(query), lexical.upper_bound(query)
        assert every.max() <= bound + 1e-6, query
        if every.any():
            assert bound > 0


def test_english_collections_analyse_as_before():
    texts = EN + [
        "How do the proteins bind to Receptors?",
        "BRCA1 mutations raise the risk of breast cancer.",
        "0-dimensional biomaterials show inductive properties.",
    ]
    now, before = index(texts), index(texts, language="en")
    assert now.languages == ["en"]
    for query in ["BRCA1 mutations", "what do proteins bind?", "die hard", "Tirasemtiv targets"]:
        assert now.query_terms(query) == before.query_terms(query), query
        np.testing.assert_array_equal(now.scores(query), before.scores(query))
        assert now.upper_bound(query) == before.upper_bound(query)


def test_unclear_text_takes_the_collections_language():
    assert detect("BRCA1 mutations")[1] < DETECT_CONFIDENCE
    assert language_of("BRCA1 mutations") == "en"
    assert language_of("BRCA1 mutations", fallback="de") == "de"
    assert query_terms("BRCA1 mutations", ["en"]) == ["brca1", "mutat"]


def test_languages_without_stemmer_are_analysed_neutrally():
    text = "Ngôn ngữ học là ngành khoa học nghiên cứu về ngôn ngữ."
    assert detect(text)[0] == "vi" and analyzer("vi") == analyzer("ja")  # one neutral analysis
    assert tokenize(text) == text.lower().rstrip(".").split()  # nothing stemmed, nothing dropped


def test_cjk_stays_characters_and_bigrams_in_every_collection():
    assert tokenize("東京大学") == ["東", "京", "大", "学", "東京", "京大", "大学"]
    lexical = index(DE + ["東京大学は日本の国立大学です。"])
    assert lexical.search("東京", 5)[1].tolist() == [2]


def test_cards_mark_german_matches_and_no_german_stop_words():
    marked = highlight(DE[0], "Wie bildet man die Fundamentalgruppen?")
    assert "<mark>Fundamentalgruppe</mark>" in marked and "<mark>gebildet</mark>" not in marked
    assert "<mark>Die</mark>" not in marked
    assert [DE[0][s:e] for s, e in term_spans(DE[0], GERMAN_QUERY)] == ["Fundamentalgruppe"]
    assert snippet(FR[0] + " " + FR[1], FRENCH_QUERY).startswith("Les effets")
