"""int8 backends for the CPU, side by side on the same chunks: which one should qsearch run?

Candidates (each skipped with a note when its package is missing or its step fails):
- torch-dynamic: `torch.ao.quantization.quantize_dynamic` of the Linear layers (fbgemm/x86 kernels);
- torchao: `quantize_` with int8 dynamic activations and int8 weights (torch.ao's successor);
- onnxruntime: the model exported to ONNX (`torch.onnx.export`), then ONNX Runtime's
  `quantize_dynamic` (int8 weights, activations quantized per batch at run time);
- openvino: the same ONNX graph read by OpenVINO, weights compressed to int8 by NNCF
  (`compress_weights`, INT8_ASYM), the CPU plugin's own kernels.
Every candidate runs inside qsearch's embedder (same tokenization, batches, pooling, EOS), so only
the forward pass differs. Rounds are interleaved (a, b, c, then b, c, a, ...) after a warm-up, so a
noisy neighbour hits them alike; ratios are fp32's time / the candidate's, fastest rounds and
medians. Prints a table, and with --json a last line holding one JSON object.

    python bench/int8_candidates.py --json                       # the bundled MiniLM
    python bench/int8_candidates.py --random-weights --limit 16 --json   # Qwen3-0.6B architecture
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import common
import numpy as np

CANDIDATES = ["torch-dynamic", "torchao", "onnxruntime", "openvino"]


class GraphModel:
    """An exported graph standing in for the transformers model inside qsearch's embedder."""

    def __init__(self, run: Any, names: list[str]):
        self.run, self.names = run, names

    def __call__(self, input_ids: Any, attention_mask: Any = None, **_: Any) -> SimpleNamespace:
        import torch

        feeds = {"input_ids": input_ids.numpy()}
        if "attention_mask" in self.names:
            feeds["attention_mask"] = attention_mask.numpy()
        return SimpleNamespace(last_hidden_state=torch.from_numpy(np.asarray(self.run(feeds))))


def export_onnx(model: Any, folder: Path, with_mask: bool) -> Path:
    """The model's last_hidden_state as an ONNX graph (batch and length dynamic), fp32."""
    import torch

    class Body(torch.nn.Module):
        def __init__(self, inner: Any):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any = None) -> Any:
            if attention_mask is None:  # a decoder, right-padded: causal attention only. The mask
                # given as transformers' per-layer-type mapping skips its mask builder, whose
                # aten::diff the TorchScript exporter can't export
                length = input_ids.shape[1]
                causal = torch.ones(length, length, dtype=torch.bool).tril()[None, None]
                mapping = {"full_attention": causal}
                hidden = self.inner(input_ids=input_ids, attention_mask=mapping, use_cache=False)
                return hidden.last_hidden_state
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    path = folder / "model.onnx"
    ids = torch.ones(2, 16, dtype=torch.long)
    args = (ids, torch.ones_like(ids)) if with_mask else (ids,)
    names = ["input_ids", "attention_mask"][: len(args)]
    axes = {n: {0: "batch", 1: "length"} for n in names} | {"hidden": {0: "batch", 1: "length"}}
    torch.onnx.export(
        Body(model).eval(), args, str(path), input_names=names, output_names=["hidden"],
        dynamic_axes=axes, opset_version=17, dynamo=False,
    )  # fmt: skip
    return path


def build(name: str, fp32: Any, onnx_path: Path | None, work: Path) -> Any:
    """`fp32`'s embedder with its forward pass swapped for candidate `name`; (embedder, seconds)."""
    from qsearch.models import quantize

    embedder = copy.copy(fp32)
    started = time.perf_counter()
    if name == "torch-dynamic":
        embedder.model = quantize.quantize_linear(copy.deepcopy(fp32.model))  # per channel
    elif name == "torchao":
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

        embedder.model = copy.deepcopy(fp32.model)
        quantize_(embedder.model, Int8DynamicActivationInt8WeightConfig())
    elif name == "onnxruntime":
        import onnxruntime as ort
        from onnxruntime.quantization import QuantType, quantize_dynamic

        out = work / "model-int8.onnx"
        quantize_dynamic(
            str(onnx_path),
            str(out),
            weight_type=QuantType.QInt8,
            per_channel=True,
            use_external_data_format=True,
        )
        options = ort.SessionOptions()  # no spinning threads taking the cores from torch's
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(str(out), options, providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        embedder.model = GraphModel(lambda feeds: session.run(None, feeds)[0], names)
    elif name == "openvino":
        import nncf
        import openvino as ov

        compressed = nncf.compress_weights(
            ov.Core().read_model(str(onnx_path)), mode=nncf.CompressWeightsMode.INT8_ASYM
        )
        compiled = ov.Core().compile_model(compressed, "CPU")
        names = [i.get_any_name() for i in compiled.inputs]
        embedder.model = GraphModel(lambda feeds: compiled(feeds)[0], names)
    return embedder, time.perf_counter() - started


def interleaved(runs: dict[str, Any], rounds: int) -> tuple[dict, dict]:
    """Seconds per round and the last outputs of each run, in rotating order after a warm-up."""
    for run in runs.values():
        run()
    seconds: dict[str, list[float]] = {n: [] for n in runs}
    outputs: dict[str, np.ndarray] = {}
    names = list(runs)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            started = time.perf_counter()
            outputs[name] = runs[name]()
            seconds[name].append(time.perf_counter() - started)
            print(f"round {r} {name}: {seconds[name][-1]:.2f} s", file=sys.stderr, flush=True)
    return seconds, outputs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="hub id or folder (default: the bundled all-MiniLM-L6-v2)")
    p.add_argument("--random-weights", action="store_true", help="Qwen3-Embedding-0.6B, random")
    p.add_argument("--data", type=Path, default=common.SHARED / "scifact-dev")
    p.add_argument("--limit", type=int, default=64, help="chunks embedded per round")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--only", nargs="*", choices=CANDIDATES, default=CANDIDATES)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    import torch

    from qsearch.models import loading
    from qsearch.models.embedder import load_embedder

    if args.random_weights:
        folder = common.random_qwen3(
            Path(tempfile.gettempdir()) / "qsearch-bench-qwen3-embedding-0.6b-random"
        )
    else:
        folder = Path(args.model) if args.model else loading.bundled_small_model()
    fp32 = load_embedder(str(folder), device="cpu", dtype="float32", compile=False)
    texts = common.chunk_texts(args.data, fp32.tokenizer, limit=args.limit)
    tokens = sum(len(s) for s in fp32.prepare(texts))
    work = Path(tempfile.mkdtemp(prefix="qsearch-int8-candidates-"))
    onnx_path, notes, setup = None, {}, {}
    if {"onnxruntime", "openvino"} & set(args.only):
        try:
            started = time.perf_counter()
            onnx_path = export_onnx(fp32.model, work, with_mask=fp32.pooling != "lasttoken")
            setup["onnx_export"] = time.perf_counter() - started
        except Exception as e:  # noqa: BLE001 - reported, the other candidates still run
            notes["onnx_export"] = f"{type(e).__name__}: {str(e)[:300]}"
    runs: dict[str, Any] = {"fp32": lambda: fp32.encode(texts)}
    for name in args.only:
        if name in ("onnxruntime", "openvino") and onnx_path is None:
            notes[name] = "no ONNX graph (export failed)"
            continue
        try:
            embedder, setup[name] = build(name, fp32, onnx_path, work)
            runs[name] = lambda e=embedder: e.encode(texts)
            runs[name]()  # fails here, not inside the timed rounds
            print(f"{name}: ready in {setup[name]:.1f} s", file=sys.stderr, flush=True)
        except Exception as e:  # noqa: BLE001 - a missing package or a failed step is a result
            runs.pop(name, None)
            notes[name] = f"{type(e).__name__}: {str(e)[:300]}"
            traceback.print_exc()
    seconds, outputs = interleaved(runs, args.rounds)
    base = outputs["fp32"]
    results = {}
    for name, s in seconds.items():
        cosine = (outputs[name] * base).sum(1)  # rows are L2-normalised
        results[name] = {
            "seconds_all": s,
            "tokens_per_s": tokens / min(s),
            "tokens_per_s_median": tokens / statistics.median(s),
            "ratio_vs_fp32": min(seconds["fp32"]) / min(s),
            "ratio_vs_fp32_median": statistics.median(seconds["fp32"]) / statistics.median(s),
            "min_cosine_vs_fp32": float(cosine.min()),
            "setup_seconds": setup.get(name),
        }
    report = {
        "benchmark": "int8_candidates",
        "model": common.model_label(args.model, folder),
        "random_weights": args.random_weights,
        "chunks": len(texts),
        "tokens": tokens,
        "rounds": args.rounds,
        "torch_threads": torch.get_num_threads(),
        "candidates": results,
        "setup_seconds": setup,
        "notes": notes,
        "environment": common.environment("cpu")
        | {"versions_int8": common.versions("torchao", "onnxruntime", "onnx", "openvino", "nncf")},
    }
    print(f"{len(texts)} chunks, {tokens} tokens, {args.rounds} rounds")
    print(f"{'candidate':<14} {'tok/s best':>10} {'tok/s med':>10} {'x best':>7} {'x med':>7} "
          f"{'min cos':>8}")  # fmt: skip
    for name, r in results.items():
        print(
            f"{name:<14} {r['tokens_per_s']:>10.0f} {r['tokens_per_s_median']:>10.0f} "
            f"{r['ratio_vs_fp32']:>7.2f} {r['ratio_vs_fp32_median']:>7.2f} "
            f"{r['min_cosine_vs_fp32']:>8.5f}"
        )
    for name, note in notes.items():
        print(f"{name}: {note}")
    if args.json:
        print(json.dumps(report))


if __name__ == "__main__":
    main()
