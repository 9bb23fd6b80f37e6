"""A loaded model settled in the first precision of `auto`'s choices (cpu_race.py) that its
quality check (checks.py) lets through, converted in place by quantize.py; int8 weights come from
the on-disk cache where it holds them (weights_cache.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import checks, heap, quantize, verdicts, weights_cache
from .quantize import Choice


def settle(
    body: Any,
    folder: Path,
    choices: list[Choice],
    check: checks.QualityCheck | None,
    reload: Callable[[], Any] | None = None,
) -> tuple[Any, str]:
    """(`body` in the first of `choices` it may run in, why). `body` comes in fp32 (or in bf16
    as its checkpoint stores it) and is converted in place, one layer at a time: the model is
    never held twice. A choice with int8 in it runs only where the model passes `check` against
    fp32 (a verdict kept on disk, or measured now: fp32's check states first, then the same body
    converted); fp32 and bf16 need no check. A check that fails leaves a converted body behind:
    `reload()` gives a fresh one (from the model's folder) for the next choice. Without `check`
    (the precision was set by hand) the first choice runs unchecked. int8 weights come from the
    on-disk cache where it holds them (weights_cache.py), else they are quantized and kept there."""
    missed: list[str] = []
    reference = None
    for choice in choices:
        body = _fresh(body, reload)
        if choice.precision == "float32" and missed:  # every faster one missed its bar
            return _released(quantize.convert(body, "float32")), "float32: " + "; ".join(missed)
        if check is None or not choice.int8:
            return _released(_converted(body, choice, folder)), _and(choice.why, missed)
        key = checks.check_key(folder, check, choice.label)
        value = verdicts.read(key)
        if value is None:  # measured once per machine and model: the check's fp32 states first
            if reference is None:
                reference = checks.pooled_states(quantize.convert(body, "float32"), check)
            converted, body = _converted(body, choice, folder), None
            value = verdicts.write(
                key, check.agreement(reference, checks.pooled_states(converted, check))
            )
            if value >= check.bar:
                return _released(converted), _and(f"{choice.why}; {check.says(value)}", missed)
            del converted
        elif value >= check.bar:
            model = _converted(body, choice, folder)
            return _released(model), _and(f"{choice.why}; {check.says(value)}", missed)
        missed.append(
            f"{choice.precision} ({choice.speedup:.1f}x fp32) missed this model's quality bar "
            f"({check.says(value)})"
        )
    model = quantize.convert(_fresh(body, reload), "float32")
    return _released(model), "float32: " + "; ".join(missed)


def _fresh(body: Any, reload: Callable[[], Any] | None) -> Any:
    """`body`, or a fresh one where a failed check converted it."""
    if body is not None:
        return body
    if reload is None:
        raise RuntimeError("settle: the model was converted and can't be loaded again")
    return reload()


def _converted(body: Any, choice: Choice, folder: Path) -> Any:
    """`body` in `choice`'s precision; int8 weights from the on-disk cache, or stored there."""
    if not choice.int8:
        return quantize.convert(body, choice.precision, choice.engine)
    stored = weights_cache.read(folder)
    model = quantize.convert(body, choice.precision, choice.engine, stored)
    if stored is None:
        weights_cache.write(folder, quantize.int8_weights(model))
    return _owned(model)


def _owned(model: Any) -> Any:
    """`model` with its own copy of every float tensor left (the table, the norms). A model loaded
    in its checkpoint's dtype reads its tensors straight from the mapped file (safetensors): the
    table alone would keep the whole file mapped, and every page of it ever read resident."""
    import torch

    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            tensor.data = tensor.data.clone()
    return model


def _released(model: Any) -> Any:
    """`model`, with the memory its conversion freed given back to the system (heap.py)."""
    heap.release()
    return model


def _and(why: str, missed: list[str]) -> str:
    return "; ".join([why, *missed])
