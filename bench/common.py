"""What the benchmarks share: the chunk set, random-weight Qwen3 models with the real vocabulary,
and a record of the machine and versions that every result carries."""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from qsearch.models.cpu_race import QWEN3_06B  # noqa: E402 - after ROOT is on sys.path

# ../shared/data beside the checkout; where it isn't (a lent GPU machine gets the repository only),
# a copy in .devdata/ (git-ignored: `make gpu-carry` makes it)
SHARED = next(
    (p for p in (ROOT.parent / "shared" / "data", ROOT / ".devdata") if p.is_dir()),
    ROOT.parent / "shared" / "data",
)
QWEN_TIKTOKEN = SHARED / "tokenizer" / "qwen.tiktoken"
QWEN_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN_SPECIALS = [  # ids 151643..151668, in order
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
    "<tool_response>",
    "</tool_response>",
    "<think>",
    "</think>",
]


def qwen_tokenizer(folder: Path, *, append_eos: bool, tiktoken_file: Path = QWEN_TIKTOKEN) -> Any:
    """The real Qwen2/2.5/3 vocabulary from its tiktoken file, saved as a fast tokenizer in
    `folder`."""
    from tokenizers import normalizers, processors
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    if not tiktoken_file.is_file():
        raise SystemExit(
            f"{tiktoken_file} is missing: the real Qwen vocabulary lives in "
            "../shared/data/tokenizer"
        )
    tok = TikTokenConverter(
        vocab_file=str(tiktoken_file), pattern=QWEN_PATTERN, extra_special_tokens=QWEN_SPECIALS
    ).converted()
    tok.normalizer = normalizers.NFC()
    if append_eos:  # as current Qwen3-Embedding revisions do
        eos = tok.token_to_id("<|endoftext|>")
        tok.post_processor = processors.TemplateProcessing(
            single="$A <|endoftext|>",
            pair="$A $B <|endoftext|>",
            special_tokens=[("<|endoftext|>", eos)],
        )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        padding_side="left",
    )
    assert (
        fast.convert_tokens_to_ids("<|endoftext|>") == 151643
        and fast.convert_tokens_to_ids("</think>") == 151668
    )
    fast.save_pretrained(folder)
    return fast


def random_qwen3(folder: Path, *, reranker: bool = False) -> Path:
    """The exact Qwen3-Embedding-0.6B (or -Reranker-0.6B) architecture with random weights.

    Throughput is that of the real model; what it computes is meaningless.
    """
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM, Qwen3Model

    folder.mkdir(parents=True, exist_ok=True)
    if (folder / "config.json").is_file():
        return folder
    qwen_tokenizer(folder, append_eos=not reranker)
    torch.manual_seed(0)
    config = Qwen3Config(**QWEN3_06B)  # the exact architecture, as qsearch's CPU race knows it
    model = (Qwen3ForCausalLM if reranker else Qwen3Model)(config)
    model.to(torch.bfloat16).save_pretrained(folder)
    if not reranker:
        (folder / "modules.json").write_text(
            json.dumps(
                [
                    {
                        "idx": 0,
                        "name": "0",
                        "path": "",
                        "type": "sentence_transformers.models.Transformer",
                    },
                    {
                        "idx": 1,
                        "name": "1",
                        "path": "1_Pooling",
                        "type": "sentence_transformers.models.Pooling",
                    },
                    {
                        "idx": 2,
                        "name": "2",
                        "path": "2_Normalize",
                        "type": "sentence_transformers.models.Normalize",
                    },
                ]
            )
        )
        (folder / "1_Pooling").mkdir(exist_ok=True)
        (folder / "1_Pooling" / "config.json").write_text(
            json.dumps(
                {
                    "word_embedding_dimension": 1024,
                    "pooling_mode_lasttoken": True,
                    "include_prompt": True,
                }
            )
        )
        (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 8192}))
    return folder


def chunk_texts(
    source: Path, tokenizer: Any, max_tokens: int = 256, overlap: int = 32, limit: int | None = None
) -> list[str]:
    """Chunks as qsearch makes them: of a BEIR corpus (title + text per entry) or of a folder of
    files."""
    from qsearch.documents.chunk import chunk_document
    from qsearch.documents.read import IngestError, find_files, load
    from qsearch.types import Document

    texts: list[str] = []
    if (source / "corpus.jsonl").is_file():
        with open(source / "corpus.jsonl", encoding="utf-8") as f:
            for line in f:
                entry = json.loads(line)
                text = f"{entry.get('title') or ''}\n\n{entry.get('text') or ''}".strip()
                doc = Document(source=entry["_id"], text=text, doc_id=entry["_id"], kind="text")
                texts.extend(c.text for c in chunk_document(doc, tokenizer, max_tokens, overlap))
                if limit and len(texts) >= limit:
                    break
    else:
        for path in find_files([source]):
            try:
                texts.extend(
                    c.text for c in chunk_document(load(path), tokenizer, max_tokens, overlap)
                )
            except IngestError:
                continue
            if limit and len(texts) >= limit:
                break
    return texts[:limit] if limit else texts


def versions(*packages: str) -> dict[str, str]:
    """Each installed package's version; the ones not installed are left out."""
    import importlib.metadata as md

    out = {}
    for package in packages:
        try:
            out[package] = md.version(package)
        except md.PackageNotFoundError:
            pass
    return out


def environment(device: str) -> dict[str, Any]:
    """The machine and the versions a figure was taken with."""
    import torch

    installed = versions(
        "torch",
        "transformers",
        "sentence-transformers",
        "faiss-gpu",
        "faiss-cpu",
        "numpy",
        "gradio",
    )
    on_gpu = device.startswith("cuda") and torch.cuda.is_available()
    return {
        "device": device,
        "gpu": torch.cuda.get_device_name(0) if on_gpu else None,
        **(gpu_facts() if on_gpu else {}),
        "cpu": platform.processor() or platform.machine(),
        **cpu_facts(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "versions": installed,
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "load_average": [round(x, 2) for x in os.getloadavg()],  # 1, 5, 15 min, when recorded
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def cpu_facts() -> dict[str, Any]:
    """The CPU's model name and family (Linux: /proc/cpuinfo) and the features qsearch's precision
    race reads, less any ISA caps set (which make a run an emulation of another CPU class)."""
    from qsearch.models import cpu

    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                name, _, value = line.partition(":")
                if (
                    name.strip() in ("model name", "cpu family", "model")
                    and name.strip() not in info
                ):
                    info[name.strip()] = value.strip()
    except OSError:
        pass
    return {
        "cpu_model": info.get("model name"),
        "cpu_family_model": f"{info.get('cpu family')}/{info.get('model')}" if info else None,
        "cpu_features": cpu.cpu_features(),
        "isa_caps": cpu.isa_caps(),
        "emulated": bool(cpu.isa_caps()),
    }


def gpu_facts() -> dict[str, Any]:
    """The GPU's capability and memory, the driver (nvidia-smi) and the CUDA torch was built
    with."""
    import subprocess

    import torch

    props = torch.cuda.get_device_properties(0)
    try:
        query = ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]
        done = subprocess.run(query, capture_output=True, text=True, timeout=30)
        driver = done.stdout.strip().splitlines()[0] if done.returncode == 0 else None
    except (OSError, IndexError, subprocess.TimeoutExpired):
        driver = None
    return {
        "gpu_capability": f"{props.major}.{props.minor}",
        "gpu_memory_gib": round(props.total_memory / 2**30, 1),
        "driver": driver,
        "cuda": torch.version.cuda,
    }


def model_label(model: str | None, folder: Path) -> str:
    """What a result names the model by: qsearch's one name for it (config.model_name)."""
    from qsearch.config import model_name  # after ROOT is on sys.path

    return model_name(model or str(folder))


def rss_mb() -> float:
    """This process's resident memory now, MB (Linux: /proc/self/status; elsewhere the peak)."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return peak_rss_mb()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def gpu_mb(device: str) -> dict[str, float]:
    """On a GPU: the memory torch holds there now and at its peak, MB; {} elsewhere."""
    import torch

    if not device.startswith("cuda"):
        return {}
    torch.cuda.synchronize()
    return {
        "gpu_allocated_mb": round(torch.cuda.memory_allocated() / 2**20, 1),
        "gpu_peak_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1),
    }
