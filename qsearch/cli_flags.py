"""Every flag, defined once: the CLI's subcommands and the web app's parser are built from the same
functions, and `settings_from` turns any of them into Settings (flags over QSEARCH_* variables).

A flag's `dest` is the name of the setting it sets (`--overlap` sets `chunk_overlap`), so flags and
variables meet in one place: `Settings.from_env`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from .config import (
    DEFAULT_EMBED_MODEL,
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


def build_parser(
    cmd_index: Run, cmd_search: Run, cmd_chunk: Run, cmd_eval: Run
) -> argparse.ArgumentParser:
    """`python -m qsearch`'s parser; each subcommand runs the function given for it."""
    p = argparse.ArgumentParser(
        prog="python -m qsearch", description="Semantic search over your documents."
    )
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
    return p


def app_parser() -> argparse.ArgumentParser:
    """`python app.py`'s parser: the server's flags, then the model, reading and Milvus ones."""
    p = argparse.ArgumentParser(prog="python app.py", description="qsearch web app")
    p.add_argument("--host", help="address to listen on (default 127.0.0.1; 0.0.0.0 for a LAN)")
    p.add_argument("--port", type=int, help="port (default 7860, or the next free one)")
    p.add_argument(
        "--share",
        action="store_const",
        const=True,
        help="also serve on a temporary public *.gradio.live link (anyone with it can use the app)",
    )
    p.add_argument(
        "--index", metavar="DIR", help="a read-only index every session searches besides its own"
    )
    _milvus_flags(p)
    p.add_argument("--rerank-model", metavar="M", help="reranking model: hub id or local folder")
    p.add_argument("--max-file-mb", type=float, metavar="N", help="largest upload (default 50)")
    _ocr_flags(p)
    p.add_argument("--api-key", help="require 'Authorization: Bearer KEY' on the /v1 API")
    p.add_argument(
        "--no-mcp",
        dest="mcp",
        action="store_false",
        default=None,
        help="don't serve the MCP tools at /gradio_api/mcp/",
    )
    _keeping_flags(p)
    _common(p)
    return p


def _keeping_flags(p: argparse.ArgumentParser) -> None:
    """Where the app keeps collections, and what it tells the operator."""
    for flag, metavar, kind, text in (
        ("--data-dir", "DIR", str, "keep each browser's collection here (on Spaces: /data)"),
        ("--data-idle-hours", "H", float, "delete a kept collection unused this long (24)"),
        ("--low-confidence-log", "PATH", str, "log weak searches, as JSON (records queries)"),
    ):
        p.add_argument(flag, metavar=metavar, type=kind, help=text)


def parse_app_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, Settings]:
    """The app's flags over QSEARCH_* variables: the namespace (with the server's settings filled
    in: host, port, share, index, api_key, mcp) and the Settings. A shared server limits each
    session to 200 files and 100,000 chunks unless QSEARCH_MAX_FILES / _MAX_CHUNKS say otherwise."""
    parser = app_parser()
    args = parser.parse_args(argv)
    try:
        server = ServerSettings.from_env(**_flags(args, ServerSettings))
        settings = settings_from(args)
    except ValueError as e:  # a bad variable or value: one line and exit status 2, as argparse
        parser.error(str(e))
    vars(args).update(server.model_dump())
    if settings.max_files is None and settings.max_chunks is None:
        settings = settings.with_(max_files=200, max_chunks=100_000)
    return args, settings


def settings_from(args: argparse.Namespace, **extra: object) -> Settings:
    """Settings from QSEARCH_* variables, then the flags in `args` (and `extra`) that were given."""
    return Settings.from_env(**_flags(args, Settings), **extra)


def _flags(args: argparse.Namespace, cls: type[Settings] | type[ServerSettings]) -> dict:
    """The flags of `args` that set a field of `cls` (a flag's dest is its setting's name)."""
    return {name: getattr(args, name, None) for name in cls.model_fields}


def _index_command(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--index", metavar="DIR", help="index folder (created if missing)")
    _milvus_flags(cmd)
    cmd.add_argument("paths", nargs="+", metavar="PATH", help=PATHS_HELP)
    cmd.add_argument("--chunk-tokens", type=int, metavar="N", help="tokens per chunk (default 256)")
    cmd.add_argument(
        "--overlap",
        dest="chunk_overlap",
        type=int,
        metavar="N",
        help="tokens shared by neighbouring chunks (default 32)",
    )
    cmd.add_argument(
        "--dim",
        dest="embed_dim",
        type=int,
        metavar="N",
        help="MRL: keep the first N dimensions (Qwen3: 32..1024)",
    )
    cmd.add_argument(
        "--index-kind", choices=INDEX_KINDS, help="flat (exact, default) or hnsw (approximate)"
    )
    cmd.add_argument(
        "--max-file-mb", type=float, metavar="N", help="largest file accepted (default 50)"
    )
    _ocr_flags(cmd)
    _common(cmd)


def _search_command(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--index", metavar="DIR", help="the index folder")
    _milvus_flags(cmd)
    cmd.add_argument("query", metavar="QUERY")
    cmd.add_argument("-k", type=int, default=10, help="number of results (default 10)")
    _rerank_flags(cmd, candidates=50)
    cmd.add_argument(
        "--instruction", metavar="TEXT", help="task instruction for the query (Qwen3 models)"
    )
    _mode_flags(cmd, default_text="$QSEARCH_SEARCH_MODE or hybrid")
    cmd.add_argument("--json", action="store_true", help="print one JSON object")
    _common(cmd)


def _chunk_command(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("paths", nargs="+", metavar="PATH", help=PATHS_HELP)
    cmd.add_argument("--chunk-tokens", type=int, metavar="N")
    cmd.add_argument("--overlap", dest="chunk_overlap", type=int, metavar="N")
    cmd.add_argument(
        "--show", type=int, default=2, metavar="N", help="chunks to show per file (default 2)"
    )
    _ocr_flags(cmd)
    cmd.add_argument("--max-file-mb", type=float, metavar="N")
    cmd.add_argument("--json", action="store_true", help="one JSON object per file per line")
    _common(cmd, remote=False)


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
    _common(cmd)


def _common(cmd: argparse.ArgumentParser, *, model: bool = True, remote: bool = True) -> None:
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
        help="hybrid: tmm (convex, theoretical-min normalised; the "
        "default), minmax (convex, min-max normalised) or rrf (reciprocal rank fusion)",
    )


def _milvus_flags(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument(
        "--milvus",
        dest="milvus_uri",
        metavar="URI",
        help="a Milvus collection instead of a folder: "
        "a Milvus Lite file (x.db) or http://host:19530 (or $QSEARCH_MILVUS_URI)",
    )
    cmd.add_argument(
        "--collection",
        dest="milvus_collection",
        metavar="NAME",
        help="the Milvus collection (default qsearch; $QSEARCH_MILVUS_COLLECTION)",
    )


def _ocr_flags(cmd: argparse.ArgumentParser) -> None:
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
    cmd.add_argument(
        "--rerank-model",
        metavar="M",
        help=f"hub id or local folder (default: $QSEARCH_RERANK_MODEL or {DEFAULT_RERANK_MODEL})",
    )
    cmd.add_argument(
        "--rerank-candidates",
        type=int,
        default=candidates,
        metavar="N",
        help=f"how many candidates the reranker sees (default {candidates})",
    )


def _dtype_help() -> str:
    return f"bf16/fp16 on a GPU; on this CPU {dtype_reason('cpu')}"
