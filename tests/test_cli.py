"""The command line, run as a user runs it: `python -m qsearch ...` in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def qsearch(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "qsearch", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
    )


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "docs"
    (folder / "nested").mkdir(parents=True)
    (folder / "plants.md").write_text(
        "# Plants\n\nPhotosynthesis turns sunlight into sugar in green leaves."
    )
    (folder / "nested" / "rivers.txt").write_text("The Rhine flows from the Alps to the North Sea.")
    (folder / "nested" / "locked.pdf").write_bytes(b"%PDF-1.4 truncated")
    return folder


def test_index_search_and_reindex(corpus, tmp_path, minilm_dir):
    index = tmp_path / "ix"
    done = qsearch("index", "--index", index, "--embed-model", minilm_dir, corpus)
    assert done.returncode == 0, done.stderr
    assert "2 indexed, 0 unchanged, 1 failed" in done.stdout
    assert "locked.pdf: not a readable PDF" in done.stdout
    found = qsearch("search", "--index", index, "--json", "-k", "1", "how do leaves make sugar?")
    assert found.returncode == 0, found.stderr
    result = json.loads(found.stdout)
    assert result["hits"][0]["source"].endswith("plants.md") and result["hits"][0]["rank"] == 1
    assert {"embed_ms", "search_ms"} <= set(result["timings_ms"])
    human = qsearch("search", "--index", index, "North Sea")
    assert human.returncode == 0 and "rivers.txt" in human.stdout.splitlines()[0]
    again = qsearch("index", "--index", index, corpus / "plants.md")
    assert again.returncode == 0 and "0 indexed, 1 unchanged, 0 failed" in again.stdout


def test_index_fails_when_nothing_could_be_indexed(corpus, tmp_path, minilm_dir):
    done = qsearch(
        "index",
        "--index",
        tmp_path / "ix",
        "--embed-model",
        minilm_dir,
        corpus / "nested" / "locked.pdf",
    )
    assert done.returncode == 1 and "0 indexed, 0 unchanged, 1 failed" in done.stdout


def test_chunk_json_reports_each_file(corpus, minilm_dir):
    done = qsearch("chunk", "--embed-model", minilm_dir, "--json", corpus)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [Path(x["path"]).name for x in lines] == ["locked.pdf", "rivers.txt", "plants.md"]
    assert "error" in lines[0] and lines[1]["chunks"] == 1 and lines[1]["pages"] is None


def test_clear_errors_for_bad_usage(tmp_path, minilm_dir):
    started = time.monotonic()
    missing = qsearch(
        "index", "--index", tmp_path / "ix", "--embed-model", "nobody/no-such-model", tmp_path
    )
    assert missing.returncode == 2 and "--embed-model DIR" in missing.stderr
    assert time.monotonic() - started < 30
    no_index = qsearch("search", "--index", tmp_path / "nothing", "query")
    assert no_index.returncode == 2 and "holds no qsearch index" in no_index.stderr
    assert qsearch("search").returncode == 2
    bad_overlap = qsearch("chunk", "--embed-model", minilm_dir, "--overlap", "500", tmp_path)
    assert bad_overlap.returncode == 2 and "chunk_overlap" in bad_overlap.stderr


def test_named_collections_from_the_command_line(corpus, tmp_path, minilm_dir, capsys):
    """A library of named collections: index into two, list them, search one, both, and within a
    file, type or date; rename; delete (asked first: --yes where there is no terminal). The first
    commands run as a user runs them; the rest in this process (`main`), for speed."""
    from qsearch.__main__ import main

    lib = ["--library", str(tmp_path / "lib")]
    plants, rivers = corpus / "plants.md", corpus / "nested" / "rivers.txt"
    made = qsearch("index", *lib, "--collection", "Botany", "--embed-model", minilm_dir, plants)
    assert made.returncode == 0 and "the collection “Botany” in" in made.stdout, made.stderr
    found = qsearch(
        "search", *lib, "--collection", "Botany", "--json", "--since", "1d", "green leaves"
    )
    assert json.loads(found.stdout)["hits"][0]["collection"] == "Botany", found.stderr

    def run(*args: object) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    assert run("index", *lib, "--collection", "Geography", rivers)[0] == 0
    listed = json.loads(run("collections", *lib, "--json")[1])
    assert [(c["name"], c["files"], c["active"]) for c in listed] == [
        ("My documents", 0, False),
        ("Botany", 1, False),
        ("Geography", 1, True),
    ]
    code, out, _ = run("index", *lib, "--collection", "botany", plants)
    assert code == 0 and "0 indexed, 1 unchanged" in out and "“Botany”" in out, "into Botany"

    def sources(*flags: object) -> list[tuple[str, str]]:
        code, out, err = run("search", *lib, "--json", "-k", "5", *flags, "where does water flow?")
        assert code == 0, err
        return [(Path(h["source"]).name, h["collection"]) for h in json.loads(out)["hits"]]

    both = sources("--collection", "Botany", "--collection", "Geography")
    assert both[0] == ("rivers.txt", "Geography") and len(both) == 2, "ranked together"
    assert sources("--collection", "Botany", "--collection", "Geography", "--type", "md") == [
        ("plants.md", "Botany")
    ]
    code, _, err = run("search", *lib, "--collection", "Botany", "--file", "plant.md", "query")
    assert code == 2 and "no file named 'plant.md'" in err
    code, out, _ = run("collections", *lib, "rename", "geography", "Rivers")
    assert code == 0 and "renamed “Geography” to “Rivers”" in out
    code, _, err = run("collections", *lib, "delete", "Rivers")
    assert code == 2 and "add --yes" in err
    code, out, _ = run("collections", *lib, "delete", "Rivers", "--yes")
    assert code == 0 and "(1 files)" in out
    code, _, err = run("search", *lib, "--collection", "Rivers", "query")
    assert code == 2 and "no collection named “Rivers”; there are: “My documents”, “Botany”" in err


def test_eval_on_a_tiny_beir_folder(tmp_path, minilm_dir):
    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    docs = {
        "d1": "Photosynthesis in plants",
        "d2": "Rivers of Europe: the Rhine",
        "d3": "Baking sourdough bread",
    }
    (beir / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": k, "title": "", "text": v}) + "\n" for k, v in docs.items())
    )
    (beir / "queries.jsonl").write_text(
        json.dumps({"_id": "q1", "text": "how do plants use light"})
        + "\n"
        + json.dumps({"_id": "q2", "text": "which river flows to the sea"})
        + "\n"
    )
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n")
    done = qsearch(
        "eval", beir, "--embed-model", minilm_dir, "--json", "--index-cache", tmp_path / "cache"
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["ndcg_at_10"] == 1.0 and result["n_queries"] == 2 and result["n_docs"] == 3
    assert {"recall_at_100", "mrr_at_10", "docs_per_s", "ms_per_query"} <= set(result)
    cached = json.loads(
        qsearch(
            "eval", beir, "--embed-model", minilm_dir, "--json", "--index-cache", tmp_path / "cache"
        ).stdout.splitlines()[-1]
    )
    assert cached["docs_per_s"] is None and cached["ndcg_at_10"] == 1.0


# --- settings: one parser for variables and flags, the CLI's and the app's ----------------------


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "QSEARCH_SHARE",
            "maybe",
            "QSEARCH_SHARE='maybe' is not one of 1, true, yes, on, 0, false",
        ),
        ("QSEARCH_OCR", "maybe", "QSEARCH_OCR='maybe' is not one of 1, true, yes, on, 0, false"),
        ("QSEARCH_PORT", "http", "QSEARCH_PORT='http' is not an int"),
        ("QSEARCH_PORT", "70000", "QSEARCH_PORT='70000': Input should be less than or equal to"),
        ("QSEARCH_DEVICE", "gpu", "QSEARCH_DEVICE='gpu' is not one of auto, cpu, cuda or cuda:N"),
        ("QSEARCH_MCP", "2", "QSEARCH_MCP='2' is not one of 1, true, yes"),
    ],
)
def test_the_app_refuses_a_bad_variable_in_one_line(monkeypatch, capsys, variable, value, message):
    from qsearch.app_flags import parse_app_args

    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as exit_:
        parse_app_args([])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_variables_and_flags_meet_in_one_place(monkeypatch):
    from qsearch.app_flags import parse_app_args

    for name, value in {"SHARE": "yes", "PORT": "8123", "MCP": "off", "OCR": "0"}.items():
        monkeypatch.setenv(f"QSEARCH_{name}", value)
    monkeypatch.setenv("QSEARCH_DEVICE", "cuda:1")
    args, settings = parse_app_args(["--device", "cpu", "--port", "9000"])
    assert (args.share, args.port, args.mcp, settings.ocr) == (True, 9000, False, False)
    assert settings.device == "cpu", "a flag wins over its variable"
    assert (settings.max_files, settings.max_chunks) == (200, 100_000), "per-session limits"


def test_every_flag_sets_a_setting_or_is_the_commands_own():
    """Flags are defined once, and each one's dest is the setting it sets: a flag whose value
    never reached Settings would be caught here."""
    import argparse

    from qsearch.app_flags import app_parser
    from qsearch.cli_flags import build_parser
    from qsearch.config import ServerSettings, Settings

    fields = set(Settings.model_fields) | set(ServerSettings.model_fields)
    own = {"help", "paths", "query", "k", "rerank", "rerank_candidates", "instruction", "json"}
    own |= {"show", "beir_dir", "split", "dim", "index_cache", "compare", "sweep", "index"}
    own |= {"library", "collections", "files", "file_types", "since", "action", "name"}
    own |= {"new_name", "yes"}
    run = build_parser(*[lambda _: 0] * 5)
    commands = next(a for a in run._actions if isinstance(a, argparse._SubParsersAction))
    for parser in [app_parser(), *commands.choices.values()]:
        dests = {a.dest for a in parser._actions}
        assert dests - fields - own == set(), (parser.prog, dests - fields - own)


def test_chunk_reads_in_the_reader_processes_and_reports_a_stuck_file_as_index_does(
    tmp_path, minilm_dir, monkeypatch, capsys
):
    """Before: `chunk` parsed in its own process, with no deadline inside a page and no memory
    cap (a 100,000-deep page ran over 6 minutes). tests/stuck_loader.py, imported into the
    readers only, hangs inside a file whose text starts with STUCK."""
    from qsearch.__main__ import main
    from qsearch.documents import pool

    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))  # where stuck_loader is
    monkeypatch.setenv("QSEARCH_MAX_SECONDS_PER_FILE", "1")
    readers = pool.Readers(size=1, modules=["stuck_loader"])
    monkeypatch.setattr(pool, "_READERS", readers)
    (tmp_path / "a-stuck.txt").write_text(f"STUCK {tmp_path / 'child.pid'}")
    (tmp_path / "b-fine.txt").write_text("The Rhine flows from the Alps to the North Sea.")
    try:
        assert main(["chunk", "--embed-model", str(minilm_dir), "--json", str(tmp_path)]) == 0
    finally:
        readers.close()
    stuck, fine = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert stuck["error"] == (
        "took too long: still reading after 1 s, inside one page or part; the reader was stopped"
    )
    assert 1 <= stuck["seconds"] < 30 and fine["chunks"] == 1 and "first_chunks" in fine
