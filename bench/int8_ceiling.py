"""The most int8 can give on this CPU: the linear layers of one Qwen3-0.6B decoder layer, fp32
against int8, in torch and in ONNX Runtime, at the row counts a query and a batch give.

Why: the whole model can be no faster in int8 than its linear layers are (they are ~94% of its
FLOPs at 256 tokens), so this is the ceiling of `ratio_cpu_default_vs_fp32` for any int8 path
built on these kernels. Each round runs the seven projections of one layer (q, k, v, o, gate,
up, down) for every backend, in rotating order after a warm-up; ratios are torch fp32's time /
the backend's, fastest rounds and medians. ONNX Runtime runs the same matrices as one graph of
seven MatMuls, quantized by its own `quantize_dynamic` (int8 weights per channel), spinning off
as in bench/int8_candidates.py. Prints a table, and with --json a last line of one JSON object.

    python bench/int8_ceiling.py --rows 16,256,2048 --rounds 7 --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import common
import numpy as np

HIDDEN, HEADS_DIM, KV_DIM, MLP = 1024, 2048, 1024, 3072  # Qwen3-0.6B (cpu_race.QWEN3_06B)
SHAPES = {  # projection: (in, out)
    "q": (HIDDEN, HEADS_DIM),
    "k": (HIDDEN, KV_DIM),
    "v": (HIDDEN, KV_DIM),
    "o": (HEADS_DIM, HIDDEN),
    "gate": (HIDDEN, MLP),
    "up": (HIDDEN, MLP),
    "down": (MLP, HIDDEN),
}
FLOPS_PER_ROW = sum(2 * i * o for i, o in SHAPES.values())


def torch_layer(int8: bool) -> Callable[[dict[int, Any]], Any]:
    """The seven projections as torch Linears (int8: qsearch's own quantize_linear)."""
    import torch

    from qsearch.models import quantize

    torch.manual_seed(0)
    layers = torch.nn.ModuleDict(
        {n: torch.nn.Linear(i, o, bias=False) for n, (i, o) in SHAPES.items()}
    )
    layers = quantize.quantize_linear(layers.eval()) if int8 else layers.eval()

    def run(inputs: dict[int, Any]) -> Any:
        with torch.inference_mode():
            return [layers[n](inputs[i]) for n, (i, _) in SHAPES.items()]

    return run


def onnx_layer(int8: bool, work: Path) -> Callable[[dict[int, Any]], Any]:
    """The seven projections as one ONNX graph in ONNX Runtime (int8: its quantize_dynamic)."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    widths = sorted({i for i, _ in SHAPES.values()})
    inputs = [
        helper.make_tensor_value_info(f"x{w}", TensorProto.FLOAT, ["rows", w]) for w in widths
    ]
    nodes, weights, outputs = [], [], []
    for name, (i, o) in SHAPES.items():
        w = (rng.standard_normal((i, o)) / np.sqrt(i)).astype(np.float32)
        weights.append(numpy_helper.from_array(w, f"w_{name}"))
        nodes.append(helper.make_node("MatMul", [f"x{i}", f"w_{name}"], [f"y_{name}"]))
        outputs.append(helper.make_tensor_value_info(f"y_{name}", TensorProto.FLOAT, ["rows", o]))
    graph = helper.make_graph(nodes, "layer", inputs, outputs, weights)
    path = work / "layer.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(
            path, work / "layer-int8.onnx", weight_type=QuantType.QInt8, per_channel=True
        )
        path = work / "layer-int8.onnx"
    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    import torch

    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda xs: session.run(None, {f"x{w}": xs[w].numpy() for w in widths})


def backends(only: list[str], work: Path) -> tuple[dict[str, Callable], dict[str, str]]:
    """Each backend's runner; one that cannot be built is a note, not a failure."""
    makers = {
        "torch-fp32": lambda: torch_layer(False),
        "torch-int8": lambda: torch_layer(True),
        "onnxruntime-fp32": lambda: onnx_layer(False, work),
        "onnxruntime-int8": lambda: onnx_layer(True, work),
    }
    runs, notes = {}, {}
    for name in only:
        try:
            runs[name] = makers[name]()
        except Exception as e:  # noqa: BLE001 - a missing package is a result, not a crash
            notes[name] = f"{type(e).__name__}: {str(e)[:200]}"
    return runs, notes


def time_rows(runs: dict[str, Callable], rows: int, rounds: int) -> dict[str, list[float]]:
    """Seconds per layer for each backend, `rounds` times, in rotating order after a warm-up."""
    import torch

    torch.manual_seed(1)
    xs = {w: torch.randn(rows, w) for w in sorted({i for i, _ in SHAPES.values()})}
    for run in runs.values():
        run(xs)
    seconds: dict[str, list[float]] = {n: [] for n in runs}
    names = list(runs)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            started = time.perf_counter()
            runs[name](xs)
            seconds[name].append(time.perf_counter() - started)
    return seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", default="16,256,2048", help="tokens per call, comma-separated")
    p.add_argument("--rounds", type=int, default=7)
    names = ["torch-fp32", "torch-int8", "onnxruntime-fp32", "onnxruntime-int8"]
    p.add_argument("--only", nargs="*", choices=names, default=names)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    if "torch-fp32" not in args.only:
        sys.exit("--only must keep torch-fp32: every ratio is against it")

    import torch

    from qsearch.models import cpu

    runs, notes = backends(args.only, Path(tempfile.mkdtemp(prefix="qsearch-int8-ceiling-")))
    results: dict[str, Any] = {}
    print(f"{'rows':>5} {'backend':<17} {'GFLOP/s best':>12} {'med':>6} {'x best':>7} {'x med':>6}")
    for rows in [int(r) for r in args.rows.split(",")]:
        seconds = time_rows(runs, rows, args.rounds)
        base = seconds["torch-fp32"]
        results[str(rows)] = {}
        for name, s in seconds.items():
            r = results[str(rows)][name] = {
                "seconds_all": s,
                "gflops": FLOPS_PER_ROW * rows / min(s) / 1e9,
                "gflops_median": FLOPS_PER_ROW * rows / statistics.median(s) / 1e9,
                "ratio_vs_torch_fp32": min(base) / min(s),
                "ratio_vs_torch_fp32_median": statistics.median(base) / statistics.median(s),
            }
            print(
                f"{rows:>5} {name:<17} {r['gflops']:>12.0f} {r['gflops_median']:>6.0f} "
                f"{r['ratio_vs_torch_fp32']:>7.2f} {r['ratio_vs_torch_fp32_median']:>6.2f}"
            )
    for name, note in notes.items():
        print(f"{name}: {note}")
    if args.json:
        report = {
            "benchmark": "int8_ceiling",
            "layer": "Qwen3-0.6B decoder layer, linear projections only",
            "shapes": SHAPES,
            "rounds": args.rounds,
            "cpu_features": cpu.cpu_features(),
            "quantized_engine": torch.backends.quantized.engine,
            "results": results,
            "notes": notes,
            "environment": common.environment("cpu")
            | {"versions_int8": common.versions("onnxruntime", "onnx")},
        }
        print(json.dumps(report))


if __name__ == "__main__":
    main()
