"""Where a model comes from and what it runs on: hub id or folder -> local folder; device; dtype.

Loading is the real Hugging Face path (`snapshot_download`, then `from_pretrained` on the
folder). Without a reachable hub and no cached copy it fails at once with a message
that says how to point qsearch at a local folder.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path

# re-exported: it moved to config, beside model_name
from ..config import bundled_small_model as bundled_small_model
from . import cpu_race, quantize

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


INT8_DTYPES = ("int8", "int8+bf16")  # CPU paths: loaded in fp32, converted after (quantize.py)


def pick_dtype(device: str, setting: str = "auto", folder: Path | None = None):  # noqa: ANN201 - torch.dtype, lazy torch
    """The dtype to load in: `setting` when given; else on a GPU bf16 where its compute capability
    is >= 8.0, fp16 below (a T4 reports `is_bf16_supported()` True, but only emulates it); fp16
    on Apple's MPS; on a CPU bf16 where it won this machine's race (cpu_race.py), else fp32. The
    int8 precisions load as their checkpoint in `folder` stores the weights where that is bf16
    (exact in fp32, at half the memory), else in fp32, and are converted after loading (see
    cpu_choices and quantize.settle)."""
    import torch

    if setting in INT8_DTYPES:
        return _int8_load_dtype(device, setting, folder)
    if setting != "auto":
        return getattr(torch, setting)
    if device.startswith("cuda"):
        return torch.bfloat16 if gpu_capability(device) >= NATIVE_BF16 else torch.float16
    if device.startswith("mps"):
        return torch.float16
    first = cpu_race.choices()[0]
    if first.int8:
        return _int8_load_dtype(device, first.precision, folder)
    return torch.bfloat16 if first.precision == "bfloat16" else torch.float32


def checkpoint_dtype(folder: Path | None) -> str | None:
    """The one dtype every floating tensor of the checkpoint in `folder` is stored in ('BF16',
    'F32', ...), from the safetensors headers alone; None where it has none or several."""
    from safetensors import safe_open

    if folder is None:
        return None
    files = sorted(Path(folder).glob("*.safetensors"))
    dtypes = set()
    try:
        for path in files:
            with safe_open(path, "pt") as f:
                dtypes |= {f.get_slice(name).get_dtype() for name in f.keys()}
    except (OSError, ValueError, RuntimeError):
        return None
    floating = dtypes & {"F64", "F32", "F16", "BF16"}
    return next(iter(floating)) if len(floating) == 1 else None


def dtype_reason(device: str, setting: str = "auto") -> str:
    """Which dtype runs on `device`, and why: one line for the page and --help."""
    if setting != "auto":
        return (
            cpu_race.forced(setting).why
            if setting in INT8_DTYPES
            else (f"{setting} (set by --dtype / QSEARCH_DTYPE)")
        )
    if device.startswith("cuda"):
        major, minor = gpu_capability(device)
        if (major, minor) >= NATIVE_BF16:
            return f"bfloat16 (GPU compute capability {major}.{minor} computes bf16 natively)"
        return f"float16 (GPU compute capability {major}.{minor}: bf16 would be emulated)"
    if device.startswith("mps"):
        return "float16 (Apple GPU through MPS)"
    return cpu_race.choices()[0].why


def _int8_load_dtype(device: str, setting: str, folder: Path | None = None):  # noqa: ANN202 - torch.dtype
    """int8 is a CPU path (torch's dynamic quantization): load as the checkpoint stores it where
    that is bf16, else fp32; quantize after loading."""
    import torch

    if device != "cpu":
        raise ModelLoadError(f"dtype {setting!r} runs on the CPU only, not on device {device!r}")
    return torch.bfloat16 if checkpoint_dtype(folder) == "BF16" else torch.float32


def cpu_choices(device: str, setting: str = "auto") -> list[quantize.Choice]:
    """The precisions a model loaded (in fp32) for `device` goes through after loading, the first
    its quality check lets through running (quantize.settle); empty when it runs as loaded. A
    precision set by hand is the only one, unchecked."""
    if setting in INT8_DTYPES:
        _int8_load_dtype(device, setting, None)
        return [cpu_race.forced(setting)]
    if setting != "auto" or device != "cpu":
        return []
    ranked = list(cpu_race.choices())
    return ranked if ranked[0].int8 else []


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

    if not setting or device != "cpu" or model.dtype != torch.bfloat16 or quantize.has_int8(model):
        return False  # int8+bf16 too stays eager: its int8 layers are opaque to the compiler
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
