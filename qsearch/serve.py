"""OpenAI-compatible HTTP API over the loaded models: /v1/embeddings, /v1/models, /v1/rerank.

The same request and response shapes as OpenAI's embeddings API (and the Jina/Cohere rerank
shape that vLLM and SGLang serve), so the `openai` client and tools built for those servers
work unchanged. Inputs are embedded exactly as sent: a retrieval query carries its
instruction in the text, `Instruct: {task}\\nQuery:{query}`, as the official Qwen3 examples do.
Errors are JSON `{"error": {"message", "type", "code"}}` with status 400 (bad input),
401 (wrong key), 413 (too large) or 503 (model not available).
"""

from __future__ import annotations

import base64
import hmac
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from .embed import Embedder
from .loading import served_name
from .rerank import Reranker


class ApiError(Exception):
    def __init__(self, status: int, message: str, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind


@dataclass
class ApiLimits:
    max_inputs: int = 512  # texts per /v1/embeddings request, documents per /v1/rerank request
    max_chars: int = 100_000  # characters per text


def openai_router(embedder: Callable[[], Embedder], reranker: Callable[[], Reranker] | None = None, *,
                  api_key: str | None = None, limits: ApiLimits = ApiLimits()) -> APIRouter:
    """The /v1 routes. `embedder` and `reranker` are getters, so a model can load (or fail) lazily."""
    router = APIRouter()

    def guarded(handler: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable:
        async def route(request: Request) -> JSONResponse:
            try:
                _check_key(request, api_key)
                body: Any = {}
                if request.method == "POST":
                    try:
                        body = await request.json()
                    except ValueError:
                        raise ApiError(400, "the request body is not valid JSON") from None
                    if not isinstance(body, dict):
                        raise ApiError(400, "the request body must be a JSON object")
                from starlette.concurrency import run_in_threadpool

                return JSONResponse(await run_in_threadpool(handler, body))
            except ApiError as e:
                return JSONResponse({"error": {"message": e.message, "type": e.kind, "code": e.status}},
                                    status_code=e.status)
        return route

    def models(_: dict[str, Any]) -> dict[str, Any]:
        served = [_model_entry(embedder().model_name)]
        if reranker is not None:
            try:
                served.append(_model_entry(reranker().model_name))
            except Exception:  # noqa: BLE001 - an unavailable reranker is just not listed
                pass
        return {"object": "list", "data": served}

    def embeddings(body: dict[str, Any]) -> dict[str, Any]:
        model = _model(embedder)
        texts = body.get("input")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise ApiError(400, "'input' must be a non-empty string or a non-empty list of strings")
        _check_size(texts, limits, "input")
        if any(not t for t in texts):
            raise ApiError(400, "'input' contains an empty string")
        _check_model_name(body, model.model_name)
        encoding = body.get("encoding_format", "float") or "float"
        if encoding not in ("float", "base64"):
            raise ApiError(400, f"'encoding_format' must be 'float' or 'base64', got {encoding!r}")
        dims = body.get("dimensions")
        if dims is not None and (not isinstance(dims, int) or isinstance(dims, bool) or not 1 <= dims <= model.dim):
            raise ApiError(400, f"'dimensions' must be an integer in 1..{model.dim}, got {dims!r}")
        vectors = model.encode(texts)
        if dims is not None and dims < model.dim:
            vectors = np.ascontiguousarray(vectors[:, :dims])
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        tokens = _count_tokens(model, texts)
        data = [{"object": "embedding", "index": i,
                 "embedding": base64.b64encode(v.astype("<f4").tobytes()).decode() if encoding == "base64"
                 else v.tolist()} for i, v in enumerate(vectors)]
        return {"object": "list", "data": data, "model": served_name(model.model_name),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    def rerank(body: dict[str, Any]) -> dict[str, Any]:
        if reranker is None:
            raise ApiError(503, "no reranker is served here", "service_unavailable")
        query, documents = body.get("query"), body.get("documents")
        if not isinstance(query, str) or not query.strip():
            raise ApiError(400, "'query' must be a non-empty string")
        if isinstance(documents, list):  # Cohere/Jina also accept {"text": ...} objects
            documents = [d.get("text") if isinstance(d, dict) else d for d in documents]
        if not isinstance(documents, list) or not documents or not all(isinstance(d, str) for d in documents):
            raise ApiError(400, "'documents' must be a non-empty list of strings")
        _check_size(documents, limits, "documents")
        _check_size([query], limits, "query")
        top_n = body.get("top_n", len(documents))
        if not isinstance(top_n, int) or isinstance(top_n, bool) or top_n < 1:
            raise ApiError(400, f"'top_n' must be a positive integer, got {top_n!r}")
        instruction = body.get("instruction")
        if instruction is not None and not isinstance(instruction, str):
            raise ApiError(400, "'instruction' must be a string")
        model = _model(reranker)
        _check_model_name(body, model.model_name)
        scores = model.score(query, documents, instruction=instruction)
        order = np.argsort(-scores, kind="stable")[:top_n]
        results = [{"index": int(i), "relevance_score": float(scores[i])} for i in order]
        if body.get("return_documents"):
            for r in results:
                r["document"] = {"text": documents[r["index"]]}
        prepare = getattr(model, "prepare", None)
        tokens = sum(map(len, prepare(query, documents, instruction))) if prepare else 0
        return {"id": f"rerank-{uuid.uuid4().hex[:16]}", "model": served_name(model.model_name), "results": results,
                "usage": {"total_tokens": tokens}}

    router.add_api_route("/v1/models", guarded(models), methods=["GET"])
    router.add_api_route("/v1/embeddings", guarded(embeddings), methods=["POST"])
    router.add_api_route("/v1/rerank", guarded(rerank), methods=["POST"])
    return router


def _check_key(request: Request, api_key: str | None) -> None:
    if not api_key:
        return
    given = request.headers.get("authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
        raise ApiError(401, "missing or wrong API key: send 'Authorization: Bearer <key>'", "authentication_error")


def _check_size(texts: list[str], limits: ApiLimits, field: str) -> None:
    if len(texts) > limits.max_inputs:
        raise ApiError(413, f"too many items in '{field}': {len(texts)}, at most {limits.max_inputs}")
    longest = max(len(t) for t in texts)
    if longest > limits.max_chars:
        raise ApiError(413, f"a text in '{field}' has {longest:,} characters, at most {limits.max_chars:,}")


def _model(getter: Callable[[], Any]) -> Any:
    try:
        return getter()
    except Exception as e:  # noqa: BLE001 - whatever kept the model from loading
        raise ApiError(503, f"the model is not available: {e}", "service_unavailable") from None


def _check_model_name(body: dict[str, Any], served: str) -> None:
    from .index import model_key

    asked, name = body.get("model"), served_name(served)
    if asked is not None and (not isinstance(asked, str) or model_key(asked) != model_key(name)):
        raise ApiError(400, f"model {asked!r} is not served here; this server serves {name!r}")


def _count_tokens(model: Any, texts: list[str]) -> int:
    prepare = getattr(model, "prepare", None)
    return sum(len(ids) for ids in prepare(texts)) if prepare else sum(len(t) // 4 for t in texts)


def _model_entry(name: str) -> dict[str, Any]:
    return {"id": served_name(name), "object": "model", "created": int(time.time()), "owned_by": "qsearch"}
