"""Where a model comes from and what it runs on: hub id or folder -> local folder; device; dtype.

Loading is the real Hugging Face path (`snapshot_download`, then `from_pretrained` on the
folder). Without a reachable hub and no cached copy it fails at once with a message
that says how to point qsearch at a local folder.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import time
from pathlib import Path

# re-exported: it moved to config, beside model_name
from ..config import bundled_small_model as bundled_small_model
from . import quantize, verdicts

# Fail in seconds, not minutes, when the hub can't be reached (users may set their own).
os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "5")
os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "20")

_MODEL_FILES = ["*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken"]


class ModelLoadError(RuntimeError):
    """A model that can't be found or loaded; the message says what to do."""


def resolve_model(
    name_or_path: str, *, flag: str = "--embed-model", env: str = "QSEARCH_EMBED_MODEL"
) -> Path:
    """A local folder holding the model: the folder itself, the hub cache, or a fresh download."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"{path} is a folder but holds no config.json: not a model folder")
        return path
    if path.exists() or name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1:
        raise ModelLoadError(f"model folder {name_or_path!r} does not exist")

    from huggingface_hub import HfApi, constants, snapshot_download

    try:
        return Path(
            snapshot_download(name_or_path, allow_patterns=_MODEL_FILES, local_files_only=True)
        )
    except Exception:  # noqa: BLE001 - not cached: try the hub below
        pass
    try:
        # snapshot_download asks the hub for the repository with no timeout: a hub (or proxy)
        # that accepts and never answers would hang it. Ask once with one, then download.
        HfApi().model_info(name_or_path, timeout=constants.HF_HUB_ETAG_TIMEOUT)
        return Path(snapshot_download(name_or_path, allow_patterns=_MODEL_FILES))
    except Exception as e:  # noqa: BLE001 - network, auth, missing repo: all end the same way
        reason = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise ModelLoadError(
            f"can't load model {name_or_path!r}: not cached here and the Hugging Face hub "
            f"can't be reached ({reason}). Download it where the hub is reachable "
            f"(`hf download {name_or_path} --local-dir DIR`), then pass {flag} DIR "
            f"or set {env}=DIR."
        ) from None


def device_label(device: str) -> str:
    """What the page calls `device`: the GPU's own name, the CPU, Apple's GPU or a server."""
    if device.startswith("cuda"):
        import torch

        return f"GPU: {torch.cuda.get_device_name(torch.device(device))}"
    if device == "cpu":
        return "CPU (no GPU here: indexing large files takes minutes)"
    return "Apple GPU (MPS)" if device.startswith("mps") else "a remote server"


def pick_device(setting: str = "auto") -> str:
    """'auto' -> 'cuda' when a GPU is there, 'mps' on Apple silicon, else 'cpu'; explicit settings
    are checked."""
    import torch

    if setting == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if torch.backends.mps.is_available() else "cpu"
    if setting.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(
            f"device {setting!r} asked for, but no CUDA GPU is available (use 'cpu' or 'auto')"
        )
    return setting


def gpu_capability(device: str) -> tuple[int, int]:
    """The CUDA compute capability of `device` ('cuda' or 'cuda:N'), e.g. (7, 5) on a T4."""
    import torch

    return tuple(torch.cuda.get_device_capability(device))


NATIVE_BF16 = (8, 0)  # Ampere (A100, A10, L4) and later compute bf16 in hardware


def pick_dtype(device: str, setting: str = "auto"):  # noqa: ANN201 - torch.dtype, lazy torch
    """The dtype to run in: `setting` when given; else on a GPU bf16 where its compute capability
    is >= 8.0, fp16 below (a T4 reports `is_bf16_supported()` True, but only emulates it); fp16
    on Apple's MPS; on a CPU bf16 where it computes it natively (see cpu_dtype), else fp32.
    int8 loads in fp32 and is quantized after loading (see wants_int8)."""
    import torch

    if setting == "int8":
        return _int8_load_dtype(device)
    if setting != "auto":
        return getattr(torch, setting)
    if device.startswith("cuda"):
        return torch.bfloat16 if gpu_capability(device) >= NATIVE_BF16 else torch.float16
    if device.startswith("mps"):
        return torch.float16
    return torch.bfloat16 if cpu_dtype()[0] == "bfloat16" else torch.float32


def dtype_reason(device: str, setting: str = "auto") -> str:
    """Which dtype runs on `device`, and why: one line for the page and --help."""
    if setting != "auto":
        return f"{setting} (set by --dtype / QSEARCH_DTYPE)"
    if device.startswith("cuda"):
        major, minor = gpu_capability(device)
        if (major, minor) >= NATIVE_BF16:
            return f"bfloat16 (GPU compute capability {major}.{minor} computes bf16 natively)"
        return f"float16 (GPU compute capability {major}.{minor}: bf16 would be emulated)"
    if device.startswith("mps"):
        return "float16 (Apple GPU through MPS)"
    return cpu_dtype()[1]


def _int8_load_dtype(device: str):  # noqa: ANN202 - torch.dtype
    """int8 is a CPU path (torch's dynamic quantization): load fp32, quantize after loading."""
    import torch

    if device != "cpu":
        raise ModelLoadError(f"dtype 'int8' runs on the CPU only, not on device {device!r}")
    return torch.float32


def wants_int8(device: str, setting: str = "auto") -> bool:
    """Whether a model loaded for `device` should be quantized to int8 (forced, or auto's pick)."""
    if setting == "int8":
        _int8_load_dtype(device)
        return True
    return setting == "auto" and device == "cpu" and cpu_dtype()[0] == "int8"


def cpu_bf16_flags() -> list[str]:
    """The CPU features torch reports that compute bf16 natively: AMX tiles, AVX512-BF16."""
    import torch

    flags = []
    if torch.cpu._is_amx_tile_supported():
        flags.append("AMX")
    if torch.cpu._is_avx512_bf16_supported():
        flags.append("AVX512-BF16")
    return flags


BF16_MIN_SPEEDUP = 1.5  # bf16 must be at least this much faster than fp32 in the check to be chosen


@functools.lru_cache(maxsize=1)
def cpu_dtype() -> tuple[str, str]:
    """("bfloat16", "int8" or "float32", why) for this CPU: bf16 where the CPU has AMX or
    AVX512-BF16 *and* a quick timing confirms it faster than fp32; else int8 where a timing shows
    it at least INT8_MIN_SPEEDUP x fp32 (see quantize.py); else fp32. On AMX the two are raced."""
    flags = cpu_bf16_flags()
    if not flags:
        return cpu_int8_or_fp32("neither AMX nor AVX512-BF16")
    speedup = bf16_speedup()
    if speedup < BF16_MIN_SPEEDUP:
        return cpu_int8_or_fp32(
            f"the CPU reports {' and '.join(flags)}, but bf16 measured only {speedup:.1f}x fp32"
        )
    bf16 = (
        "bfloat16",
        f"bfloat16: this CPU has {' and '.join(flags)} (bf16 measured {speedup:.1f}x fp32 here)",
    )
    if "AMX" not in flags:
        return bf16
    int8 = cpu_int8_or_fp32(f"bf16 {speedup:.1f}x fp32")  # AMX-INT8: let the faster one win
    return int8 if int8[0] == "int8" and quantize.int8_speedup() > speedup else bf16


def cpu_int8_or_fp32(no_bf16: str) -> tuple[str, str]:
    """("int8", why) where int8 measures at least INT8_MIN_SPEEDUP x fp32 here, else
    ("float32", why). `no_bf16` says why bf16 is out (or what it measured)."""
    isa = quantize.int8_isa(quantize.cpu_features())
    speedup = quantize.int8_speedup()
    if speedup >= quantize.INT8_MIN_SPEEDUP:
        return "int8", f"int8 ({isa}, {no_bf16}; {speedup:.1f}x fp32 at start-up)"
    return "float32", (
        f"float32: this CPU has {no_bf16}, and int8 ({isa}) measured only {speedup:.1f}x fp32 "
        f"at start-up (needs {quantize.INT8_MIN_SPEEDUP}x)"
    )


def bf16_speedup() -> float:
    """fp32 time / bf16 time on this machine: measured once, then read from disk (verdicts.py)."""
    return verdicts.remembered(quantize.machine_key("bf16-speedup"), measure_bf16_speedup)


def measure_bf16_speedup(rows: int = 256, width: int = 1024, repeats: int = 3) -> float:
    """fp32 time / bf16 time of one (rows x width) @ (width x 3 width) product, best of
    `repeats`."""
    import torch

    def best(dtype: torch.dtype) -> float:
        a, b = torch.randn(rows, width, dtype=dtype), torch.randn(width, 3 * width, dtype=dtype)
        a @ b  # warm up
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - started)
        return min(times)

    return best(torch.float32) / best(torch.bfloat16)


FUSED_MODULES = (
    "Attention",
    "MLP",
    "RMSNorm",
)  # class-name endings of the decoder blocks torch.compile fuses


def compile_on_cpu(model, device: str, setting: bool) -> bool:  # noqa: ANN001 - a transformers model
    """On a CPU in bf16, compile a decoder's attention, MLP and RMSNorm modules in place
    (`Module.compile`, dynamic shapes), unless `setting` is False. Returns whether it compiled.

    Why: there the matrix products run on AMX and much of the rest is memory-bound element-wise
    work (norms upcast to fp32, rotary embeddings, SiLU times up-projection); fusing it gives
    1.2-1.4x (bench/results/cpu-forward-qwen3-0.6b-random-xeon-amx.json). Compiling takes ~20 s
    once per machine (inductor's on-disk cache serves later starts) and needs a C++ compiler:
    without one, or if a trial compile fails, the model stays as it is. A module inside one already
    compiled (the q/k norms inside attention) is compiled with it, not again.
    """
    import torch

    if not setting or device != "cpu" or model.dtype != torch.bfloat16:
        return False
    modules, inside = [], ()
    for name, module in model.named_modules():  # parents come before their children
        if type(module).__name__.endswith(FUSED_MODULES) and not (
            inside and name.startswith(inside)
        ):
            modules.append(module)
            inside = (*inside, name + ".")
    if not modules or not _can_compile():
        return False
    for module in modules:
        module.compile(dynamic=True)
    return True


@functools.lru_cache(maxsize=1)
def _can_compile() -> bool:
    """Whether torch.compile works here: a C++ compiler, and a trial compile of one small
    function."""
    import shutil

    import torch

    if not any(shutil.which(cxx) for cxx in ("g++", "c++", "clang++")):
        return False
    try:
        return bool(torch.compile(lambda x: x * 2 + 1)(torch.ones(3))[0] == 3)
    except Exception:  # noqa: BLE001 - any failure means: run eagerly
        return False


def pick_attention(device: str) -> str:
    """flash-attention-2 when installed on a GPU of compute capability >= 8.0 (it needs one); below
    8.0 `SDPA_REPEAT_KV` (see attention.py: SDPA's memory-efficient kernel, not the math one);
    else PyTorch's SDPA."""
    if not device.startswith("cuda"):
        return "sdpa"
    if gpu_capability(device) < NATIVE_BF16:
        from .attention import register

        return register()
    return "flash_attention_2" if importlib.util.find_spec("flash_attn") is not None else "sdpa"


def quiet_transformers() -> None:
    """No per-load progress bars or advisory warnings: qsearch reports its own progress."""
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()
