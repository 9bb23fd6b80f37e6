"""What a model in a lower precision must agree on with its fp32 self before `auto` runs it.

The checks run the model's own body on fixed check inputs, fp32 against the candidate copy:
- an embedder's pooled states (the last position of a decoder, the mean of an encoder) for a few
  check texts, min cosine >= MIN_COSINE (`vectors_check`);
- a reranker's order of ten candidates for each check query, by its yes/no logits, the same as
  fp32's for >= MIN_SAME_ORDER of them (`order_check`: the issue's bar, top-10 order equal for 90%
  of queries; a min cosine of 0.99 let through int8 reranker copies that reordered candidates).
Each answer is kept on disk (verdicts.py), keyed by the model folder, the check, the precision
and the CPU (`check_key`), so every process on the machine makes the same choice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import cpu

MIN_COSINE = 0.99  # an embedder's check vectors, the lower precision against fp32
MIN_SAME_ORDER = 0.9  # a reranker's check queries whose top 10 keep fp32's order
CHECK_TEXTS = [
    "What is the capital of France?",
    "Paris is the capital and most populous city of France, on the river Seine.",
    "Mitochondria are the powerhouse of the cell: they make most of its ATP.",
    "def add(a, b):\n    return a + b  # a function, in Python",
]
CHECK_QUERIES = {  # a reranker's check: ten candidates per query, from the answer to off-topic
    "What is the capital of France?": [
        "Paris is the capital and most populous city of France.",
        "The French government sits in Paris, on the river Seine.",
        "Lyon is the third-largest city in France.",
        "Berlin is the capital of Germany.",
        "The Eiffel Tower was finished in 1889 for a world's fair.",
        "French is spoken in France, Belgium, Switzerland and Canada.",
        "Mitochondria make most of a cell's ATP.",
        "The stock market fell two percent on Monday.",
        "def add(a, b):\n    return a + b",
        "Beat two eggs with a cup of flour.",
    ],
    "How do cells make energy?": [
        "Mitochondria are the powerhouse of the cell: they make most of its ATP.",
        "Cells turn glucose into ATP by respiration.",
        "Chloroplasts turn light into chemical energy by photosynthesis.",
        "ATP stores energy in its phosphate bonds.",
        "Muscle cells burn more energy during exercise.",
        "Ribosomes build proteins from amino acids.",
        "Solar panels turn sunlight into electricity.",
        "Paris is the capital of France.",
        "The stock market fell two percent on Monday.",
        "def add(a, b):\n    return a + b",
    ],
}


@dataclass(frozen=True)
class QualityCheck:
    """What a model's lower-precision copy must agree on with fp32 before `auto` runs it:
    `agreement(fp32 states, copy's states)` at least `bar`, over `groups` of token sequences, each
    group one batch (right-padded with `pad_id` as the model's own batches are: decoders only; an
    encoder's groups hold one sequence). `says(value)` puts the result in words for the page."""

    name: str
    groups: list[list[list[int]]]
    decoder: bool
    agreement: Callable[[Any, Any], float]
    bar: float
    says: Callable[[float], str]
    pad_id: int = 0


def vectors_check(sequences: list[list[int]], decoder: bool) -> QualityCheck:
    """An embedder's: the min cosine of its check texts' pooled states (each text alone)."""

    def min_cosine(reference: Any, quantized: Any) -> float:
        import torch

        a, b = (torch.nn.functional.normalize(s, dim=-1) for s in (reference, quantized))
        return float((a * b).sum(-1).min())

    return QualityCheck(
        "min-cosine",
        [[s] for s in sequences],
        decoder,
        min_cosine,
        MIN_COSINE,
        lambda value: f"check vectors: min cosine {value:.4f} vs fp32, needs {MIN_COSINE}",
    )


def order_check(groups: list[list[list[int]]], direction: Any, pad_id: int) -> QualityCheck:
    """A reranker's: the share of check queries whose top-10 candidates (one group each, ordered
    by the yes-minus-no logit, `states @ direction`) come in fp32's order."""
    size = len(groups[0])

    def same_order(reference: Any, quantized: Any) -> float:
        orders = [
            s.float().reshape(len(groups), size, -1) @ direction.float()
            for s in (reference, quantized)
        ]
        tops = [o.argsort(dim=-1, descending=True)[:, :10] for o in orders]
        return float((tops[0] == tops[1]).all(dim=-1).float().mean())

    return QualityCheck(
        "top10-order",
        groups,
        True,
        same_order,
        MIN_SAME_ORDER,
        lambda value: (
            f"check queries in fp32's top-10 order: {value:.0%}, needs {MIN_SAME_ORDER:.0%}"
        ),
        pad_id,
    )


def pooled_states(body: Any, check: QualityCheck) -> Any:
    """One row per check sequence, a group per batch: the state the model's output is read from,
    i.e. the last position of a decoder (right padding needs no mask: causal attention), the mean
    over positions of an encoder (its groups hold one sequence: no padding)."""
    import torch

    rows = []
    with torch.inference_mode():
        for group in check.groups:
            width = max(len(s) for s in group)
            input_ids = torch.tensor([s + [check.pad_id] * (width - len(s)) for s in group])
            if check.decoder:
                hidden = body(input_ids=input_ids, use_cache=False).last_hidden_state
                rows += [hidden[i, len(s) - 1] for i, s in enumerate(group)]
            else:
                assert len(group) == 1, "encoder check groups hold one sequence (no padding)"
                mask = torch.ones_like(input_ids)
                hidden = body(input_ids=input_ids, attention_mask=mask).last_hidden_state
                rows.append(hidden[0].mean(0))
    return torch.stack(rows).float()


def check_key(folder: Path, check: QualityCheck, precision: str) -> dict[str, Any]:
    """What a model's verdict depends on: the model files, the check and its inputs, the precision
    (with its int8 kernels), torch, the CPU and its caps."""
    import torch

    folder = Path(folder).resolve()
    weights = sorted(
        (p.name, p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.iterdir()
        if p.suffix in (".safetensors", ".bin")
    )
    config = folder / "config.json"
    return {
        "check": "model-check",
        "precision": precision,
        "model": str(folder),
        "config_sha256": hashlib.sha256(config.read_bytes()).hexdigest(),
        "weights": weights,
        "measure": check.name,
        "inputs_sha256": hashlib.sha256(json.dumps(check.groups).encode()).hexdigest(),
        "torch": torch.__version__,
        "cpu": cpu.cpu_features(),
        "caps": cpu.isa_caps(),
        "schema": 5,  # 5: int8 precisions keep the embedding table in int8
    }
