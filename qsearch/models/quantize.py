"""Lower precisions on the CPU, applied in place to a loaded model: bf16, torch's dynamic int8
linear layers, and both together (int8+bf16: int8 linear layers, bf16 everywhere else). settle.py
runs a model in the first of `auto`'s choices (cpu_race.py) that its quality check (checks.py)
lets through.

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

Converting runs in place, one layer at a time (the model is never held twice), and the int8
weights are kept on disk (weights_cache.py): a later start skips the observing and rounding and
only packs them for the kernels.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

PRECISIONS = ("float32", "bfloat16", "int8", "int8+bf16")
ENGINES = {"fbgemm": "fbgemm", "onednn": "oneDNN"}  # torch's engine name: the library's
Int8Weights = dict[str, Any]  # a model's quantized linear weights (torch.qint8), by layer name
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


def quantize_linear(model: Any, engine: str | None = None, int8: Int8Weights | None = None) -> Any:
    """`model` with every nn.Linear replaced by its dynamic int8 version, in place, its weights
    packed for `engine`: what `quantize_dynamic` does, one layer per thread (`Linear.from_float`;
    weight packing releases the GIL: the 0.6B model's 196 layers took 18.9 s one by one on 2
    cores). Each layer's float weights go as soon as its int8 copy exists, so the model is never
    held twice; a layer stored in bf16 (a bf16 checkpoint) is quantized from its exact fp32 value.
    `int8`: each layer's int8 weights by name, as `int8_weights` gave them (weights_cache.py):
    then only the packing runs. Returns `model`."""
    import torch

    dynamic = torch.ao.nn.quantized.dynamic.Linear
    qconfig = torch.ao.quantization.per_channel_dynamic_qconfig  # per-tensor: MiniLM cos 0.88
    sites = [
        (f"{prefix}.{name}".lstrip("."), parent, name)
        for prefix, parent in model.named_modules()
        for name, child in parent.named_children()
        if type(child) is torch.nn.Linear
    ]

    def one(site: tuple[str, Any, str]) -> None:
        path, parent, name = site
        linear = getattr(parent, name)
        if int8 is not None and path in int8:
            quantized = dynamic(linear.in_features, linear.out_features, dtype=torch.qint8)
            bias = None if linear.bias is None else linear.bias.detach().float()
            quantized.set_weight_bias(int8[path], bias)
        else:
            linear.float()  # this layer only (from bf16: exact), as a fp32 load would give it
            linear.qconfig = qconfig
            with warnings.catch_warnings():  # torch.ao.quantization warns it is deprecated
                warnings.simplefilter("ignore")
                quantized = dynamic.from_float(linear)
        setattr(parent, name, quantized)  # the float layer is dropped here

    with (
        _packing_for(engine),
        ThreadPoolExecutor(max(1, min(len(sites), torch.get_num_threads()))) as pool,
    ):
        for _ in pool.map(one, sites):
            pass
    return model


def int8_weights(model: Any) -> Int8Weights:
    """Each int8 linear layer's quantized weight (int8 values, per-channel scales), by its name in
    `model`: what `quantize_linear(int8=...)` takes, and weights_cache.py keeps on disk."""
    import torch

    dynamic = torch.ao.nn.quantized.dynamic.Linear
    return {  # int8+bf16 wraps each layer in a FloatBoundary: the layer's name is its own
        name.removesuffix(".inner"): m.weight()
        for name, m in model.named_modules()
        if isinstance(m, dynamic)
    }


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


def convert(
    model: Any, precision: str, engine: str | None = None, int8: Int8Weights | None = None
) -> Any:
    """`model` (in fp32, or in bf16 as its checkpoint stores it) in `precision`, in place, one
    layer at a time; int8 ones pack their weights for `engine` (`int8`: their int8 weights, already
    quantized) and keep the embedding table in int8 too, one scale per row (`Int8Embedding`:
    Qwen3-0.6B's 151,669 x 1,024 table is 0.6 GB in fp32, 0.15 GB so)."""
    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision in ("float32", "bfloat16"):
        return model.to(getattr(torch, precision))
    quantize_linear(model, engine, int8)
    table = _int8_table(model)
    if precision == "int8+bf16":
        boundary = _float_boundary()
        for parent in list(model.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, torch.ao.nn.quantized.dynamic.Linear):
                    setattr(parent, name, boundary(child))
        model.to(torch.bfloat16)  # the packed int8 weights are no parameters: they stay
    else:
        model.float()
    if table is not None:
        table.rows_dtype = torch.bfloat16 if precision == "int8+bf16" else torch.float32
    return model


def _int8_table(model: Any) -> Any:
    """The model's input embedding table replaced by an `Int8Embedding` (None: it has none)."""
    import torch

    table = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if type(table) is not torch.nn.Embedding:
        return table if isinstance(table, _int8_embedding()) else None
    quantized = _int8_embedding()(table)
    model.set_input_embeddings(quantized)
    return quantized


@functools.lru_cache(maxsize=1)
def _int8_embedding() -> type:
    import torch

    class Int8Embedding(torch.nn.Module):
        """An embedding table in int8 with one scale per row (symmetric: the row's largest
        magnitude maps to 127); the rows it looks up come back in `rows_dtype`. A quarter of the
        memory of fp32; the model's quality check decides whether it runs (checks.py)."""

        def __init__(self, table: torch.nn.Embedding, block: int = 8192):
            super().__init__()
            rows, width = table.weight.shape
            self.num_embeddings, self.embedding_dim = rows, width
            self.padding_idx = table.padding_idx
            self.rows_dtype = torch.float32
            values = torch.empty((rows, width), dtype=torch.int8)
            scales = torch.empty(rows, dtype=torch.float32)
            with torch.no_grad():
                for start in range(0, rows, block):  # a block at a time: no fp32 copy of it all
                    part = table.weight[start : start + block].float()
                    scale = part.abs().amax(dim=1).clamp(min=1e-30) / 127
                    values[start : start + block] = (part / scale[:, None]).round_().to(torch.int8)
                    scales[start : start + block] = scale
            self.register_buffer("weight", values)  # int8: `Module.to(dtype)` leaves it as it is
            self.scales = scales  # a plain tensor: no cast to bf16 may touch it

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            rows = torch.nn.functional.embedding(ids, self.weight).float()
            return (rows * self.scales[ids].unsqueeze(-1)).to(self.rows_dtype)

        def extra_repr(self) -> str:
            return f"{self.num_embeddings}, {self.embedding_dim}, int8 rows -> {self.rows_dtype}"

    return Int8Embedding


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
