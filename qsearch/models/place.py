"""A model on its device in its dtype: `from_pretrained`, `.to(device)`, eval; on Apple's MPS a
trial forward pass, and the CPU when anything fails there; the float32 copy the non-finite guard
uses. Which device, dtype and attention come from loading.py."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import loading


def load_model(auto_class: Any, folder: Path, device: str, setting: str) -> tuple[Any, str, str]:
    """(model in eval mode on its device, that device, why this device and dtype): the page shows
    the last. On Apple's MPS any failure while loading or in a trial forward pass falls back to
    the CPU, and the reason says so."""
    dtype = loading.pick_dtype(device, setting, folder)
    try:
        model = _from_pretrained(auto_class, folder, device, dtype)
        if device.startswith("mps"):
            _trial_forward(model, device)
        return model, device, loading.dtype_reason(device, setting)
    except Exception as e:  # noqa: BLE001 - whatever MPS lacks; elsewhere the error stands
        if not device.startswith("mps"):
            raise
        why = f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"
    model = _from_pretrained(auto_class, folder, "cpu", loading.pick_dtype("cpu", setting, folder))
    return (
        model,
        "cpu",
        f"{loading.dtype_reason('cpu', setting)}; on the CPU because MPS failed ({why})",
    )


def reload(auto_class: Any, folder: Path, device: str, setting: str) -> Any:
    """The model loaded again as `load_model` loaded it (on `device`, which is where it ended up):
    for `quantize.settle`, when a check it failed converted the first one."""
    return _from_pretrained(auto_class, folder, device, loading.pick_dtype(device, setting, folder))


def load_fp32_copy(auto_class: Any, folder: Path, device: str) -> Any:
    """A float32 copy of a model, for the non-finite guard: loaded from its folder on first use."""
    import torch

    return _from_pretrained(auto_class, folder, device, torch.float32)


def _from_pretrained(auto_class: Any, folder: Path, device: str, dtype: Any) -> Any:
    """On a CUDA GPU the weights go from the file straight to the GPU (`device_map`: no copy in
    the CPU's memory, which the allocator would keep); on ZeroGPU, whose `spaces` package defers
    the main process's `.to("cuda")`, and elsewhere, loaded on the CPU and moved."""
    direct = device.startswith("cuda") and not os.environ.get("SPACES_ZERO_GPU")
    model = auto_class.from_pretrained(
        folder,
        dtype=dtype,
        attn_implementation=loading.pick_attention(device),
        **({"device_map": device} if direct else {}),
    )
    return model.to(device).eval()


@contextlib.contextmanager
def in_float32(model: Any) -> Iterator[Any]:
    """`model` in fp32 for the block, then back in its own dtype: bf16 or fp16 -> fp32 -> back is
    exact. The non-finite guard's float32 pass on a GPU, at the cost of the fp32 weights for that
    pass only (a second fp32 model would hold 2.4 GB of GPU memory for Qwen3-0.6B from then on)."""
    dtype = model.dtype
    model.float()
    try:
        yield model
    finally:
        model.to(dtype)


def _trial_forward(model: Any, device: str) -> None:
    import torch

    with torch.inference_mode():
        model(input_ids=torch.zeros((1, 2), dtype=torch.long, device=device))
