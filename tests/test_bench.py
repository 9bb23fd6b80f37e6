"""The benchmarks run end to end on a tiny data set, so they keep working (the figures come from real runs)."""

from __future__ import annotations

import json
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
            f.write(json.dumps({"_id": f"d{i}", "title": topic, "text": f"Notes {i} about {topic}. " * (5 + i)}) + "\n")
    with open(folder / "queries.jsonl", "w") as f:
        for i, topic in enumerate(topics):
            f.write(json.dumps({"_id": f"q{i}", "text": f"what about {topic}?"}) + "\n")
    return folder


def run(script: str, *args: str) -> dict:
    done = subprocess.run([sys.executable, f"bench/{script}", *args, "--json"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_embed_throughput(tmp_path):
    result = run("embed_throughput.py", "--data", str(tiny_beir(tmp_path / "beir")), "--rounds", "1")
    assert result["chunks"] >= 24 and result["max_cosine_diff"] < 1e-4
    assert set(result["systems"]) == {"qsearch", "sentence_transformers", "naive_loop"}
    assert result["ratio_vs_sentence_transformers"] > 0 and result["environment"]["versions"]["torch"]


def test_search_latency(tmp_path, qwen3_reranker_dir):
    result = run("search_latency.py", "--data", str(tiny_beir(tmp_path / "beir")), "--sizes", "2000",
                 "--queries", "6", "--rerank", "--rerank-model", str(qwen3_reranker_dir), "--rerank-top", "5",
                 "--rerank-queries", "2")
    [row] = result["collections"]
    assert row["size"] == 2000 and row["flat"]["p50_ms"] > 0
    assert 0.5 <= row["hnsw"]["recall_at_10_vs_exact"] <= 1.0
    assert result["query_embedding"]["n"] == 6
    assert result["rerank"]["top"] == 5 and result["rerank"]["n"] == 2
