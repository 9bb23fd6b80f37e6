"""Lower precisions on the CPU, applied to a model loaded in fp32: bf16, torch's dynamic int8 linear
layers, and both together (int8+bf16: int8 linear layers, bf16 everywhere else); and `settle`,
which runs a model in the first of `auto`'s choices (cpu_race.py) that its quality check
(checks.py) lets through.

Why torch's dynamic int8: bench/int8_candidates.py compares it with torchao, ONNX Runtime and
OpenVINO on the same chunks (bench/results/README.md, "int8 on the CPU"); it is the fastest at the
quality bar there and needs no package beyond torch. Weights become int8 per output channel (per
tensor loses too much: MiniLM's min cosine vs fp32 0.88 against 0.97); activations are quantized
per batch at run time. Two kernel libraries run it, and the weights are packed for one of them
when quantized (`engine`): fbgemm (torch's default on x86: `vpmaddubsw` on AVX2, VNNI where
present) and oneDNN (AMX-INT8 where present, else VNNI or AVX2). cpu_race.py times both.

int8+bf16: torch's dynamic int8 linear takes fp32 only, so each one sits in a `FloatBoundary`
that casts its input up and its output back; attention (SDPA), norms, rotary embedding, SiLU and
the embedding table run in bf16, at half the memory traffic of fp32.

Quantizing is not cached on disk: the 0.6B model's 196 layers take 9.4 s on 2 cores (one layer
per thread), and most of that is torch packing the weights for its kernels (linear_prepack: 10.6 s
of 18.9 s one by one), which loading quantized weights from disk would pay again; a cache would
save only the rounding (quantize_per_channel: 5.5 s).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import threading
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import checks, verdicts

PRECISIONS = ("float32", "bfloat16", "int8", "int8+bf16")
ENGINES = {"fbgemm": "fbgemm", "onednn": "oneDNN"}  # torch's engine name: the library's
_ENGINE_LOCK = threading.Lock()  # the quantized engine is one global setting of torch


@dataclass(frozen=True)
class Choice:
    """A precision to run a model in, with the library whose int8 kernels it uses (int8 ones
    only), its speed in the start-up race (x fp32) and `why`: the line the page shows."""

    precision: str
    engine: str | None = None
    speedup: float = 1.0
    why: str = ""

    @property
    def label(self) -> str:
        """'int8+bf16/onednn': the precision and its int8 kernels, as the race names them."""
        return f"{self.precision}/{self.engine}" if self.engine else self.precision

    @property
    def int8(self) -> bool:
        return self.precision.startswith("int8")


def engines() -> list[str]:
    """The int8 kernel libraries this torch has (fbgemm and oneDNN on x86)."""
    import torch

    return [e for e in ENGINES if e in torch.backends.quantized.supported_engines]


@contextlib.contextmanager
def _packing_for(engine: str | None) -> Iterator[None]:
    """Weights quantized inside are packed for `engine`'s kernels (None: torch's current engine).
    A packed weight keeps its library, so the global setting is put back afterwards."""
    import torch

    if engine is None:
        yield
        return
    with _ENGINE_LOCK:
        before = torch.backends.quantized.engine
        torch.backends.quantized.engine = engine
        try:
            yield
        finally:
            torch.backends.quantized.engine = before


def quantize_linear(model: Any, engine: str | None = None) -> Any:
    """`model` with every nn.Linear replaced by its dynamic int8 version, in place, its weights
    packed for `engine`: what `quantize_dynamic` does, one layer per thread (`Linear.from_float`;
    weight packing releases the GIL: the 0.6B model's 196 layers took 18.9 s one by one on 2
    cores)."""
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
        with warnings.catch_warnings():  # torch.ao.quantization warns it is deprecated
            warnings.simplefilter("ignore")
            return dynamic.from_float(linear)

    with (
        _packing_for(engine),
        ThreadPoolExecutor(max(1, min(len(linears), torch.get_num_threads()))) as pool,
    ):
        for (parent, name, _), quantized in zip(linears, pool.map(one, [c for *_, c in linears])):
            setattr(parent, name, quantized)
    return model


@functools.lru_cache(maxsize=1)
def _float_boundary() -> type:
    import torch

    class FloatBoundary(torch.nn.Module):
        """An int8 linear layer (fp32 in, fp32 out) inside a bf16 model: casts at both ends."""

        def __init__(self, inner: torch.nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x.float()).to(x.dtype)

    return FloatBoundary


def convert(model: Any, precision: str, engine: str | None = None) -> Any:
    """`model` (in fp32) in `precision`, in place; int8 ones pack their weights for `engine`."""
    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "bfloat16":
        return model.to(torch.bfloat16)
    if precision.startswith("int8"):
        quantize_linear(model, engine)
    if precision == "int8+bf16":
        boundary = _float_boundary()
        for parent in list(model.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, torch.ao.nn.quantized.dynamic.Linear):
                    setattr(parent, name, boundary(child))
        model.to(torch.bfloat16)  # the packed int8 weights are no parameters: they stay
    return model


def has_int8(model: Any) -> bool:
    """Whether `model` holds int8 linear layers."""
    import torch

    return any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in model.modules())


def precision_of(model: Any) -> str:
    """The precision `model` runs in, one of PRECISIONS (float16 too, on a GPU)."""
    dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    if has_int8(model):
        return "int8+bf16" if dtype == "bfloat16" else "int8"
    return dtype


def settle(
    body: Any, folder: Path, choices: list[Choice], check: checks.QualityCheck | None
) -> tuple[Any, str]:
    """(`body` in the first of `choices` it may run in, why). `body` comes in fp32. A choice with
    int8 in it runs only where the model's copy in it passes `check` against fp32 (a verdict kept
    on disk, or measured now on a copy); fp32 and bf16 need no check. Without `check` (the
    precision was set by hand) the first choice runs unchecked."""
    missed: list[str] = []
    for choice in choices:
        if choice.precision == "float32" and missed:  # every faster one missed its bar
            return body, "float32: " + "; ".join(missed)
        if check is None or not choice.int8:
            return convert(body, choice.precision, choice.engine), _and(choice.why, missed)
        converted = None

        def measure(choice: Choice = choice) -> float:
            nonlocal converted
            reference = checks.pooled_states(body, check)
            converted = convert(copy.deepcopy(body), choice.precision, choice.engine)
            return check.agreement(reference, checks.pooled_states(converted, check))

        value = verdicts.remembered(checks.check_key(folder, check, choice.label), measure)
        if value >= check.bar:
            model = (
                converted
                if converted is not None
                else convert(body, choice.precision, choice.engine)
            )
            return model, _and(f"{choice.why}; {check.says(value)}", missed)
        missed.append(
            f"{choice.precision} ({choice.speedup:.1f}x fp32) missed this model's quality bar "
            f"({check.says(value)})"
        )
    return body, "float32: " + "; ".join(missed)


def _and(why: str, missed: list[str]) -> str:
    return "; ".join([why, *missed])
