"""Batches by token budget over length-sorted inputs, and padding: shared by embed and rerank.

Sorting by length and capping each batch at `max_tokens` (rows x longest row) keeps
padding near zero and memory bounded, whatever the mix of short and long inputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

GPU_TOKENS_PER_GIB = 1024  # token budget per GiB of GPU memory: a 16 GB T4 gets ~15k
GPU_MAX_TOKENS = 16384


def default_token_budget(device: str) -> int:
    """Tokens per forward pass. On a GPU, 1,024 per GiB of its memory up to 16k (a 16 GB T4 gets
    15k, an A100 or H100 16k): with SDPA's memory-efficient kernel (attention.py below sm80)
    activations grow linearly with the budget. On a CPU 2,048, where a batch's activations then
    stay near the caches (bf16 Qwen3-0.6B on 2 cores: 1.15x the speed of 4,096, 1.5x that of
    8,192; bench/results/cpu-forward-qwen3-0.6b-random-xeon-amx.json)."""
    if not device.startswith("cuda"):
        return 2048
    import torch

    gib = torch.cuda.get_device_properties(device).total_memory / 2**30
    return int(max(2048, min(GPU_MAX_TOKENS, gib * GPU_TOKENS_PER_GIB)))


def token_budget_batches(
    lengths: Sequence[int], max_tokens: int, max_items: int = 1024
) -> list[np.ndarray]:
    """Index arrays into `lengths`, longest first; each batch's rows x max length <= max_tokens.

    A single input longer than the budget gets a batch of its own.
    """
    order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    batches: list[np.ndarray] = []
    i, n = 0, len(order)
    while i < n:
        longest = max(int(lengths[order[i]]), 1)  # sorted: the first row is the longest
        rows = max(1, min(max_items, max_tokens // longest, n - i))
        batches.append(order[i : i + rows])
        i += rows
    return batches


def pad(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids, attention_mask) as int64 arrays, padded on the right (causal models need no mask
    there, and encoders read the mask)."""
    width = max(len(s) for s in sequences)
    ids = np.full((len(sequences), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(sequences), width), dtype=np.int64)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1
    return ids, mask


def padding_fraction(lengths: Sequence[int], batches: Sequence[np.ndarray]) -> float:
    """Share of the computed positions that are padding, for reports and benchmarks."""
    lengths = np.asarray(lengths)
    real = int(lengths.sum())
    computed = sum(len(b) * int(lengths[b].max()) for b in batches if len(b))
    return 1.0 - real / computed if computed else 0.0
