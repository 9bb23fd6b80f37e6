"""int8 on the CPU: torch's dynamic quantization of the Linear layers, and the checks behind `auto`.

Why this backend: bench/int8_candidates.py compares it with torchao, ONNX Runtime and OpenVINO on
the same chunks (bench/results/README.md, "int8 on the CPU"); it is the fastest at the quality bar
here and needs no package beyond torch. Weights become int8 per output channel (per tensor
loses too much: MiniLM's min cosine vs fp32 0.88 against 0.97); activations are
quantized per batch at run time (fbgemm/x86 kernels: `vpmaddubsw` on AVX2, VNNI where present).
Attention, norms and the embedding table stay fp32.

Two checks decide whether `auto` runs int8:
- the machine: one model-shaped Linear, fp32 against int8, timed alternately at start-up
  (`int8_speedup`); int8 must be at least INT8_MIN_SPEEDUP times faster;
- the model, against its own fp32 on fixed check inputs, else it stays fp32: an embedder's pooled
  states (the last position of a decoder, the mean of an encoder) for a few check texts, min
  cosine >= MIN_COSINE (`vectors_check`); a reranker's order of ten candidates for each check
  query, by its yes/no logits, the same as fp32's for >= MIN_SAME_ORDER of them (`order_check`:
  the issue's bar, top-10 order equal for 90% of queries; a min cosine of 0.99 let through
  int8 reranker copies that reordered candidates).
Quantizing is not cached on disk: the 0.6B model's 196 layers take 9.4 s on 2 cores (one layer
per thread), and most of that is torch packing the weights for its kernels (linear_prepack: 10.6 s
of 18.9 s one by one), which loading quantized weights from disk would pay again; a cache would
save only the rounding (quantize_per_channel: 5.5 s). Both checks' answers are kept on disk
(verdicts.py: under HF_HOME, qsearch/checks), so that every process on the machine makes the same
choice: the timing keyed by CPU features, torch and quantized engine; the model's by its folder
(path, config, weight file sizes and times) as well.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import verdicts

INT8_MIN_SPEEDUP = 1.5  # int8 must be at least this much faster than fp32 at start-up
MIN_COSINE = 0.99  # an embedder's check vectors, int8 against fp32
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


def cpu_features() -> list[str]:
    """The CPU features that decide int8 and bf16 speed, as torch sees them."""
    import torch

    checks = [
        ("AVX2", torch.cpu._is_avx2_supported),
        ("AVX-512", torch.cpu._is_avx512_supported),
        ("VNNI", torch.cpu._is_vnni_supported),
        ("AVX512-BF16", torch.cpu._is_avx512_bf16_supported),
        ("AMX", torch.cpu._is_amx_tile_supported),
    ]
    return [name for name, check in checks if check()]


def int8_isa(features: list[str]) -> str:
    """The instruction set the int8 kernels use, for the page: 'AVX-512 VNNI', 'AVX2', ..."""
    if "AMX" in features:
        return "AMX"
    base = "AVX-512" if "AVX-512" in features else "AVX2" if "AVX2" in features else "no AVX2"
    return f"{base} VNNI" if "VNNI" in features else base


def quantize_linear(model: Any) -> Any:
    """`model` with every nn.Linear replaced by its dynamic int8 version, in place: what
    `quantize_dynamic` does, one layer per thread (`Linear.from_float`; weight packing releases
    the GIL: the 0.6B model's 196 layers took 18.9 s one by one on 2 cores)."""
    import torch

    dynamic = torch.ao.nn.quantized.dynamic.Linear
    qconfig = torch.ao.quantization.per_channel_dynamic_qconfig  # per-tensor: MiniLM cos 0.88
    linears = [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if type(child) is torch.nn.Linear
    ]

    def one(linear: Any) -> Any:
        linear.qconfig = qconfig
        with warnings.catch_warnings():  # torch.ao.quantization warns it is deprecated (module doc)
            warnings.simplefilter("ignore")
            return dynamic.from_float(linear)

    with ThreadPoolExecutor(max(1, min(len(linears), torch.get_num_threads()))) as pool:
        for (parent, name, _), quantized in zip(linears, pool.map(one, [c for *_, c in linears])):
            setattr(parent, name, quantized)
    return model


@functools.lru_cache(maxsize=1)
def int8_speedup() -> float:
    """fp32 time / int8 time on this machine: measured once, then read from disk (verdicts.py)."""
    return verdicts.remembered(machine_key("int8-speedup"), measure_int8_speedup)


def measure_int8_speedup(rows: int = 256, width: int = 1024, repeats: int = 5) -> float:
    """fp32 time / int8 time of a (rows x width) @ (width x 3 width) Linear, best of `repeats`
    each, timed alternately so that a busy neighbour slows both alike."""
    import torch

    torch.manual_seed(0)
    fp32 = torch.nn.Sequential(torch.nn.Linear(width, 3 * width, bias=False)).eval()
    int8 = quantize_linear(copy.deepcopy(fp32))
    x = torch.randn(rows, width)
    best = {"fp32": float("inf"), "int8": float("inf")}
    with torch.inference_mode():
        fp32(x), int8(x)  # warm up
        for _ in range(repeats):
            for name, layer in (("fp32", fp32), ("int8", int8)):
                started = time.perf_counter()
                layer(x)
                best[name] = min(best[name], time.perf_counter() - started)
    return best["fp32"] / best["int8"]


@dataclass(frozen=True)
class QualityCheck:
    """What a model's int8 copy must agree on with fp32 before `auto` runs it: `agreement(fp32
    states, int8 states)` at least `bar`, over `groups` of token sequences, each group one batch
    (right-padded with `pad_id` as the model's own batches are: decoders only; an encoder's groups
    hold one sequence). `says(value)` puts the result in words for the page."""

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


def to_int8(body: Any, folder: Path, check: QualityCheck | None, reason: str) -> tuple[Any, str]:
    """(model, what runs and why). Without `check` (int8 forced), `body` is quantized in place.
    With it, only when the int8 copy passes the check against fp32 (a cached verdict, or measured
    now on a copy); else `body` comes back as it was, in fp32, and the reason says so."""
    if check is None:
        return quantize_linear(body), reason
    quantized = None

    def measure() -> float:
        nonlocal quantized
        reference = pooled_states(body, check)
        quantized = quantize_linear(copy.deepcopy(body))
        return check.agreement(reference, pooled_states(quantized, check))

    value = verdicts.remembered(check_key(folder, check), measure)
    if value < check.bar:
        return body, f"float32: int8 missed the quality bar for this model ({check.says(value)})"
    note = f"{reason.removesuffix(')')}; {check.says(value)})"
    return (quantized if quantized is not None else quantize_linear(body)), note


def check_key(folder: Path, check: QualityCheck) -> dict[str, Any]:
    """What a model's verdict depends on: the model files, the check and its inputs, torch, the
    CPU."""
    import torch

    folder = Path(folder).resolve()
    weights = sorted(
        (p.name, p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.iterdir()
        if p.suffix in (".safetensors", ".bin")
    )
    config = folder / "config.json"
    return {
        "check": "int8-model",
        "model": str(folder),
        "config_sha256": hashlib.sha256(config.read_bytes()).hexdigest(),
        "weights": weights,
        "measure": check.name,
        "inputs_sha256": hashlib.sha256(json.dumps(check.groups).encode()).hexdigest(),
        "torch": torch.__version__,
        "engine": torch.backends.quantized.engine,
        "cpu": cpu_features(),
        "schema": 3,
    }


def machine_key(check: str) -> dict[str, Any]:
    """What a timing of this machine depends on: the CPU's features, torch. Not the thread count:
    a ZeroGPU worker runs on one thread (gpu_boundary.py) and must choose as the app does."""
    import torch

    return {
        "check": check,
        "torch": torch.__version__,
        "engine": torch.backends.quantized.engine,
        "cpu": cpu_features(),
        "schema": 2,
    }
