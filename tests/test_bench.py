"""The benchmarks run end to end on a tiny data set: they keep working, and what they report holds
(same vectors across systems, a cached repeat calls no model); the figures come from real runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def tiny_beir(folder: Path) -> Path:
    folder.mkdir()
    topics = ["tides", "volcanoes", "bread", "rivers", "bees", "glaciers"]
    with open(folder / "corpus.jsonl", "w") as f:
        for i in range(24):
            topic = topics[i % len(topics)]
            f.write(
                json.dumps(
                    {"_id": f"d{i}", "title": topic, "text": f"Notes {i} about {topic}. " * (5 + i)}
                )
                + "\n"
            )
    with open(folder / "queries.jsonl", "w") as f:
        for i, topic in enumerate(topics):
            f.write(json.dumps({"_id": f"q{i}", "text": f"what about {topic}?"}) + "\n")
    (folder / "qrels").mkdir()
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i}\t1\n" for i in range(len(topics)))
    )
    return folder


def run(script: str, *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, f"bench/{script}", *args, "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_embed_throughput(tmp_path):
    result = run(
        "embed_throughput.py",
        "--data",
        str(tiny_beir(tmp_path / "beir")),
        "--rounds",
        "1",
        "--contract-rounds",
        "1",
    )
    int8 = result["cpu_default"].startswith("int8")
    assert result["chunks"] >= 24
    assert set(result["systems"]) == {"qsearch", "sentence_transformers", "naive_loop"}
    # like with like: sentence-transformers runs the precision qsearch runs on this CPU (fp32, or
    # what `auto` chose: bf16 where the CPU computes it natively, int8 where that won), and the
    # vectors agree within that precision's tolerance (int8 scales activations per batch, so a
    # text's vector depends on its batch: embed_throughput.COSINE_TOLERANCE says why)
    assert result["sentence_transformers_precision"] == result["cpu_default"]
    tolerance = {"float32": 1e-4, "bfloat16": 1e-3, "int8": 0.05, "int8+bf16": 0.05}
    assert result["max_cosine_tolerance"] == tolerance[result["cpu_default"]]
    assert result["max_cosine_diff"] < tolerance[result["cpu_default"]]
    # qsearch batches length-sorted chunks: less padding than the naive loop's arrival order
    assert (
        result["systems"]["qsearch"]["padding_fraction"]
        < result["systems"]["naive_loop"]["padding_fraction"]
    )
    # the CPU contract: every precision the race ran here against fp32, the default named with
    # its reason and its class, each precision's query latency, and what bounds the default
    precisions = {"float32", "int8", "int8+bf16"} | (
        {"bfloat16"} if "bfloat16" in result["race"] else set()
    )
    assert set(result["ratio_vs_fp32"]) == precisions and result["ratio_vs_fp32"]["float32"] == 1.0
    assert set(result["query_ms_p50"]) == set(result["query_ms_p95"]) == precisions
    assert result["cpu_default"] in precisions and result["cpu_default_reason"]
    assert result["contract"]["class"] in ("AMX", "VNNI", "AVX512-BF16 without VNNI",
                                           "neither VNNI nor AVX512-BF16")  # fmt: skip
    assert 0 < result["layer_breakdown"]["linear_share_of_fp32"] < 1
    race = result["race_against_work"]  # the race's pick against the fastest end to end
    assert race["race_pick"] in precisions and race["fastest_end_to_end"] in precisions
    assert 0 < race["pick_over_fastest"] <= 1
    assert race["fastest_x_fp32_end_to_end"] == max(result["ratio_vs_fp32"].values())
    assert result["contract"]["bound_amdahl_rest_at_fp32"] > 0
    assert result["min_cosine_cpu_default_vs_fp32"] >= (0.95 if int8 else 0.999)
    assert result["environment"]["versions"]["torch"] and result["environment"]["command"]


def test_search_latency(tmp_path, qwen3_reranker_dir):
    result = run(
        "search_latency.py",
        "--data",
        str(tiny_beir(tmp_path / "beir")),
        "--sizes",
        "2000",
        "--queries",
        "6",
        "--rerank",
        "--rerank-model",
        str(qwen3_reranker_dir),
        "--rerank-top",
        "5",
        "--rerank-queries",
        "2",
    )
    [row] = result["collections"]
    assert set(row) == {"size", "flat", "hnsw", "flat_unseeded", "hnsw_unseeded"}
    assert "recall_at_10_vs_exact" not in row["flat"], "exact search is the reference"
    for kind in ("hnsw", "hnsw_unseeded"):
        assert 0.5 <= row[kind]["recall_at_10_vs_exact"] <= 1.0 and row[kind]["n"] == 6
    repeats = result["repeats"]
    assert repeats["passages"] == 24 and repeats["reranked"] is True
    # every query embedded and reranked once; its repeats (same k, another k, no rerank) call
    # no model; dense mode brings other candidates: only those not reranked before are
    calls = repeats["calls"]
    assert calls["first"] == {"embedder": 6, "reranker": 6 * 5}
    for step in ("repeat", "other_k", "rerank_off"):
        assert calls[step] == {"embedder": 0, "reranker": 0}, step
    assert calls["other_mode"]["embedder"] == 0 and calls["other_mode"]["reranker"] < 6 * 5
    # a repeat skips the query embedding the first search pays for
    assert repeats["repeat"]["p50_ms"] < repeats["first"]["p50_ms"]
    assert result["rerank"]["top"] == 5 and result["rerank"]["n"] == 2


def test_model_memory(tmp_path, qwen3_embedder_dir, qwen3_reranker_dir):
    """Each precision in a fresh interpreter: RSS after loading, the ingest's own peak, what stays,
    and the reranker beside the embedder (the 0.6B figures: test_int8_memory.py, slow)."""
    result = run(
        "model_memory.py", "--embed-model", str(qwen3_embedder_dir), "--rerank-model",
        str(qwen3_reranker_dir), "--data", str(tiny_beir(tmp_path / "beir")), "--precisions",
        "float32,int8", "--limit", "8", "--rerank",
    )  # fmt: skip
    assert [r["precision"] for r in result["runs"]] == ["float32", "int8"]
    for run_ in result["runs"]:
        assert "error" not in run_, run_
        load, ingest = run_["after_load"], run_["during_ingest"]
        assert 0 < load["rss_mb"] <= load["peak_rss_mb"]
        assert ingest["rss_mb"] <= ingest["peak_rss_mb"] and run_["ingest"]["chunks"] == 8
        assert run_["after_rerank"]["rss_mb"] > 0 and run_["reranker_runs"]
    assert result["runs"][1]["runs"].startswith("int8 (set by --dtype")
    assert result["environment"]["command"]


def test_int8_ceiling():
    """The int8 ceiling times torch's fp32 and int8 on one layer's shapes, per token count, each
    against torch fp32 (ONNX Runtime, optional, is left out: not a test dependency)."""
    result = run(
        "int8_ceiling.py", "--rows", "8,32", "--rounds", "2", "--only", "torch-fp32", "torch-int8"
    )
    assert set(result["results"]) == {"8", "32"}
    for sizes in result["results"].values():
        assert set(sizes) == {"torch-fp32", "torch-int8"}
        assert sizes["torch-fp32"]["ratio_vs_torch_fp32"] == 1.0
        for name, r in sizes.items():
            assert len(r["seconds_all"]) == 2 and r["gflops"] > 0, name
    assert result["cpu_features"] and result["environment"]["command"]


def test_keywords_language(tmp_path):
    """Two tiny XQuAD-format files (SQuAD's JSON): one collection each, then both together."""
    topics = {
        "de": ["Die Gezeiten folgen dem Mond.", "Das Brot geht auf, weil die Hefe Gas bildet."],
        "en": ["The tides follow the moon.", "Bread rises because yeast makes gas."],
    }
    for language, contexts in topics.items():
        paragraphs = [
            {"context": c, "qas": [{"id": f"q{i}", "question": c.split()[1]}]}
            for i, c in enumerate(contexts)
        ]
        data = {"data": [{"title": "t", "paragraphs": paragraphs}]}
        (tmp_path / f"xquad.{language}.json").write_text(json.dumps(data))
    result = run(
        "keywords_language.py", "--xquad", str(tmp_path), "--languages", "de,en", "--mixed", "de,en"
    )
    assert list(result["results"]) == ["de", "en", "de+en"]
    mixed = result["results"]["de+en"]
    assert mixed["passages"] == 4 and mixed["queries"] == 4
    after = mixed["after (each its own language)"]
    assert set(after["languages"]) == {"de", "en"} and "dense" in after
    assert 0 <= after["lexical"]["ndcg_at_10"] <= 1
    assert result["results"]["de"]["before (English for all)"]["languages"] == ["en"]


def test_gpu_report_without_cuda_says_so_in_one_line():
    """`make gpu-report` where torch sees no CUDA GPU: one line, exit 0, nothing written. With
    PYTHON_BIN given, no venv is made (a GPU image's own python runs it)."""
    results = ROOT / "bench" / "results"
    before = sorted(results.iterdir())
    done = subprocess.run(
        ["make", "-s", "gpu-report", f"PYTHON_BIN={sys.executable}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == [
        "gpu-report: no CUDA GPU here (torch sees none): nothing to measure"
    ]
    assert sorted(results.iterdir()) == before


def test_gpu_report_steps_name_real_scripts_and_flags():
    """Each step of the GPU report runs a script that exists with flags it accepts, under the
    interpreter given; the tests step is `make test-gpu`, which then runs no venv set-up."""
    done = subprocess.run(
        [sys.executable, "bench/gpu_report.py", "--plan"], cwd=ROOT, capture_output=True, text=True
    )
    steps = [json.loads(line) for line in done.stdout.splitlines()]
    assert [s["step"] for s in steps] == ["tests", "embed-bf16", "embed-fp16", "search", "faiss"]
    assert sum(s["h100_s"] for s in steps) <= 8 * 60
    for step in steps[1:]:
        python, script, *flags = step["command"].split()
        assert python == sys.executable and (ROOT / script).is_file()
        usage = subprocess.run(
            [sys.executable, script, "--help"], cwd=ROOT, capture_output=True, text=True
        ).stdout
        assert all(f in usage for f in flags if f.startswith("--")), (script, flags)
    dry = subprocess.run(
        ["make", "-n", "test-gpu", "PYTHON_BIN=python3"], cwd=ROOT, capture_output=True, text=True
    ).stdout
    assert "python3 -m pytest -m gpu" in dry and "venv" not in dry and "pip" not in dry


def test_search_within_filters_before_ranking():
    """Filtered before ranking, k come back; filtered after, few do (bench/search_within.py)."""
    result = run("search_within.py", "--chunks", "2000", "--dim", "16", "--docs", "100")
    first = result["results"][0]  # one document of 20 chunks: rarely in the top 100 of 2000
    assert first["chosen_chunks"] == 20 and first["dense_results_before"] == 10
    assert first["dense_results_after"] < 10 and first["bm25_results_before"] == 10
