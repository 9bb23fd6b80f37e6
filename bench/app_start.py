"""`python app.py` from start to work: how soon the page answers, how soon the model is ready, and
the server process's memory after start, after an upload and after a reranked search.

Starts the app (as a user would, `python app.py --embed-model ...`) on a free port, `--starts`
times in a row: the first start on a machine races the precisions, checks the model and quantizes
it (unless an earlier run left those on disk: --fresh gives the runs a cache of their own, HF_HOME
in a temporary folder), later ones read them.
For each start: seconds until GET / answers 200 (the page, served while the model loads), until
POST /v1/embeddings answers (it waits for the model), the server's RSS then; with --upload the
RSS after embedding an upload's chunks through /v1/embeddings; with --rerank after /v1/rerank
(the reranker loads on first use). The server is stopped with SIGINT after each start.

    python bench/app_start.py --random-weights --starts 2 --fresh --upload --rerank --json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import common

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> dict[str, float]:
    """The process's RSS now and its peak (VmHWM), MB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                key = "rss_mb" if name == "VmRSS" else "peak_rss_mb"
                out[key] = round(int(value.split()[0]) / 1024, 1)
    return out


def post(url: str, body: dict, timeout: float) -> dict:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def wait_for_page(url: str, started: float, server: subprocess.Popen, limit: float) -> float:
    """Seconds from `started` until GET `url` answers 200."""
    while time.monotonic() - started < limit:
        if server.poll() is not None:
            raise SystemExit(f"the app exited ({server.returncode}) before its page answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise SystemExit(f"no page within {limit:.0f} s")


def one_start(args: argparse.Namespace, texts: list[str]) -> dict:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "app.py", "--embed-model", str(args.embedder), "--port", str(port)]
    command += ["--rerank-model", str(args.reranker), "--dtype", args.dtype, *args.app_args]
    started = time.monotonic()
    server = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        env={**os.environ, **({"HF_HOME": args.hf_home} if args.hf_home else {})},
    )
    out: dict = {}
    try:
        out["page_seconds"] = round(wait_for_page(base + "/", started, server, args.limit), 1)
        post(base + "/v1/embeddings", {"input": ["ready?"]}, timeout=args.limit)
        out["model_ready_seconds"] = round(time.monotonic() - started, 1)
        out["after_start"] = rss_mb(server.pid)
        if args.upload:
            for i in range(0, len(texts), 16):
                post(base + "/v1/embeddings", {"input": texts[i : i + 16]}, timeout=args.limit)
            out["after_upload"] = rss_mb(server.pid) | {"chunks": len(texts)}
        if args.rerank:
            body = {"query": "what do these passages say?", "documents": texts[:20]}
            post(base + "/v1/rerank", body, timeout=args.limit)
            out["after_rerank"] = rss_mb(server.pid)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--random-weights", action="store_true", help="the 0.6B Qwen3 models, random")
    p.add_argument("--embed-model", help="an embedder folder (default: the random Qwen3 one)")
    p.add_argument("--rerank-model", help="a reranker folder (default: the random Qwen3 one)")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--starts", type=int, default=2, help="starts in a row (the first one's work")
    p.add_argument("--fresh", action="store_true", help="forget the race, checks, int8 weights")
    p.add_argument("--upload", action="store_true", help="then embed an upload's chunks")
    p.add_argument("--rerank", action="store_true", help="then rerank 20 of them")
    p.add_argument("--chunks", type=int, default=64)
    p.add_argument("--data", type=Path, default=common.SHARED / "scifact-dev")
    p.add_argument("--limit", type=float, default=900, help="seconds any one step may take")
    p.add_argument("--app-args", nargs=argparse.REMAINDER, default=[], help="more app.py flags")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    args.hf_home = None
    tmp = Path(tempfile.gettempdir())
    args.embedder = Path(args.embed_model or tmp / "qsearch-bench-qwen3-embedding-0.6b-random")
    args.reranker = Path(args.rerank_model or tmp / "qsearch-bench-qwen3-reranker-0.6b-random")
    if args.random_weights:
        common.random_qwen3(args.embedder)
        common.random_qwen3(args.reranker, reranker=True)
    if args.fresh:  # a cache of its own: the first start races, checks and quantizes
        args.hf_home = tempfile.mkdtemp(prefix="qsearch-app-start-")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.embedder)
    texts = common.chunk_texts(args.data, tokenizer, limit=args.chunks)
    starts = []
    for n in range(args.starts):
        starts.append(one_start(args, texts))
        print(f"start {n + 1}: {json.dumps(starts[-1])}", flush=True)
    report = {
        "benchmark": "app_start",
        "model": common.model_label(args.embed_model, args.embedder),
        "reranker": common.model_label(args.rerank_model, args.reranker),
        "dtype": args.dtype,
        "random_weights": args.random_weights,
        "fresh": args.fresh,
        "starts": starts,
        "environment": common.environment("cpu") | {"env_caps": _caps()},
    }
    if args.hf_home:
        shutil.rmtree(args.hf_home, ignore_errors=True)
    if args.json:
        print(json.dumps(report))


def _caps() -> dict[str, str]:
    from qsearch.models import cpu

    return {k: v for k, v in os.environ.items() if k in cpu.ISA_CAPS}


if __name__ == "__main__":
    main()
