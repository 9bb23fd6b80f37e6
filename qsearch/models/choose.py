"""Settings -> the models they name: a remote server (embed_url / rerank_url) or a local model."""

from __future__ import annotations

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
        return None, f"{why}. Nor can its fallback be loaded: {also}"
    return fallback, (
        f"Could not load the reranker {configured} ({why}). Reranking with the cross-encoder "
        f"{fallback} instead: its own P(relevant), and task instructions do not apply."
    )


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
