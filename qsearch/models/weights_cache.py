"""A model's int8 weights kept on disk, so that a later start packs them instead of quantizing.

Quantizing Qwen3-0.6B's 196 linear layers (an observer pass, then the rounding) took about two
thirds of the int8 conversion; the rest is packing the weights for the kernels, which happens at
every start (packed weights don't serialise: torch unpacks them to save them). One file per model
under HF_HOME (qsearch/int8), beside the verdicts, keyed as they are (verdicts.py): by the model
files (path, config checksum, weights' names, sizes and times), the quantization scheme and
torch. The int8 values don't depend on the CPU or the kernels: int8 and int8+bf16, fbgemm and
oneDNN share one file (440 MB for Qwen3-0.6B, a quarter of its fp32 weights).

A file is used only when its JSON sidecar holds the same key and the sha256 of the weights file
(read in full at each start: ~0.3 s for 440 MB); anything else (a torn write, another model's
file, a bit flipped on disk) removes both, and the model is quantized and stored again. Files
appear whole (written aside, then renamed); a read-only cache is skipped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from . import verdicts

SCHEME = "per-channel symmetric qint8 (torch.ao per_channel_dynamic_qconfig)"
log = logging.getLogger("qsearch.models")


def folder() -> Path:
    """Where the int8 weights live: beside the verdicts, under the Hugging Face cache."""
    return verdicts.folder().parent / "int8"


def key(model_folder: Path) -> dict[str, Any]:
    """What a model's int8 weights depend on: its files, the scheme, torch."""
    import torch

    model_folder = Path(model_folder).resolve()
    weights = sorted(
        (p.name, p.stat().st_size, p.stat().st_mtime_ns)
        for p in model_folder.iterdir()
        if p.suffix in (".safetensors", ".bin")
    )
    config = (model_folder / "config.json").read_bytes()
    return {
        "check": "int8-weights",
        "model": str(model_folder),
        "config_sha256": hashlib.sha256(config).hexdigest(),
        "weights": weights,
        "scheme": SCHEME,
        "torch": torch.__version__,
        "schema": 1,
    }


def _paths(entry_key: dict[str, Any]) -> tuple[Path, Path]:
    digest = hashlib.sha256(json.dumps(entry_key, sort_keys=True).encode()).hexdigest()[:24]
    return folder() / f"int8-{digest}.safetensors", folder() / f"int8-{digest}.json"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def read(model_folder: Path) -> dict[str, Any] | None:
    """The model's int8 weights by layer name (torch.qint8 tensors), or None when absent,
    unreadable, stale or altered (such files are removed)."""
    import torch
    from safetensors import safe_open

    entry_key = key(model_folder)
    data, sidecar = _paths(entry_key)
    try:
        entry = json.loads(sidecar.read_text())
        same_key = json.dumps(entry["key"], sort_keys=True) == json.dumps(entry_key, sort_keys=True)
        if same_key and entry["sha256"] == _sha256(data):
            with safe_open(data, "pt") as f:  # copied out: a view would keep the file mapped

                def tensor(name: str) -> Any:
                    return f.get_tensor(name).clone()

                return {
                    name: torch._make_per_channel_quantized_tensor(
                        tensor(f"{name}.int8"),
                        tensor(f"{name}.scales"),
                        tensor(f"{name}.zero_points"),
                        0,
                    )  # fmt: skip
                    for name in entry["layers"]
                }
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as e:
        log.warning("int8 weights cache %s unreadable (%s): quantizing again", data, e)
    data.unlink(missing_ok=True)
    sidecar.unlink(missing_ok=True)
    return None


def write(model_folder: Path, weights: dict[str, Any]) -> None:
    """Keep `weights` (int8_weights' answer) for the model in `model_folder`; a cache that can't
    be written is skipped (the next start quantizes again)."""
    from safetensors.torch import save_file

    entry_key = key(model_folder)
    data, sidecar = _paths(entry_key)
    tensors = {}
    for name, w in weights.items():
        tensors[f"{name}.int8"] = w.int_repr().contiguous()
        tensors[f"{name}.scales"] = w.q_per_channel_scales().contiguous()
        tensors[f"{name}.zero_points"] = w.q_per_channel_zero_points().contiguous()
    try:
        data.parent.mkdir(parents=True, exist_ok=True)
        tmp = data.with_suffix(f".{os.getpid()}.safetensors.tmp")
        save_file(tensors, tmp)
        entry = {"key": entry_key, "sha256": _sha256(tmp), "layers": sorted(weights)}
        tmp_sidecar = sidecar.with_suffix(f".{os.getpid()}.json.tmp")
        tmp_sidecar.write_text(json.dumps(entry))
        os.replace(tmp, data)  # the same model quantizes to the same bytes: the last writer wins
        os.replace(tmp_sidecar, sidecar)
    except OSError as e:
        log.warning("int8 weights not cached in %s: %s", data.parent, e)
        for path in data.parent.glob(f"*.{os.getpid()}.*.tmp"):
            path.unlink(missing_ok=True)
