"""Every flag, defined once: the CLI's subcommands here, and the web app's parser (`app_flags.py`)
from the same functions; `settings_from` turns any of them into Settings (flags over QSEARCH_*
variables).

A flag's `dest` is the name of the setting it sets (`--overlap` sets `chunk_overlap`), so flags and
variables meet in one place: `Settings.from_env`.
"""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from .config import (
    DEFAULT_EMBED_MODEL,
    DEFAULT_MIN_SCORE,
    DEFAULT_RERANK_MODEL,
    DTYPES,
    FUSIONS,
    INDEX_KINDS,
    NO_COMPILE_HELP,
    SEARCH_MODES,
    ServerSettings,
    Settings,
)
from .documents.formats import describe
from .models.loading import dtype_reason

PATHS_HELP = f"files, or folders read recursively; the types read: {describe()}"

Run = Callable[[argparse.Namespace], int]
# whether --help describes this machine (the CPU race's verdict) or what `auto` does anywhere
_THIS_MACHINE = contextvars.ContextVar("qsearch_help_this_machine", default=True)


@contextlib.contextmanager
def generic_help() -> Iterator[None]:
    """Parsers built inside say what `--dtype auto` does on any machine, without racing this
    CPU's precisions: for the documentation, which is the same on every machine."""
    token = _THIS_MACHINE.set(False)
    try:
        yield
    finally:
        _THIS_MACHINE.reset(token)


def build_parser(
    cmd_index: Run,
    cmd_search: Run,
    cmd_chunk: Run,
    cmd_eval: Run,
    cmd_collections: Run | None = None,
) -> argparse.ArgumentParser:
    """`python -m qsearch`'s parser; each subcommand runs the function given for it."""
    prog = "qsearch" if Path(sys.argv[0]).name == "qsearch" else "python -m qsearch"  # the command
    p = argparse.ArgumentParser(prog=prog, description="Semantic search over your documents.")
    sub = p.add_subparsers(dest="command", required=True)

    def add(name: str, run: Run, help_text: str) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        cmd.set_defaults(run=run)
        return cmd

    _index_command(add("index", cmd_index, "Add files or folders (recursively) to an index."))
    _search_command(add("search", cmd_search, "Search an index."))
    chunk_help = "Show what ingestion and chunking make of files, without embedding."
    _chunk_command(add("chunk", cmd_chunk, chunk_help))
    _eval_command(add("eval", cmd_eval, "Measure retrieval quality on a BEIR-format data set."))
    if cmd_collections is not None:
        _collections_command(
            add("collections", cmd_collections, "List, make, rename or delete named collections.")
        )
    return p


def settings_from(args: argparse.Namespace, **extra: object) -> Settings:
    """Settings from QSEARCH_* variables, then the flags in `args` (and `extra`) that were given."""
    return Settings.from_env(**(flags_of(args, Settings) | extra))


def flags_of(args: argparse.Namespace, cls: type[Settings] | type[ServerSettings]) -> dict:
    """The flags of `args` that set a field of `cls` (a flag's dest is its setting's name)."""
    return {name: getattr(args, name, None) for name in cls.model_fields}


LIBRARY_HELP = (
    "the folder of your named collections (default: $QSEARCH_LIBRARY, else `library` in your "
    "user data folder)"
)


def _index_command(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--index", metavar="DIR", help="index folder (created if missing)")
    milvus_flags(
        cmd,
        collection_help="a named collection of your library (made if missing), or with --milvus "
        "the Milvus collection (default qsearch; $QSEARCH_MILVUS_COLLECTION)",
    )
    cmd.add_argument("--library", metavar="DIR", help=LIBRARY_HELP)
    cmd.add_argument("paths", nargs="+", metavar="PATH", help=PATHS_HELP)
    cmd.add_argument("--chunk-tokens", type=int, metavar="N", help="tokens per chunk (default 256)")
    for flag, dest, text in (
        ("--overlap", "chunk_overlap", "tokens shared by neighbouring chunks (default 32)"),
        ("--dim", "embed_dim", "MRL: keep the first N dimensions (Qwen3: 32..1024)"),
    ):
        cmd.add_argument(flag, dest=dest, type=int, metavar="N", help=text)
    cmd.add_argument(
        "--index-kind", choices=INDEX_KINDS, help="flat (exact, default) or hnsw (approximate)"
    )
    cmd.add_argument(
        "--max-file-mb", type=float, metavar="N", help="largest file accepted (default 50)"
    )
    ocr_flags(cmd)
    common_flags(cmd)


def _search_command(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--index", metavar="DIR", help="the index folder")
    milvus_flags(cmd, many=True)
    cmd.add_argument("--library", metavar="DIR", help=LIBRARY_HELP)
    cmd.add_argument("query", metavar="QUERY")
    within = cmd.add_argument_group("search within (each may repeat; none: everything)")
    within.add_argument(
        "--file",
        dest="files",
        action="append",
        metavar="NAME",
        help="only passages of this file: its name, its path as indexed, or a pattern (*.pdf)",
    )
    within.add_argument(
        "--type",
        dest="file_types",
        action="append",
        metavar="T",
        help="only files of this type: an extension (pdf, docx) or a kind (sheet, slides, email)",
    )
    within.add_argument(
        "--since",
        metavar="WHEN",
        help="only files added at or after this: 2025-03-01, 2025-03-01T14:30, or an age (7d, 12h)",
    )
    cmd.add_argument("-k", type=int, default=10, help="number of results (default 10)")
    _rerank_flags(cmd, candidates=50)
    cmd.add_argument(
        "--instruction", metavar="TEXT", help="task instruction for the query (Qwen3 models)"
    )
    _mode_flags(cmd, default_text="$QSEARCH_SEARCH_MODE or hybrid")
    min_score_flag(cmd)
    cmd.add_argument("--json", action="store_true", help="print one JSON object")
    common_flags(cmd)


def min_score_flag(cmd: argparse.ArgumentParser) -> None:
    """--min-score: the overall relevance below which a result is a weak match."""
    cmd.add_argument(
        "--min-score",
        dest="min_score",
        type=float,
        metavar="P",
        help="minimum relevance, 0 to 1: results whose overall relevance is below it are weak "
        f"matches, listed after the others (default: $QSEARCH_MIN_SCORE or {DEFAULT_MIN_SCORE})",
    )


def _chunk_command(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("paths", nargs="+", metavar="PATH", help=PATHS_HELP)
    cmd.add_argument("--chunk-tokens", type=int, metavar="N")
    cmd.add_argument("--overlap", dest="chunk_overlap", type=int, metavar="N")
    cmd.add_argument(
        "--show", type=int, default=2, metavar="N", help="chunks to show per file (default 2)"
    )
    ocr_flags(cmd)
    cmd.add_argument("--max-file-mb", type=float, metavar="N")
    cmd.add_argument("--json", action="store_true", help="one JSON object per file per line")
    common_flags(cmd, remote=False)


def _eval_command(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("beir_dir", metavar="BEIR_DIR")
    cmd.add_argument("--split", default="test")
    # not the embedder's setting: the dimension of the extra configurations compared
    cmd.add_argument("--dim", type=int, metavar="N", help="MRL: also compare at N dimensions")
    _rerank_flags(cmd, candidates=100)
    cmd.add_argument("--instruction", metavar="TEXT", help="query instruction (Qwen3 models)")
    cmd.add_argument(
        "--index-cache", metavar="DIR", help="keep the corpus embeddings here for the next run"
    )
    _mode_flags(cmd, default_text="$QSEARCH_SEARCH_MODE or hybrid: what `search` does")
    cmd.add_argument(
        "--compare",
        action="store_true",
        help="measure dense, lexical and each fusion (and --dim) over one embedding pass, "
        "as one table",
    )
    cmd.add_argument(
        "--sweep",
        action="store_true",
        help="the fusion study: RRF over k, min-max and theoretical-min convex fusion over "
        "the weight",
    )
    cmd.add_argument(
        "--json", action="store_true", help="last line: one JSON object with the figures"
    )
    common_flags(cmd)


def common_flags(cmd: argparse.ArgumentParser, *, model: bool = True, remote: bool = True) -> None:
    if model:
        cmd.add_argument(
            "--embed-model",
            metavar="M",
            help=f"hub id or local folder "
            f"(default: $QSEARCH_EMBED_MODEL or {DEFAULT_EMBED_MODEL}; for an existing "
            f"index, the model it was built with)",
        )
    cmd.add_argument("--device", metavar="D", help="auto (the default), cpu, cuda or cuda:N")
    if remote:
        cmd.add_argument(
            "--embed-url",
            metavar="URL",
            help="embed with an OpenAI-compatible server "
            "(…/v1/embeddings: SGLang, vLLM, TEI, qsearch) instead of a local model",
        )
        cmd.add_argument("--rerank-url", metavar="URL", help="rerank with a …/v1/rerank server")
    cmd.add_argument("--max-batch-tokens", type=int, metavar="N", help="tokens per forward pass")
    cmd.add_argument(
        "--dtype", choices=DTYPES, help=f"model precision (default auto: {_dtype_help()})"
    )
    cmd.add_argument(
        "--no-compile", dest="compile", action="store_false", default=None, help=NO_COMPILE_HELP
    )


def _mode_flags(cmd: argparse.ArgumentParser, default_text: str) -> None:
    cmd.add_argument(
        "--mode",
        dest="search_mode",
        choices=SEARCH_MODES,
        help=f"ranking: dense, lexical (BM25) or hybrid (both fused) (default: {default_text})",
    )
    cmd.add_argument(
        "--fusion",
        choices=FUSIONS,
        help="hybrid: relevance (by overall relevance, the default), tmm (convex, "
        "theoretical-min normalised), minmax (convex, min-max normalised) or rrf (reciprocal "
        "rank fusion)",
    )


def milvus_flags(
    cmd: argparse.ArgumentParser, *, many: bool = False, collection_help: str | None = None
) -> None:
    """--milvus URI and --collection NAME (with `many`, repeatable: searched together, in a
    library or on Milvus; its first sets milvus_collection)."""
    cmd.add_argument(
        "--milvus",
        dest="milvus_uri",
        metavar="URI",
        help="a Milvus collection instead of a folder: "
        "a Milvus Lite file (x.db) or http://host:19530 (or $QSEARCH_MILVUS_URI)",
    )
    if many:
        cmd.add_argument(
            "--collection",
            dest="collections",
            action="append",
            metavar="NAME",
            help="a named collection of your library, or with --milvus a Milvus collection; "
            "repeat it to search several at once, ranked together",
        )
        return
    cmd.add_argument(
        "--collection",
        dest="milvus_collection",
        metavar="NAME",
        help=collection_help
        or "the Milvus collection (default qsearch; $QSEARCH_MILVUS_COLLECTION)",
    )


def _collections_command(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--library", metavar="DIR", help=LIBRARY_HELP)
    cmd.add_argument(
        "action",
        nargs="?",
        default="list",
        choices=("list", "create", "rename", "delete"),
        help="list (the default), create NAME, rename NAME NEW_NAME, delete NAME",
    )
    cmd.add_argument("name", nargs="?", metavar="NAME")
    cmd.add_argument("new_name", nargs="?", metavar="NEW_NAME")
    cmd.add_argument(
        "--yes", action="store_true", help="delete without asking (a script, no terminal)"
    )
    cmd.add_argument("--json", action="store_true", help="list as one JSON array")


def ocr_flags(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument(
        "--no-ocr",
        dest="ocr",
        action="store_false",
        default=None,
        help="don't read scanned pages and images with Tesseract",
    )
    cmd.add_argument(
        "--ocr-lang",
        metavar="L",
        help="Tesseract language(s), e.g. eng+deu (default eng; more with "
        "`apt-get install tesseract-ocr-deu`, ...)",
    )


def _rerank_flags(cmd: argparse.ArgumentParser, candidates: int) -> None:
    cmd.add_argument(
        "--rerank", action="store_true", help="rescore the top candidates with the reranker"
    )
    rerank_model_flags(cmd)
    cmd.add_argument(
        "--rerank-candidates",
        type=int,
        default=candidates,
        metavar="N",
        help=f"how many candidates the reranker sees (default {candidates})",
    )


def rerank_model_flags(p: argparse.ArgumentParser, app: bool = False) -> None:
    for flag, text in (
        ("--rerank-model", f"hub id or local folder (default {DEFAULT_RERANK_MODEL})"),
        ("--rerank-fallback", "a cross-encoder for when that can't load ('none': no fallback)"),
    )[: 2 if app else 1]:
        p.add_argument(flag, metavar="M", help=text)


def _dtype_help() -> str:
    if not _THIS_MACHINE.get():
        return (
            "bf16 on GPUs of compute capability 8.0+, fp16 below and on Apple's MPS; on a CPU "
            "the fastest precision of a start-up race that the model's check lets through"
        )
    return f"bf16/fp16 on a GPU; on this CPU {dtype_reason('cpu')}"
