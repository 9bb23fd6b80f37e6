"""Search terms in the text's own language: its language detected, its stemmer, its stop words.

BM25 matches terms, and what a term is depends on the language: "berechnet" is German and stems
to "berechnet", "die" is a German stop word and an English verb. So each passage is analysed in
its language, detected by py3langid (a bundled naive Bayes model over byte n-grams: numpy only,
no download, ~0.4 ms a passage), with Snowball's stemmer for it (PyStemmer) and NLTK's stop words
for it (the lists bm25s ships; for English, bm25s' longer list, as before). A language Snowball
has no stemmer for and with no list (Japanese, Thai, Vietnamese, ...) is analysed neutrally:
lowercased words, nothing stemmed or dropped. CJK runs are characters plus bigrams in every
language, as search engines' CJK analyzers do.

Detection is only trusted at DETECT_CONFIDENCE or above (short texts, formulas and lists of
names are guesses); below it a passage takes its collection's most common language and a query
the collection's. A query meets passages of several languages by being analysed in each of them
(its own language's stop words dropped first), so "fundamentalgruppe" finds German passages by
the German stem and an English word finds English passages by the English one.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

from ..types import CJK

NEUTRAL = ""  # the analysis of a language without stemmer and stop words
DEFAULT_LANGUAGE = "en"  # where nothing says otherwise (an empty collection, an unclear query)
DETECT_CONFIDENCE = 0.5  # below this probability the detector's answer is a guess
# Snowball's stemmers (PyStemmer) by the ISO 639-1 code py3langid answers with.
STEMMERS = {
    "ar": "arabic", "hy": "armenian", "eu": "basque", "ca": "catalan", "cs": "czech",
    "da": "danish", "nl": "dutch", "en": "english", "eo": "esperanto", "et": "estonian",
    "fi": "finnish", "fr": "french", "de": "german", "el": "greek", "hi": "hindi",
    "hu": "hungarian", "id": "indonesian", "ga": "irish", "it": "italian", "lt": "lithuanian",
    "ne": "nepali", "no": "norwegian", "nn": "norwegian", "fa": "persian", "pl": "polish",
    "pt": "portuguese", "ro": "romanian", "ru": "russian", "sr": "serbian", "st": "sesotho",
    "es": "spanish", "sv": "swedish", "ta": "tamil", "tr": "turkish", "yi": "yiddish",
}  # fmt: skip
# NLTK's stop word lists as bm25s ships them (bm25s.stopwords), by language code.
STOPWORDS = {
    "en": "STOPWORDS_EN_PLUS", "da": "STOPWORDS_DANISH", "nl": "STOPWORDS_DUTCH",
    "fr": "STOPWORDS_FRENCH", "de": "STOPWORDS_GERMAN", "it": "STOPWORDS_ITALIAN",
    "no": "STOPWORDS_NORWEGIAN", "nn": "STOPWORDS_NORWEGIAN", "pt": "STOPWORDS_PORTUGUESE",
    "ru": "STOPWORDS_RUSSIAN", "es": "STOPWORDS_SPANISH", "sv": "STOPWORDS_SWEDISH",
    "tr": "STOPWORDS_TURKISH",
}  # fmt: skip

TOKEN = re.compile(rf"[{CJK}]+|[^\W_{CJK}]+")
CJK_CHAR = re.compile(rf"[{CJK}]")


_LOADING = threading.Lock()  # one load: 20 first searches at once each loaded it (+180 MB)


def load_identifier() -> Any:
    """py3langid's identifier over all its languages, with probabilities: loaded once (~0.7 s,
    ~75 MB resident), by one thread; a server loads it at start, into its memory baseline."""
    with _LOADING:
        return _load_identifier()


@lru_cache(maxsize=1)
def _load_identifier() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


@lru_cache(maxsize=16384)
def detect(text: str) -> tuple[str, float]:
    """(ISO 639-1 code, probability) of `text`'s language, as py3langid ranks it."""
    language, probability = load_identifier().classify(text)
    return str(language), float(probability)


def language_of(text: str, fallback: str = DEFAULT_LANGUAGE) -> str:
    """The analysis `text` gets: its language when the detector is sure enough, else `fallback`."""
    language, probability = detect(text)
    return analysis_key(language if probability >= DETECT_CONFIDENCE else fallback)


def analysis_key(language: str) -> str:
    """The language itself where qsearch analyses it specially, else NEUTRAL (one key for all)."""
    return language if language in STEMMERS or language in STOPWORDS else NEUTRAL


_local = threading.local()  # PyStemmer's stemmers are not thread-safe: one per thread


def _stemmer(algorithm: str) -> Any:
    stemmers = _local.__dict__.setdefault("stemmers", {})
    if algorithm not in stemmers:
        import Stemmer

        stemmers[algorithm] = Stemmer.Stemmer(algorithm)
    return stemmers[algorithm]


@dataclass(frozen=True)
class Analyzer:
    """How the words of one language become terms: its stop words dropped, the rest stemmed."""

    language: str  # a code, or NEUTRAL
    stop: frozenset[str]

    def terms(self, text: str, drop: frozenset[str] = frozenset()) -> list[str]:
        """Terms of `text`: its words without stop words (nor `drop`), stemmed; then CJK runs as
        characters and bigrams."""
        words: list[str] = []
        tokens: list[str] = []
        for match in TOKEN.finditer(unicodedata.normalize("NFKC", text).lower()):
            run = match.group()
            if CJK_CHAR.match(run):
                tokens.extend(run)
                tokens.extend(run[i : i + 2] for i in range(len(run) - 1))
            elif run not in self.stop and run not in drop:
                words.append(run)
        return self.stem(words) + tokens

    def stem(self, words: list[str]) -> list[str]:
        algorithm = STEMMERS.get(self.language)
        return _stemmer(algorithm).stemWords(words) if algorithm and words else words

    def term(self, word: str) -> str | None:
        """The term of one word as it appears in a text (None for a stop word)."""
        word = unicodedata.normalize("NFKC", word).lower()
        return None if word in self.stop else self.stem([word])[0]


@cache
def analyzer(language: str) -> Analyzer:
    """The analyzer of `language` (a code; one py3langid does not treat specially is neutral)."""
    key = analysis_key(language)
    if key not in STOPWORDS:
        return Analyzer(key, frozenset())
    import bm25s.stopwords

    return Analyzer(key, frozenset(getattr(bm25s.stopwords, STOPWORDS[key])))


def tokenize(text: str, language: str | None = None) -> list[str]:
    """Search terms of `text`, analysed in `language` (detected when None; English if unclear)."""
    return analyzer(language_of(text) if language is None else language).terms(text)


def query_terms(query: str, languages: Sequence[str] = ()) -> list[str]:
    """The terms BM25 searches `query` by among passages in `languages` (most frequent first; the
    query's own when none): the words that are not stop words in the query's language (detected;
    the first of `languages` when unclear), analysed in each of `languages`, each term once
    across them (a term repeated in the query counts as often as it is repeated, as before)."""
    languages = [analysis_key(x) for x in languages] or [language_of(query)]
    drop = analyzer(language_of(query, fallback=languages[0])).stop
    terms = analyzer(languages[0]).terms(query, drop)
    seen = set(terms)
    for language in dict.fromkeys(languages[1:]):
        for term in analyzer(language).terms(query, drop):
            if term not in seen:
                seen.add(term)
                terms.append(term)
    return terms


@dataclass(frozen=True)
class QueryWord:
    """One word of a query, as typed (lowercased), and its terms in each language analysed."""

    word: str
    terms: frozenset[str]


def query_words(
    query: str, languages: Sequence[str] = (), own: str | None = None
) -> list[QueryWord]:
    """The query's words as BM25 sees them, each once: for each word that is not a stop word in
    the query's language, its terms in each of `languages` (as `query_terms` analyses it: one
    term per language, fewer where they agree or it is a stop word there); each CJK character
    and pair on its own. Keyword coverage counts a word as found when a passage holds any of
    its terms, so a word analysed in three languages still counts once. `own`: the query's
    language, when known (else detected)."""
    languages = [analysis_key(x) for x in languages] or [language_of(query)]
    drop = analyzer(own if own is not None else language_of(query, fallback=languages[0])).stop
    words: dict[str, set[str]] = {}
    for match in TOKEN.finditer(unicodedata.normalize("NFKC", query).lower()):
        run = match.group()
        if CJK_CHAR.match(run):
            for term in [*run, *(run[i : i + 2] for i in range(len(run) - 1))]:
                words.setdefault(term, {term})
        elif run not in drop:
            terms = {analyzer(x).term(run) for x in dict.fromkeys(languages)} - {None, ""}
            if terms:
                words.setdefault(run, set()).update(terms)
    return [QueryWord(word, frozenset(terms)) for word, terms in words.items() if terms]


def term_spans(text: str, query: str) -> list[tuple[int, int]]:
    """(start, end) in `text` of each word BM25 matches for `query`, `text` analysed in its own
    language (the query's when unclear): a stemmed match ("indexing" for "indexes"), never a
    stop word; and of each CJK pair (or lone character) the query holds."""
    language = language_of(text, fallback=language_of(query))
    terms, mine = frozenset(query_terms(query, [language])), analyzer(language)
    spans: list[tuple[int, int]] = []
    pairs = any(len(t) == 2 and CJK_CHAR.match(t) for t in terms)
    for match in TOKEN.finditer(text):
        run, start = match.group(), match.start()
        if CJK_CHAR.match(run):  # marked by the pairs BM25 matched, by characters without pairs
            size = 2 if pairs else 1
            spans += [
                (start + i, start + i + size)
                for i in range(len(run) - size + 1)
                if run[i : i + size] in terms
            ]
        elif mine.term(run) in terms:
            spans.append(match.span())
    merged: list[tuple[int, int]] = []  # overlapping CJK pairs become one span
    for start, end in spans:
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged
