"""`--dtype auto` on a CPU: every precision this CPU can run fast, raced once per machine, fastest
first.

The candidates: fp32; bf16 where the CPU computes it natively (AMX or AVX512-BF16: elsewhere
torch emulates it, at 15 GFLOP/s against fp32's 121 on an AVX2 EPYC); int8 (torch's dynamic int8
linear layers, the rest fp32) and int8+bf16 (those layers, the rest bf16), each with fbgemm's and
with oneDNN's int8 kernels. Each is made by `quantize.convert`, the code that converts a loaded
model, from PROBE_LAYERS decoder layers shaped as Qwen3-0.6B's (the default models: 1024 wide, 16
query and 8 key/value heads, MLP 3072; random weights), enough that their weights stream from
memory as the whole model's do, and runs a batch of chunk-long token ids (PROBE_SHAPE), in rotating
order after a warm-up, ROUNDS times. A ratio is fp32's fastest round over the candidate's. Whole
layers, not one matrix product: int8+bf16 differs from int8 only outside the linear layers
(attention, norms, rotary embedding, SiLU), a quarter to a third of fp32's time.

The race takes seconds (its ratios say how many: "seconds") once per machine: its answer is kept
on disk (verdicts.py) keyed by the CPU's features, its caps, torch and the probe. A precision runs
only when it is at least MIN_SPEEDUP x fp32 in the race (below that its rounding buys too
little), an int8 one only where the model's own quality check passes (checks.py,
`quantize.settle`); else the next one down runs. The fastest runs, with one correction for what the
race can't time: bf16 runs compiled (1.2-1.4x its eager speed, bench/cpu_forward.py; compiling
the probe would take half a minute), so where bf16 is fast enough an int8 precision ranks above
it only when INT8_OVER_BF16 x faster in the eager race. Each int8 precision runs on fbgemm's
kernels unless oneDNN's are ONEDNN_OVER_FBGEMM x faster (`engine_for`: oneDNN holds twice the
memory).
"""

from __future__ import annotations

import copy
import functools
import time
from typing import Any

from . import cpu, quantize, verdicts
from .quantize import Choice

MIN_SPEEDUP = 1.2  # a precision below fp32 must be at least this much faster in the race
# An int8 precision runs instead of bf16 only when at least this much faster than bf16 in the
# (eager) race: bf16 runs compiled (1.3x eager: bench/cpu_forward.py), int8 ones eager; bf16 keeps
# the vectors closer to fp32 (min cosine 0.9999 against ~0.994) and needs no model check.
INT8_OVER_BF16 = 1.25
# The probe: PROBE_LAYERS decoder layers, each with its own weights, so that even in int8 they
# (63 MB) outgrow the last-level cache of a core complex (32 MB on a Zen 3 to Zen 5 CCX) and
# stream from memory as the whole model's 28 layers do. One layer was the probe before: its int8
# weights (16 MB) fit such a cache and its fp32 ones (63 MB) do not, a likely reason why on a
# Zen 3 EPYC that race gave int8 3.1x fp32 where the whole model ran 1.7x (issue 39).
PROBE_LAYERS = 4
PROBE_SHAPE = (2, 256)  # sequences x tokens: a batch of chunks (256 tokens: qsearch's default)
ROUNDS = 4  # each candidate's fastest round rides out a neighbour's burst of load
ONEDNN_OVER_FBGEMM = 1.25  # oneDNN runs only this much faster than fbgemm (see engine_for)
QWEN3_06B = dict(  # Qwen3-Embedding-0.6B / Qwen3-Reranker-0.6B: the exact architecture
    vocab_size=151669,
    hidden_size=1024,
    intermediate_size=3072,
    num_hidden_layers=28,
    num_attention_heads=16,
    num_key_value_heads=8,
    head_dim=128,
    max_position_embeddings=32768,
    rope_theta=1_000_000.0,
    rms_norm_eps=1e-6,
    tie_word_embeddings=True,
    eos_token_id=151643,
)
# its decoder layers; the race reads no embedding table worth timing
PROBE_LAYER = QWEN3_06B | dict(num_hidden_layers=PROBE_LAYERS, vocab_size=1024, eos_token_id=0)
SAYS = {
    "float32": "float32",
    "bfloat16": "bfloat16",
    "int8": "int8 (linear layers on {}'s int8 kernels, the rest fp32)",
    "int8+bf16": "int8+bf16 (linear layers on {}'s int8 kernels, the rest bf16)",
}


def candidates(features: list[str]) -> list[tuple[str, str | None]]:
    """(precision, int8 kernel library) for every candidate this CPU can run fast."""
    out: list[tuple[str, str | None]] = [("float32", None)]
    if cpu.bf16_native(features):
        out.append(("bfloat16", None))
    return out + [(p, e) for p in ("int8", "int8+bf16") for e in quantize.engines()]


def probe(layers: int = PROBE_LAYERS) -> Any:
    """`layers` Qwen3-0.6B decoder layers (and the norm, rotary embedding and a small embedding
    table) in fp32 with seeded random weights; the caller's random state is left as it was."""
    import torch
    from transformers import Qwen3Config, Qwen3Model

    with torch.random.fork_rng():
        torch.manual_seed(0)
        config = Qwen3Config(
            **PROBE_LAYER | {"num_hidden_layers": layers}, attn_implementation="sdpa"
        )
        return Qwen3Model(config).eval()


def measure(
    shape: tuple[int, int] = PROBE_SHAPE,
    rounds: int = ROUNDS,
    only: list[tuple[str, str | None]] | None = None,
    layers: int = PROBE_LAYERS,
) -> dict[str, float]:
    """fp32's fastest round over each candidate's ('int8+bf16/onednn': 2.1, ...), and what the
    race took ('seconds')."""
    import torch

    started = time.perf_counter()
    fp32 = probe(layers)
    models = {  # converted in place, layer by layer, from a copy each; fp32 runs the probe
        Choice(p, e).label: fp32 if p == "float32" else quantize.convert(copy.deepcopy(fp32), p, e)
        for p, e in (only or candidates(cpu.cpu_features()))
    }
    ids = torch.randint(
        0, PROBE_LAYER["vocab_size"], shape, generator=torch.Generator().manual_seed(0)
    )
    best = dict.fromkeys(models, float("inf"))
    names = list(models)
    with torch.inference_mode():
        for r in range(rounds + 1):  # the first round warms up, untimed
            for name in names[r % len(names) :] + names[: r % len(names)]:
                begun = time.perf_counter()
                models[name](input_ids=ids, use_cache=False)
                if r:
                    best[name] = min(best[name], time.perf_counter() - begun)
    base = best.get("float32", float("nan"))
    return {name: base / b for name, b in best.items()} | {"seconds": time.perf_counter() - started}


def race() -> dict[str, float]:
    """This machine's race: measured once, then read from disk (verdicts.py)."""
    key = cpu.machine_key("precision-race") | {"probe": [PROBE_LAYERS, *PROBE_SHAPE, ROUNDS]}
    return verdicts.remembered(key, measure)


def engine_for(ratios: dict[str, float], precision: str) -> tuple[float, str | None]:
    """(x fp32, int8 kernel library) of `precision` in the race `ratios`: fbgemm, unless oneDNN
    is at least ONEDNN_OVER_FBGEMM x as fast (it keeps torch's int8 weights beside its own packed
    copy: twice fbgemm's memory, 0.87 GB against 0.45 for Qwen3-0.6B's linear layers)."""
    engines = {
        label.partition("/")[2] or None: ratio
        for label, ratio in ratios.items()
        if label.partition("/")[0] == precision
    }
    if not engines:
        return 0.0, None
    best = max(engines, key=engines.__getitem__)
    fbgemm = engines.get("fbgemm")
    if best == "onednn" and fbgemm is not None and engines[best] < ONEDNN_OVER_FBGEMM * fbgemm:
        best = "fbgemm"
    return engines[best], best


@functools.lru_cache(maxsize=1)
def choices() -> tuple[Choice, ...]:
    """The precisions `auto` may run here, fastest first, each with why; fp32 is the last."""
    ratios, features = race(), cpu.cpu_features()
    raced = dict.fromkeys(
        label.partition("/")[0] for label in ratios if label.partition("/")[0] in SAYS
    )
    best = {precision: engine_for(ratios, precision) for precision in raced}
    fast = [p for p, (ratio, _) in best.items() if p != "float32" and ratio >= MIN_SPEEDUP]
    margin = INT8_OVER_BF16 if "bfloat16" in fast else 1.0
    fast.sort(key=lambda p: -best[p][0] / (margin if p.startswith("int8") else 1.0))
    where = f"CPU: {cpu.describe(features)}"
    out = []
    for precision in fast:
        ratio, engine = best[precision]
        beaten = any(best[p][0] > ratio for p in fast) and precision == "bfloat16"
        margin_said = f"int8 ones must beat bf16 by {INT8_OVER_BF16}x; " if beaten else ""
        out.append(
            Choice(
                precision,
                engine,
                ratio,
                f"{SAYS[precision].format(quantize.ENGINES.get(engine, engine))}: {ratio:.1f}x "
                f"fp32 in this machine's start-up race ({_others(best, precision)}{margin_said}"
                f"{where})",
            )
        )
    race_said = f"({_others(best, 'float32')}{where})"
    fp32 = (
        f"float32: no other precision reached {MIN_SPEEDUP}x fp32 in this machine's start-up race"
    )
    fp32 = "float32" if out else f"{fp32} {race_said}"
    return (*out, Choice("float32", None, 1.0, fp32))


def _others(best: dict[str, tuple[float, str | None]], precision: str) -> str:
    said = [f"{p} {best[p][0]:.1f}x" for p in SAYS if p in best and p not in (precision, "float32")]
    return ", ".join(said) + "; " if said else ""


def forced(precision: str) -> Choice:
    """`precision` set by --dtype / QSEARCH_DTYPE: an int8 one on the int8 kernels that the race
    found faster here."""
    engine = engine_for(race(), precision)[1] if precision.startswith("int8") else None
    kernels = f"; {quantize.ENGINES.get(engine, engine)}'s int8 kernels" if engine else ""
    return Choice(precision, engine, why=f"{precision} (set by --dtype / QSEARCH_DTYPE{kernels})")
