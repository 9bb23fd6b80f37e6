"""Settings -> the models they name: a remote server (embed_url / rerank_url) or a local model."""

from __future__ import annotations

import warnings

from ..config import Settings
from .embedder import Embedder
from .loading import ModelLoadError, resolve_model
from .reranker import Reranker


def make_embedder(settings: Settings) -> Embedder:
    """The embedder the settings name: a remote server (embed_url), or a model loaded here."""
    if settings.embed_url:
        from .remote import RemoteEmbedder

        return RemoteEmbedder(
            settings.embed_url,
            api_key=settings.remote_api_key,
            dim=settings.embed_dim,
            instructions=settings.remote_instructions,
        )
    from .embedder import load_embedder

    return load_embedder(
        settings.embed_model,
        device=settings.device,
        dim=settings.embed_dim,
        max_batch_tokens=settings.max_batch_tokens,
        dtype=settings.dtype,
        compile=settings.compile,
    )


def make_reranker(settings: Settings) -> Reranker:
    """The reranker the settings name: a remote /v1/rerank server (rerank_url), or a local model."""
    if settings.rerank_url:
        from .remote import RemoteReranker

        return RemoteReranker(settings.rerank_url, api_key=settings.remote_api_key)
    from .reranker import load_reranker

    return load_reranker(
        settings.rerank_model,
        device=settings.device,
        max_batch_tokens=settings.max_batch_tokens,
        dtype=settings.dtype,
        compile=settings.compile,
    )


def make_reranker_or_fallback(settings: Settings) -> Reranker:
    """The configured reranker, or, when it can't be loaded, the fallback cross-encoder the app
    uses too (`rerank_choice`), with a RuntimeWarning saying why. When neither loads:
    ModelLoadError saying what to pass instead."""
    try:
        return make_reranker(settings)
    except Exception as e:  # noqa: BLE001 - any failure to load (damaged weights: not OSError)
        failed = e
    if settings.rerank_url:  # a server: no local fallback stands in for it
        raise ModelLoadError(f"{_first_line(failed)}. {NO_RERANKER}") from None
    fallback, said = rerank_choice(settings, failed)
    if fallback is None:
        raise ModelLoadError(f"Reranking is unavailable: {said}. {NO_RERANKER}") from None
    try:
        reranker = make_reranker(settings.with_(rerank_model=fallback))
    except Exception as e:  # noqa: BLE001 - as above
        raise ModelLoadError(
            f"Reranking is unavailable: {said}; the fallback failed too: {_first_line(e)}. "
            f"{NO_RERANKER}"
        ) from None
    warnings.warn(said, RuntimeWarning, stacklevel=4)  # the caller of Engine.search
    return reranker


NO_RERANKER = (
    "Search with rerank=False (no --rerank), or name a reranker that can be loaded here: "
    "rerank_model / --rerank-model / QSEARCH_RERANK_MODEL (a local folder or a cached hub id), "
    "rerank_fallback / --rerank-fallback, or rerank_url / --rerank-url (a /v1/rerank server)"
)


def rerank_choice(settings: Settings, failed: Exception | None = None) -> tuple[str | None, str]:
    """(the local reranker to load, what to tell the user): the configured model when it can be
    found (and did not fail to load: `failed`), else the fallback cross-encoder when that can be
    found, saying why; (None, why neither can rerank) when neither can."""
    configured, fallback = settings.rerank_model, settings.rerank_fallback
    why = _first_line(failed) if failed is not None else _missing(configured, "--rerank-model")
    if why is None:
        return configured, ""
    if not fallback or fallback.lower() == "none" or fallback == configured:
        return None, why
    also = _missing(fallback, "--rerank-fallback")
    if also is not None:
        return None, f"{why.rstrip('.')}. Nor can its fallback be loaded: {also}"
    return fallback, (
        f"Could not load the reranker {configured} ({why}). Reranking with the cross-encoder "
        f"{fallback} instead: its own P(relevant), and task instructions do not apply."
    )


def reranker_reads_instructions(settings: Settings) -> bool:
    """Whether the reranker the settings name reads task instructions, without loading it:
    Qwen3-Reranker does (and a /v1/rerank server is sent them); a cross-encoder does not."""
    if settings.rerank_url:
        return True
    from .cross_encoder import is_cross_encoder

    try:
        folder = resolve_model(settings.rerank_model, flag="--rerank-model")
    except ModelLoadError:
        return False
    return not is_cross_encoder(folder)


def _missing(model: str, flag: str) -> str | None:
    """Why `model` can't be found here (not a folder, not cached, no hub), or None when it can."""
    env = "QSEARCH_" + flag.removeprefix("--").replace("-", "_").upper()
    try:
        resolve_model(model, flag=flag, env=env)
    except ModelLoadError as e:
        return _first_line(e)
    return None


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__
