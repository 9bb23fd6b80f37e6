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
- the model: the hidden state it pools (the last position of a decoder, the mean of an encoder) for
  a few check texts must agree with fp32's (min cosine >= MIN_COSINE), else the model stays fp32.
Quantizing takes seconds, so it is not cached. Both checks' answers are kept on disk (verdicts.py:
under HF_HOME, qsearch/checks), so that every process on the machine makes the same choice: the
timing keyed by CPU features, torch and quantized engine; the model's by its folder (path,
config, weight file sizes and times) as well.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import time
import warnings
from pathlib import Path
from typing import Any

from . import verdicts

INT8_MIN_SPEEDUP = 1.5  # int8 must be at least this much faster than fp32 at start-up
MIN_COSINE = 0.99  # check vectors of int8 against fp32
CHECK_TEXTS = [
    "What is the capital of France?",
    "Paris is the capital and most populous city of France, on the river Seine.",
    "Mitochondria are the powerhouse of the cell: they make most of its ATP.",
    "def add(a, b):\n    return a + b  # a function, in Python",
]


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
    """`model` with every nn.Linear replaced by its dynamic int8 version, in place."""
    import torch

    with warnings.catch_warnings():  # torch.ao.quantization warns it is deprecated (see module doc)
        warnings.simplefilter("ignore")
        qconfig = torch.ao.quantization.per_channel_dynamic_qconfig  # per-tensor: MiniLM cos 0.88
        return torch.ao.quantization.quantize_dynamic(
            model, {torch.nn.Linear: qconfig}, dtype=torch.qint8, inplace=True
        )


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


def pooled_states(body: Any, sequences: list[list[int]], decoder: bool) -> Any:
    """One row per sequence, each run alone (no padding): the state the model's output is read
    from, i.e. the last position of a decoder, the mean over positions of an encoder."""
    import torch

    rows = []
    with torch.inference_mode():
        for ids in sequences:
            input_ids = torch.tensor([ids])
            if decoder:
                hidden = body(input_ids=input_ids, use_cache=False).last_hidden_state[0, -1]
            else:
                mask = torch.ones_like(input_ids)
                hidden = body(input_ids=input_ids, attention_mask=mask).last_hidden_state[0].mean(0)
            rows.append(hidden.float())
    return torch.nn.functional.normalize(torch.stack(rows), dim=-1)


def to_int8(
    body: Any, folder: Path, sequences: list[list[int]], *, decoder: bool, reason: str, check: bool
) -> tuple[Any, str]:
    """(model, what runs and why). Without `check` (int8 forced), `body` is quantized in place.
    With it, only when its check vectors agree with fp32's (a cached verdict, or measured now on a
    copy); else `body` comes back as it was, in fp32, and the reason says so."""
    if not check:
        return quantize_linear(body), reason
    quantized = None

    def measure() -> float:
        nonlocal quantized
        reference = pooled_states(body, sequences, decoder)
        quantized = quantize_linear(copy.deepcopy(body))
        return float((reference * pooled_states(quantized, sequences, decoder)).sum(-1).min())

    min_cosine = verdicts.remembered(check_key(folder, sequences), measure)
    if min_cosine < MIN_COSINE:
        return body, (
            f"float32: int8 missed the quality bar for this model (check vectors: min cosine "
            f"{min_cosine:.4f} vs fp32, needs {MIN_COSINE})"
        )
    note = f"{reason.removesuffix(')')}; check vectors: min cosine {min_cosine:.4f} vs fp32)"
    return (quantized if quantized is not None else quantize_linear(body)), note


def check_key(folder: Path, sequences: list[list[int]]) -> dict[str, Any]:
    """What a model's verdict depends on: the model files, the check inputs, torch, the CPU."""
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
        "inputs_sha256": hashlib.sha256(json.dumps(sequences).encode()).hexdigest(),
        "torch": torch.__version__,
        "engine": torch.backends.quantized.engine,
        "cpu": cpu_features(),
        "schema": 2,
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
