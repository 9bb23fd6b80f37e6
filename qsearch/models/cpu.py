"""What this CPU offers the precisions `--dtype auto` races (cpu_race.py): its features as torch
reports them, less what the instruction-set caps in the environment hold back, and the key that a
machine's verdicts are stored under (verdicts.py).

The caps are the libraries' own variables, so a run can behave as an older CPU would:
`ONEDNN_MAX_CPU_ISA` caps oneDNN (bf16 matrix products, and its int8 kernels), `FBGEMM_ENABLE_-
INSTRUCTIONS` caps fbgemm (torch's default dynamic int8), `ATEN_CPU_CAPABILITY` torch's own
vectorised kernels and `MKL_ENABLE_INSTRUCTIONS` MKL's fp32 products. torch's `_is_*_supported`
still reports the hardware under them, so the features here apply them.
"""

from __future__ import annotations

import os
from typing import Any

ISA_CAPS = (
    "ONEDNN_MAX_CPU_ISA",
    "DNNL_MAX_CPU_ISA",
    "FBGEMM_ENABLE_INSTRUCTIONS",
    "ATEN_CPU_CAPABILITY",
    "MKL_ENABLE_INSTRUCTIONS",
)
BF16_NATIVE = ("AMX", "AVX512-BF16")  # the features that compute bf16 in hardware
# oneDNN caps below VNNI, and fbgemm's without it (fbgemm's Utils.cc: AVX512_E1 is VNNI)
_NO_VNNI = {"SSE41", "AVX", "AVX2", "AVX512_CORE", "AVX512", "AVX512_256"}


def isa_caps() -> dict[str, str]:
    """The instruction-set caps set in this process's environment, by variable."""
    return {name: os.environ[name] for name in ISA_CAPS if os.environ.get(name)}


def held_back(caps: dict[str, str]) -> set[str]:
    """The features `caps` keep the libraries from using (see the module's docstring)."""
    onednn = (caps.get("ONEDNN_MAX_CPU_ISA") or caps.get("DNNL_MAX_CPU_ISA") or "").upper()
    fbgemm = caps.get("FBGEMM_ENABLE_INSTRUCTIONS", "").upper()
    out = set()
    if onednn and onednn not in ("ALL", "DEFAULT") and "AMX" not in onednn:
        out.add("AMX")
        if not onednn.startswith(("AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX10")):
            out.add("AVX512-BF16")
    if onednn in _NO_VNNI or fbgemm in _NO_VNNI:
        out.add("VNNI")
    if fbgemm == "AVX2":
        out.add("AVX-512")
    return out


def cpu_features() -> list[str]:
    """The CPU features that decide int8 and bf16 speed, as torch sees them, less those the
    environment's caps hold back."""
    import torch

    checks = [
        ("AVX2", torch.cpu._is_avx2_supported),
        ("AVX-512", torch.cpu._is_avx512_supported),
        ("VNNI", torch.cpu._is_vnni_supported),
        ("AVX512-BF16", torch.cpu._is_avx512_bf16_supported),
        ("AMX", torch.cpu._is_amx_tile_supported),
    ]
    capped = held_back(isa_caps())
    return [name for name, check in checks if check() and name not in capped]


def bf16_native(features: list[str]) -> list[str]:
    """The features in `features` that compute bf16 in hardware (AMX, AVX512-BF16)."""
    return [f for f in BF16_NATIVE if f in features]


def int8_isa(features: list[str]) -> str:
    """The instruction set the int8 kernels use, for the page: 'AMX', 'AVX-512 VNNI', 'AVX2', ..."""
    if "AMX" in features:
        return "AMX"
    base = "AVX-512" if "AVX-512" in features else "AVX2" if "AVX2" in features else "no AVX2"
    return f"{base} VNNI" if "VNNI" in features else base


def describe(features: list[str]) -> str:
    """The CPU in the words a reason uses: its features and any caps on them."""
    caps = isa_caps()
    said = ", ".join(features) or "no AVX2"
    return f"{said}; {', '.join(f'{k}={v}' for k, v in caps.items())}" if caps else said


def machine_key(check: str) -> dict[str, Any]:
    """What a timing of this machine depends on: the CPU's features and caps, torch. Not the thread
    count: a ZeroGPU worker runs on one thread (gpu_boundary.py) and must choose as the app does."""
    import torch

    return {
        "check": check,
        "torch": torch.__version__,
        "cpu": cpu_features(),
        "caps": isa_caps(),
        "schema": 3,
    }
