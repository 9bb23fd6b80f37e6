"""Overall relevance on one absolute scale: how likely a passage is to answer the query.

The overall score is a logistic model over evidence that does not depend on the other passages
found, so the best of unrelated passages scores low, and the same passage scores the same
whatever else the collection holds:
- meaning: the cosine of query and passage, placed on the embedder's own scale by two anchors
  measured once per model (`measure_anchors`): its median cosine between a question and a
  passage about something else (0 on this scale), and between a question and the passage
  that answers it (1). Embedders differ widely (all-MiniLM-L6-v2 puts unrelated pairs near
  0.0, Qwen3-Embedding near 0.1-0.2, some models near 0.5 or above); anchored, they read alike;
- keywords: coverage, the IDF-weighted share of the query's words the passage holds
  (store/coverage.py);
- when reranked, the reranker's P(yes), averaged with the retrieval estimate in log-odds.

The weights were fitted on dev data with all-MiniLM-L6-v2 (SciFact dev and a mixed collection
of real office files, `python bench/weak_match.py`, bench/results/relevance-fit-minilm.json),
one set per search mode, in anchored units, so any other embedder (Qwen3-Embedding, whose
weights this project's machines can't download, or any --embed-model folder) uses them through
its own anchors. The reranker's weight in the average is not fitted (no reranker's weights
here): its P(yes) and the retrieval estimate count alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..models.embedder import Embedder

# (question, the passage that answers it): sixteen unrelated topics. Every question is compared
# with its own passage (related) and with the fifteen others (unrelated), on first use of a
# model; plain English, as the embedders' instructions and the default task ask for.
ANCHOR_PAIRS = (
    ("How long should I boil an egg for a soft yolk?",
     "For a soft, runny yolk, lower the egg into boiling water and cook it for six minutes, "
     "then cool it in cold water before peeling."),
    ("What causes the tides in the ocean?",
     "Tides are caused mainly by the Moon's gravity pulling on the oceans, with a smaller "
     "pull from the Sun; most coasts see two high tides a day."),
    ("How do I reset a forgotten router password?",
     "Hold the reset button on the back of the router for ten seconds with a paperclip; it "
     "restarts with the factory password printed on its label."),
    ("When did the Roman Empire in the west fall?",
     "The Western Roman Empire ended in 476, when Odoacer deposed the emperor Romulus "
     "Augustulus and ruled Italy as king."),
    ("Why do cats purr?",
     "Cats purr by twitching the muscles of the larynx; they purr when content, but also to "
     "soothe themselves when hurt or frightened."),
    ("What is the penalty for filing a tax return late?",
     "Filing your return after the deadline adds a penalty of five percent of the unpaid tax "
     "for each month it is late, up to twenty-five percent."),
    ("How does a vaccine train the immune system?",
     "A vaccine shows the immune system a harmless piece or copy of a pathogen, so it makes "
     "antibodies and memory cells that recognise the real infection later."),
    ("Which grapes are used to make champagne?",
     "Champagne is made mostly from three grapes: Chardonnay, Pinot Noir and Pinot Meunier, "
     "blended and fermented a second time in the bottle."),
    ("How much annual leave do employees get?",
     "Full-time employees receive twenty-five days of paid annual leave a year, plus public "
     "holidays; part-time staff receive a proportional amount."),
    ("What is the boiling point of water on a mountain?",
     "At higher altitude the air pressure is lower, so water boils below 100 degrees Celsius: "
     "at 3,000 metres it boils at about 90 degrees."),
    ("How do I sort a list in Python?",
     "Call sorted(items) to get a new sorted list, or items.sort() to sort the list in place; "
     "pass key= to sort by a field and reverse=True for descending order."),
    ("Who painted the ceiling of the Sistine Chapel?",
     "Michelangelo painted the Sistine Chapel ceiling between 1508 and 1512, on a commission "
     "from Pope Julius II, including the Creation of Adam."),
    ("How often should a car's engine oil be changed?",
     "Most modern cars need an oil change every 10,000 to 15,000 kilometres or once a year, "
     "whichever comes first; check the maintenance schedule in the manual."),
    ("What are the symptoms of dehydration?",
     "Signs of dehydration include thirst, dark yellow urine, dizziness, tiredness and a dry "
     "mouth; severe dehydration needs urgent medical care."),
    ("How did the stock market crash of 1929 start?",
     "The crash began in October 1929, when share prices on the New York Stock Exchange "
     "collapsed after years of speculation on borrowed money."),
    ("How do bees make honey?",
     "Bees collect nectar from flowers, break its sugars down with enzymes and store it in "
     "wax cells, fanning it with their wings until the water evaporates."),
)  # fmt: skip


@dataclass(frozen=True)
class Anchors:
    """Where an embedder's cosines lie: a question and an unrelated passage (`unrelated`), and a
    question and the passage that answers it (`related`), medians over ANCHOR_PAIRS."""

    unrelated: float
    related: float

    def meaning(self, cosine: np.ndarray) -> np.ndarray:
        """Cosines on the anchored scale: 0 at `unrelated`, 1 at `related`."""
        span = max(self.related - self.unrelated, 0.05)  # a model that can't tell: a wide unit
        return (np.asarray(cosine, np.float64) - self.unrelated) / span


def measure_anchors(
    embedder: Embedder,
    instruction: str | None = None,
    dim: int | None = None,
    passages: np.ndarray | None = None,
) -> Anchors:
    """The embedder's anchors: ANCHOR_PAIRS embedded (questions as queries, with
    `instruction`), the median cosine of matching pairs and of all other pairs; `dim`: of the
    vectors cut to their first `dim` values (MRL), as an index cut so searches them.
    `passages`: the anchor passages' vectors when known (`anchor_passages`: no instruction)."""
    questions = embedder.encode(
        [q for q, _ in ANCHOR_PAIRS], is_query=True, instruction=instruction
    )
    passages = anchor_passages(embedder) if passages is None else passages
    questions, passages = (_unit(np.asarray(v, np.float64)[:, :dim]) for v in (questions, passages))
    cosines = questions @ passages.T
    related = np.diag(cosines)
    unrelated = cosines[~np.eye(len(ANCHOR_PAIRS), dtype=bool)]
    return Anchors(float(np.median(unrelated)), float(np.median(related)))


def anchor_passages(embedder: Embedder) -> np.ndarray:
    """The anchor passages' vectors: the same for every instruction (only queries carry one)."""
    return embedder.encode([p for _, p in ANCHOR_PAIRS])


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


@dataclass(frozen=True)
class Weights:
    """A logistic model: log-odds = bias + meaning x anchored cosine + keywords x coverage."""

    bias: float
    meaning: float = 0.0
    keywords: float = 0.0


# Fitted by bench/weak_match.py on MiniLM dev data (see the module docstring), per search mode:
# hybrid has both kinds of evidence, dense only meaning, lexical only keywords.
FITTED = {
    "hybrid": Weights(bias=-6.176, meaning=6.577, keywords=7.596),
    "dense": Weights(bias=-6.141, meaning=11.198),
    "lexical": Weights(bias=-4.453, keywords=13.379),
}
FITTED_ON = "all-MiniLM-L6-v2"  # the one model fitted; others through their own anchors


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -40, 40)))


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


# Without measured anchors (a caller of `retrieve` that passes no Scale): a cosine of 1 reads as
# a matching answer, which no embedder reaches for a real answer, so nothing looks stronger than
# it is.
CAUTIOUS = Anchors(unrelated=0.0, related=1.0)


@dataclass(frozen=True)
class Scale:
    """How one search turns evidence into overall relevance: the embedder's anchors (measured by
    `measure_anchors`; CAUTIOUS when unknown) and the weights fitted per search mode."""

    anchors: Anchors | None = None

    def overall(
        self,
        mode: str,
        cosine: np.ndarray | None,
        coverage: np.ndarray | None,
    ) -> np.ndarray:
        """P(relevant) of each candidate, before any rerank, from the evidence `mode` has."""
        w = FITTED[mode]
        n = len(cosine) if cosine is not None else len(coverage) if coverage is not None else 0
        z = np.full(n, w.bias, dtype=np.float64)
        if mode != "lexical" and cosine is not None:
            anchors = self.anchors or CAUTIOUS
            z += w.meaning * anchors.meaning(np.nan_to_num(cosine, nan=-1.0))
        if mode != "dense" and coverage is not None:
            z += w.keywords * np.asarray(coverage, np.float64)
        return sigmoid(z)


def with_rerank(retrieval: Sequence[float] | np.ndarray, rerank: Sequence[float]) -> np.ndarray:
    """Overall after a rerank: the retrieval estimate and the reranker's P(yes) averaged in
    log-odds (so junk needs both to call it relevant, and a confident reranker still moves it)."""
    return sigmoid((logit(np.asarray(retrieval)) + logit(np.asarray(rerank))) / 2)


__all__ = ["ANCHOR_PAIRS", "Anchors", "FITTED", "Scale", "measure_anchors", "with_rerank"]
