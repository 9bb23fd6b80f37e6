"""What the server says when it starts, in the terminal and on the page, from one set of facts so
the two agree: the models loaded, on which device and in which precision; any fallback with its
full reason; whether the server is public without a login; how to get a public link.

The page's status line is one line of complete phrases (nothing is cut mid-word); the full
reasons sit in "Server details", one click below it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ..config import VERSION, model_name
from ..documents import ocr
from ..models.loading import device_label, dtype_reason
from .model_service import Fallback

if TYPE_CHECKING:
    from .server import Context

INDENT = "  "
PREFIX = "qsearch: "
_PRECISION = re.compile(r"^(int8\+bf16|int8|bfloat16|float16|float32)\b")


def precision_name(ctx: Context) -> str:
    """The precision the embedder runs in ('bfloat16', 'int8+bf16', ...), or '' for a server."""
    embedder, s = ctx.service.embedder, ctx.service.settings
    if embedder.device == "remote":
        return ""
    said = embedder.precision or dtype_reason(embedder.device, s.dtype)
    found = _PRECISION.match(said)
    return found.group(1) if found else s.dtype


def fallback_short(fallback: Fallback) -> str:
    """A fallback in a few complete words, for the status line (which names what runs)."""
    return f"{_short(fallback.wanted)} could not be loaded"


def status_line(ctx: Context) -> str:
    """The page's one line of server facts, then a short warning per fallback and for a public
    server without a login; whole phrases only (the full reasons are in Server details)."""
    warnings = [fallback_short(f) for f in ctx.service.fallbacks]
    if ctx.limits.public_warning():
        warnings.append("public, with no login")
    said = "".join(f" · ⚠ {w}" for w in warnings)
    return ctx.status_summary() + said + (" (why: Server details)" if warnings else "")


def has_warnings(ctx: Context) -> bool:
    return bool(ctx.service.fallbacks or ctx.limits.public_warning())


def startup_lines(ctx: Context) -> list[str]:
    """The terminal's account of the start: models, device, precision and why, fallbacks with
    their full reasons, reranking, OCR and the limits."""
    service, s = ctx.service, ctx.service.settings
    embedder, speed = service.embedder, service.embed_rate.per_second
    facts = [model_name(s.embed_model), device_label(embedder.device), precision_name(ctx)]
    facts.append(f"about {speed:,.0f} tokens/s" if speed else "")
    lines = [f"embedding: {' · '.join(f for f in facts if f)}"]
    if embedder.device != "remote":
        lines.append(f"precision: {embedder.precision or dtype_reason(embedder.device, s.dtype)}")
    lines += [f"⚠ {f.reason}" for f in service.fallbacks]
    off = service.rerank_unavailable.removeprefix("Reranking is unavailable: ")
    lines.append(
        f"⚠ reranking: off: {off}"
        if off
        else f"reranking: {model_name(s.rerank_model)} (loads when first used)"
    )
    lines += [f"scans: {ocr.status(s.ocr_lang, s.ocr)}", f"limits: {ctx.limits.summary()}"]
    return [f"qsearch {VERSION}"] + [INDENT + line for line in lines]


def link_lines(
    *,
    local_url: str,
    share: bool,
    share_url: str | None,
    on_space: bool,
    public_warning: str,
    verbose: bool = True,
) -> list[str]:
    """After the server is up: where it serves, qsearch's own hint on a public link (in place of
    Gradio's, which names `launch()` arguments a user of `python app.py` never writes), and the
    public-without-login warning. Warnings are said even when not `verbose`."""
    lines = [f"* Running on local URL:  {local_url}"] if verbose else []
    if share and not share_url:
        lines.append(
            "No public link: the share server can't be reached from here (no outbound "
            f"connection); the app is serving locally at {local_url}"
        )
    elif share and verbose:
        lines.append(
            "  The public link lasts up to a week, while this process runs; anyone with it can use "
            "the app."
        )
    elif verbose and not on_space:
        lines.append(
            "* For a temporary public link, start it with --share (make run ARGS=--share); "
            "--auth USER:PASSWORD puts a login before the page."
        )
    if public_warning:
        lines.append(f"{PREFIX}⚠ {public_warning}")
    return lines


def _short(name: str) -> str:
    """A model's short name; a server's URL as it is."""
    return name if "://" in name else model_name(name)
