"""Scores a user can trust: keyword coverage, overall relevance on one absolute scale, the minimum
relevance, and the library's reranker fallback (search/relevance.py, store/coverage.py,
search/strength.py, models/choose.py), on the real small model and passages written here."""

from __future__ import annotations

import html as markup
import warnings

import numpy as np
import pytest

from qsearch import Engine, Settings
from qsearch.models.loading import ModelLoadError
from qsearch.search.relevance import Anchors, Scale, measure_anchors, with_rerank
from qsearch.search.strength import DEFAULT_MIN_SCORE, check_min_score, is_weak
from qsearch.store.base import Collection
from qsearch.store.bm25 import LexicalIndex
from qsearch.types import Hit
from qsearch.web.render import NO_STRONG_MATCH, hits_html

# A Wikipedia-like page about a company (one of the cases): it shares one word each with
# "quantum chromodynamics lattice gauge theory" ("Lattice" Semiconductor, Ninja "Theory").
COMPANY = {
    "games.txt": "Ninja Theory is a British video game developer based in Cambridge. The studio "
    "made Hellblade, a game about psychosis, and was bought by Microsoft in 2018.",
    "chips.txt": "Lattice Semiconductor designs low-power programmable chips (FPGAs) used in "
    "cameras, servers and cars; it is based in Hillsboro, Oregon.",
    "office.txt": "Microsoft Office includes Word, Excel and PowerPoint. Outlook manages e-mail, "
    "calendars and contacts for home and business users.",
    "coffee.txt": "Grind the beans finely for espresso and coarsely for a French press; water "
    "just off the boil extracts the best flavour.",
}
OFF_TOPIC = "quantum chromodynamics lattice gauge theory"


@pytest.fixture(scope="module")
def engine(minilm, tmp_path_factory):
    folder = tmp_path_factory.mktemp("company")
    for name, text in COMPANY.items():
        (folder / name).write_text(text)
    engine = Engine(Settings(embed_model=minilm.model_name, device="cpu"), embedder=minilm)
    assert not engine.add_files(sorted(folder.iterdir())).errors
    return engine


def test_keyword_coverage_counts_the_share_of_the_query_weighted_by_rarity():
    texts = ["lattice chips for cars", "cars and roads", "cars and trucks", "gauge of a wire"]
    index = LexicalIndex(language="en")
    index.build(list(range(len(texts))), texts)
    covered = index.coverage(OFF_TOPIC)
    bound = index.upper_bound(OFF_TOPIC)
    share = index.scores(OFF_TOPIC) / bound
    assert share[0] >= 0.45, "BM25 over its bound reads one shared word of five as half a match"
    assert 0 < covered[0] < 0.25 and covered[1] == covered[2] == 0.0, covered
    assert covered[0] == pytest.approx(covered[3]), "two words seen once weigh alike"
    assert index.coverage("lattice chips cars")[0] == pytest.approx(1.0)
    common, rare = index.coverage("cars lattice")[[1, 0]]
    assert common < 0.5 < rare, "a word in three passages weighs less than one in one"


def test_a_word_analysed_in_several_languages_counts_once():
    texts = [
        "Die Bäckerei backt jeden Morgen frisches Brot mit Sauerteig und Roggenmehl.",
        "The bakery bakes fresh bread every morning with sourdough and rye flour.",
    ]
    index = LexicalIndex()  # each text in its own language, the query in both
    index.build([0, 1], texts)
    assert set(index.languages) == {"de", "en"}
    covered = index.coverage("sourdough bread")
    assert covered[1] == pytest.approx(1.0) and covered[0] == 0.0, covered


def test_coverage_from_text_for_backends_without_postings(engine):
    """The collection contract's default (Milvus uses it, with its own document frequencies)
    agrees with the folder's postings where every word is as rare."""
    index = engine.index
    ids = sorted(index.chunks)
    from_index = index.keyword_coverage("Microsoft Outlook", ids, index.keyword_search("x y", 5))
    from_text = Collection.keyword_coverage(index, "Microsoft Outlook", ids)
    by_source = {index.chunks[i].source.rsplit("/", 1)[-1]: v for i, v in zip(ids, from_text)}
    assert by_source["office.txt"] == 1.0 and by_source["games.txt"] == 0.5, by_source
    assert by_source["coffee.txt"] == 0.0 and len(from_index) == len(ids)


def test_the_real_small_model_has_its_anchors(minilm):
    anchors = measure_anchors(minilm)
    assert -0.1 < anchors.unrelated < 0.15 < 0.5 < anchors.related < 0.95, anchors
    assert anchors.meaning(np.array([anchors.unrelated, anchors.related])) == pytest.approx([0, 1])


def test_one_shared_word_is_a_weak_match_and_junk_never_looks_strong(engine):
    hits = engine.search(OFF_TOPIC, k=4)
    assert hits and all(h.weak and h.score < DEFAULT_MIN_SCORE for h in hits), hits
    assert max(h.keyword_score for h in hits) < 0.3, "one shared word of five: a fifth at most"
    html = hits_html(hits, OFF_TOPIC, {})
    assert markup.escape(NO_STRONG_MATCH) in html and "4 weak matches hidden" in html
    good = engine.search("Which company makes low-power programmable chips?", k=4)
    assert good[0].source.endswith("chips.txt") and not good[0].weak, good[0]
    assert good[0].score > 0.8 and all(h.weak for h in good[1:]), good


def test_overall_is_absolute_never_relative_to_the_best_hit(engine, minilm, tmp_path):
    query = "video game studio in Cambridge"
    before = {h.source: h.score for h in engine.search(query, k=4)}
    other = Engine(engine.settings, embedder=minilm)
    (tmp_path / "games.txt").write_text(COMPANY["games.txt"])
    other.add_files([tmp_path / "games.txt"])  # the same passage alone: no other to compare with
    [alone] = other.search(query, k=1)
    games = next(s for s in before if s.endswith("games.txt"))
    assert alone.score == pytest.approx(before[games], abs=0.03), (alone.score, before)


class Compressed:
    """A stand-in for an embedder whose cosines crowd near 1 (as several real models' do: e5 and
    bge put unrelated text near 0.7-0.8): MiniLM's vectors with a large shared component."""

    def __init__(self, minilm):
        self.minilm, self.model_name = minilm, "compressed-minilm"
        self.dim, self.supports_instruction = minilm.dim + 1, False

    def encode(self, texts, *, is_query=False, instruction=None, progress=None):  # noqa: ANN001, ANN201
        v = self.minilm.encode(texts, is_query=is_query)
        v = np.hstack([v, np.full((len(v), 1), 1.6, np.float32)])
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_a_model_without_a_fit_is_placed_on_the_scale_by_its_own_anchors(minilm, engine):
    model = Compressed(minilm)
    anchors = measure_anchors(model)
    assert anchors.unrelated > 0.6, anchors  # its unrelated pairs look alike: cosine ~0.7
    texts = [engine.index.chunks[i].text for i in sorted(engine.index.chunks)]
    q = model.encode([OFF_TOPIC], is_query=True)
    cosine = (model.encode(texts) @ q.T)[:, 0]
    assert cosine.min() > 0.6, "raw, junk would look like a good match"
    overall = Scale(anchors).overall("dense", cosine, None)
    assert (overall < DEFAULT_MIN_SCORE).all(), overall
    asked = model.encode(["Which company makes low-power programmable chips?"], is_query=True)
    chips = next(i for i, t in enumerate(texts) if t.startswith("Lattice"))
    good = Scale(anchors).overall("dense", (model.encode(texts) @ asked.T)[:, 0], None)
    assert good[chips] >= DEFAULT_MIN_SCORE > np.delete(good, chips).max(), good


def test_the_reranker_moves_overall_but_junk_needs_both_to_agree():
    assert with_rerank([0.1], [0.99])[0] > 0.5 > with_rerank([0.9], [0.01])[0]
    assert with_rerank([0.5], [0.5])[0] == pytest.approx(0.5)


def test_one_function_decides_weak_and_the_minimum_is_checked():
    assert is_weak(0.49, 0.5) and not is_weak(0.5, 0.5) and is_weak(float("nan"))
    assert check_min_score(0) == 0.0
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="between 0 and 1"):
            check_min_score(bad)


def test_the_minimum_relevance_sets_weak_in_the_library(engine):
    hits = engine.search("Microsoft Office e-mail", k=4, min_score=0.0)
    assert hits.min_score == 0.0 and not any(h.weak for h in hits)
    strict = engine.search("Microsoft Office e-mail", k=4, min_score=1.0)
    assert [h.score for h in strict] == [h.score for h in hits] and all(h.weak for h in strict)
    with pytest.raises(ValueError, match="between 0 and 1"):
        engine.search("Microsoft", min_score=2)


def test_weak_cards_fold_under_one_line_and_strong_ones_stay_in_view():
    hits = [
        Hit(1, 0.9, "a.txt", None, None, "strong one", 0, 1, "d1", weak=False),
        Hit(2, 0.2, "b.txt", None, None, "weak one", 0, 1, "d2", weak=True),
        Hit(3, 0.1, "c.txt", None, None, "weak two", 0, 1, "d3", weak=True),
    ]
    html = hits_html(hits, "q", {})
    fold = html.index('<details class="qs-weak-fold"')
    assert html.index("strong one") < fold < html.index("weak one") < html.index("weak two")
    assert "2 weak matches hidden" in html and "No strong match" not in html
    assert markup.escape(NO_STRONG_MATCH) in hits_html(hits[1:], "q", {})


def test_the_library_falls_back_to_the_cross_encoder_as_the_app_does(
    minilm, minilm_dir, cross_encoder_dir, engine
):
    settings = Settings(
        embed_model=str(minilm_dir), device="cpu", rerank_model="/no/such/reranker",
        rerank_fallback=str(cross_encoder_dir),
    )  # fmt: skip
    library = Engine(settings, embedder=minilm, index=engine.index)
    with pytest.warns(RuntimeWarning, match="Reranking with the cross-encoder"):
        hits = library.search("programmable chips", k=2, rerank=True)
    assert hits[0].rerank_score is not None
    nothing = Engine(settings.with_(rerank_fallback="none"), embedder=minilm, index=engine.index)
    with warnings.catch_warnings(), pytest.raises(ModelLoadError, match="rerank=False"):
        nothing.search("programmable chips", k=2, rerank=True)


def test_without_anchors_the_scale_is_cautious():
    cosine = np.array([0.3, 0.6])
    cautious = Scale().overall("dense", cosine, None)
    placed = Scale(Anchors(0.0, 0.6)).overall("dense", cosine, None)
    assert (cautious <= placed).all()
