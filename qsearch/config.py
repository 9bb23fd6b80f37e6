"""Settings: one frozen dataclass, filled from defaults, QSEARCH_* variables and flags."""

from __future__ import annotations

import os
import typing
from dataclasses import dataclass, fields, replace
from typing import Any

VERSION = "0.1.0"
DEFAULT_EMBED_MODEL = "Qwen/Qwen3-Embedding-0.6B"
DEFAULT_RERANK_MODEL = "Qwen/Qwen3-Reranker-0.6B"
INDEX_KINDS = ("flat", "hnsw")
SEARCH_MODES = ("hybrid", "dense", "lexical")
FUSIONS = ("tmm", "minmax", "rrf")  # see fusion.py
DEFAULT_FUSION, DEFAULT_DENSE_WEIGHT = (
    "tmm",
    0.8,
)  # the best of the SciFact dev sweep (README, Quality)
DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "float32", "bfloat16", "float16", "int8")
NO_COMPILE_HELP = "on a CPU in bf16, don't torch.compile attention, MLPs and norms (saves ~20 s at the first start)"


@dataclass(frozen=True)
class Settings:
    """Everything that can be configured. Environment: QSEARCH_<FIELD NAME IN CAPITALS>."""

    embed_model: str = DEFAULT_EMBED_MODEL
    rerank_model: str = DEFAULT_RERANK_MODEL
    embed_dim: int | None = None  # MRL: keep the first N dimensions (Qwen3: 32..1024)
    embed_url: str | None = (
        None  # an OpenAI-compatible server's /v1 to embed with instead of a local model
    )
    rerank_url: str | None = None  # a /v1/rerank server to rerank with instead of a local model
    remote_api_key: str | None = None  # bearer token for those servers
    chunk_tokens: int = 256
    chunk_overlap: int = 32
    index_kind: str = "flat"  # "flat" is exact; "hnsw" is approximate, for large collections
    search_mode: str = "hybrid"  # dense + BM25, fused: best on SciFact (see README, Quality)
    fusion: str = (
        DEFAULT_FUSION  # how hybrid mode fuses (fusion.py); chosen on SciFact dev, README Quality
    )
    dense_weight: float = DEFAULT_DENSE_WEIGHT  # convex fusion: share of the dense score
    rrf_k: int = 60  # rrf fusion: the rank constant
    device: str = "auto"  # "auto" takes the GPU when there is one
    dtype: str = "auto"  # "auto": bf16/fp16 on GPU; CPU: native bf16, else int8 if fast, else fp32
    compile: bool = True  # on a CPU in bf16, torch.compile a decoder's attention, MLPs and norms (loading.compile_on_cpu)
    ocr: bool = (
        True  # read pages without a text layer, and images, with Tesseract when it is installed
    )
    ocr_lang: str = "eng"  # Tesseract language(s), e.g. "eng+deu"
    max_batch_tokens: int | None = None  # tokens per forward pass; None picks by device
    max_file_mb: float = 50.0
    max_pages: int = 2000
    max_chars: int = 10_000_000
    max_seconds_per_file: float = 120.0  # text extraction time for one file
    milvus_uri: str | None = (
        None  # a Milvus Lite .db file or http://host:19530: the shared collection's store
    )
    milvus_collection: str = "qsearch"
    milvus_token: str | None = (
        None  # Milvus / Zilliz Cloud credentials ("user:password" or an API key)
    )
    max_files: int | None = None  # documents one collection may hold (the app sets one per session)
    max_chunks: int | None = None  # chunks one collection may hold

    def __post_init__(self) -> None:
        if self.chunk_tokens < 16:
            raise ValueError(f"chunk_tokens must be at least 16, got {self.chunk_tokens}")
        if not 0 <= self.chunk_overlap < self.chunk_tokens // 2:
            raise ValueError(
                f"chunk_overlap must be in 0..{self.chunk_tokens // 2 - 1} "
                f"(under half of chunk_tokens={self.chunk_tokens}), got {self.chunk_overlap}"
            )
        if self.index_kind not in INDEX_KINDS:
            raise ValueError(f"index_kind must be one of {INDEX_KINDS}, got {self.index_kind!r}")
        if self.search_mode not in SEARCH_MODES:
            raise ValueError(f"search_mode must be one of {SEARCH_MODES}, got {self.search_mode!r}")
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {self.fusion!r}")
        if not 0 <= self.dense_weight <= 1:
            raise ValueError(f"dense_weight must be in 0..1, got {self.dense_weight}")
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise ValueError(f"device must be one of {DEVICES} or 'cuda:N', got {self.device!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.embed_dim is not None and self.embed_dim < 1:
            raise ValueError(f"embed_dim must be positive, got {self.embed_dim}")
        for name in (
            "max_file_mb",
            "max_pages",
            "max_chars",
            "max_seconds_per_file",
            "max_files",
            "max_chunks",
        ):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * 1024 * 1024)

    def chunk_sizes(self, model_max_tokens: int) -> tuple[int, int]:
        """(tokens per chunk, overlap): the configured size within what the model reads, overlap <= a quarter."""
        size = min(self.chunk_tokens, model_max_tokens)
        return size, min(self.chunk_overlap, size // 4)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then QSEARCH_* variables, then `overrides` (flags); None means unset."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        types = typing.get_type_hints(cls)
        for f in fields(cls):
            raw = env.get(f"QSEARCH_{f.name.upper()}")
            if raw not in (None, ""):
                values[f.name] = _parse(f.name, raw, types[f.name])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)


def _parse(name: str, raw: str, annotation: Any) -> Any:
    """`raw` as the field's type: `int | None` parses as int, `bool` from 1/0, true/false, yes/no, on/off."""
    kinds = [t for t in typing.get_args(annotation) if t is not type(None)] or [annotation]
    kind = kinds[0]
    if kind is bool:
        if raw.lower() not in _BOOLS:
            raise ValueError(f"QSEARCH_{name.upper()}={raw!r} is not one of {', '.join(_BOOLS)}")
        return _BOOLS[raw.lower()]
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(
            f"QSEARCH_{name.upper()}={raw!r} is not {'an' if kind is int else 'a'} {kind.__name__}"
        ) from None


_BOOLS = {
    "1": True,
    "true": True,
    "yes": True,
    "on": True,
    "0": False,
    "false": False,
    "no": False,
    "off": False,
}
