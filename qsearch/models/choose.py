"""Settings -> the models they name: a remote server (embed_url / rerank_url) or a local model."""

from __future__ import annotations

from ..config import Settings
from .embedder import Embedder
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
