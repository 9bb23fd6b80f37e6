"""OpenAI-compatible HTTP API over the loaded models: /v1/embeddings, /v1/models, /v1/rerank.

The same request and response shapes as OpenAI's embeddings API (and the Jina/Cohere rerank
shape that vLLM and SGLang serve), so the `openai` client and tools built for those servers
work unchanged. Inputs are embedded exactly as sent: a retrieval query carries its
instruction in the text, `Instruct: {task}\\nQuery:{query}`, as the official Qwen3 examples do.
Errors are JSON `{"error": {"message", "type", "code"}}` with status 400 (bad input),
401 (wrong key), 413 (too large) or 503 (model or GPU not available).
"""

from __future__ import annotations

import base64
import hmac
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import (
    BaseModel,
    Field,
    StrictInt,
    StringConstraints,
    ValidationError,
    field_validator,
)
from starlette.concurrency import run_in_threadpool

from ..config import model_name, same_model
from ..models.base import Embedder, Reranker
from .gpu_boundary import GpuUnavailable


class ApiError(Exception):
    def __init__(self, status: int, message: str, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind


@dataclass
class ApiLimits:
    max_inputs: int = 512  # texts per /v1/embeddings request, documents per /v1/rerank request
    max_chars: int = 100_000  # characters per text
    max_total_chars: int | None = None  # characters in one request, all texts together


Text = Annotated[str, StringConstraints(min_length=1)]


class EmbeddingsRequest(BaseModel):
    """The body of POST /v1/embeddings (OpenAI's shape; unknown fields are ignored, as servers
    do)."""

    input: Annotated[list[Text], Field(min_length=1)]
    model: str | None = None
    encoding_format: Literal["float", "base64"] | None = "float"
    dimensions: Annotated[StrictInt, Field(ge=1)] | None = None

    @field_validator("input", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class RerankRequest(BaseModel):
    """The body of POST /v1/rerank (the Jina/Cohere shape that vLLM and SGLang serve)."""

    query: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
    documents: Annotated[list[str], Field(min_length=1)]
    top_n: Annotated[StrictInt, Field(ge=1)] | None = None
    instruction: str | None = None
    return_documents: bool = False
    model: str | None = None

    @field_validator("documents", mode="before")
    @classmethod
    def _texts(cls, value: Any) -> Any:  # Cohere/Jina also accept {"text": ...} objects
        return (
            [d.get("text") if isinstance(d, dict) else d for d in value]
            if isinstance(value, list)
            else value
        )


def openai_router(
    embedder: Callable[[], Embedder],
    reranker: Callable[[], Reranker] | None = None,
    *,
    api_key: str | None = None,
    limits: ApiLimits = ApiLimits(),
) -> APIRouter:
    """The /v1 routes. `embedder` and `reranker` are getters, so a model can load (or fail)
    lazily."""
    router = APIRouter()

    def models(_: None) -> dict[str, Any]:
        served = [_model_entry(embedder())]
        if reranker is not None:
            try:
                served.append(_model_entry(reranker()))
            except Exception:  # noqa: BLE001 - an unavailable reranker is just not listed
                pass
        return {"object": "list", "data": served}

    def embeddings(body: EmbeddingsRequest) -> dict[str, Any]:
        return _embeddings(_model(embedder), body, limits)

    def rerank(body: RerankRequest) -> dict[str, Any]:
        if reranker is None:
            raise ApiError(503, "no reranker is served here", "service_unavailable")
        _check_size(body.documents, limits, "documents")
        _check_size([body.query], limits, "query")
        return _rerank(_model(reranker), body)

    router.add_api_route("/v1/models", _route(models, None, api_key), methods=["GET"])
    router.add_api_route(
        "/v1/embeddings", _route(embeddings, EmbeddingsRequest, api_key), methods=["POST"]
    )
    router.add_api_route("/v1/rerank", _route(rerank, RerankRequest, api_key), methods=["POST"])
    return router


def _embeddings(model: Embedder, body: EmbeddingsRequest, limits: ApiLimits) -> dict[str, Any]:
    """POST /v1/embeddings: OpenAI's answer, vectors as floats or base64 little-endian float32."""
    _check_size(body.input, limits, "input")
    _check_model_name(body.model, model.model_name)
    if body.dimensions is not None and body.dimensions > model.dim:
        raise ApiError(
            400, f"'dimensions' must be an integer in 1..{model.dim}, got {body.dimensions}"
        )
    vectors = model.encode(body.input)
    if body.dimensions is not None and body.dimensions < model.dim:
        vectors = np.ascontiguousarray(vectors[:, : body.dimensions])
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    tokens = _count(model, body.input)
    data = [
        {
            "object": "embedding",
            "index": i,
            "embedding": base64.b64encode(v.astype("<f4").tobytes()).decode()
            if body.encoding_format == "base64"
            else v.tolist(),
        }
        for i, v in enumerate(vectors)
    ]
    return {
        "object": "list",
        "data": data,
        "model": model_name(model.model_name),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def _rerank(model: Reranker, body: RerankRequest) -> dict[str, Any]:
    """POST /v1/rerank: the Jina/Cohere answer, best first, `top_n` of them."""
    _check_model_name(body.model, model.model_name)
    scores = model.score(body.query, body.documents, instruction=body.instruction)
    order = np.argsort(-scores, kind="stable")[: body.top_n or len(body.documents)]
    results = [{"index": int(i), "relevance_score": float(scores[i])} for i in order]
    if body.return_documents:
        for r in results:
            r["document"] = {"text": body.documents[r["index"]]}
    tokens = _count(model, body.query, body.documents, body.instruction)
    return {
        "id": f"rerank-{uuid.uuid4().hex[:16]}",
        "model": model_name(model.model_name),
        "results": results,
        "usage": {"total_tokens": tokens},
    }


def _route(
    handler: Callable[[Any], dict[str, Any]], body_type: type[BaseModel] | None, api_key: str | None
) -> Callable:
    """An endpoint: the key checked, the body parsed into `body_type`, the handler run in a thread,
    every failure answered as OpenAI does: {"error": {"message", "type", "code"}}."""

    async def route(request: Request) -> JSONResponse:
        try:
            _check_key(request, api_key)
            body = None
            if body_type is not None:
                try:
                    body = body_type.model_validate(await request.json())
                except ValueError as e:  # broken JSON, or a body that isn't the model
                    raise ApiError(400, _why(e)) from None
            return JSONResponse(await run_in_threadpool(handler, body))
        except GpuUnavailable as gpu:  # ZeroGPU: no GPU now, quota, a worker error
            error = ApiError(503, f"the GPU is unavailable: {gpu.reason}", "service_unavailable")
        except ApiError as api:
            error = api
        return JSONResponse(
            {"error": {"message": error.message, "type": error.kind, "code": error.status}},
            status_code=error.status,
        )

    return route


def _why(error: ValueError) -> str:
    """One line for a client: where the body is wrong, and how."""
    if not isinstance(error, ValidationError):
        return "the request body is not valid JSON"
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "the request body"
    return f"'{where}': {first['msg'].lower()} (got {first.get('input')!r:.80})"


def _check_key(request: Request, api_key: str | None) -> None:
    if not api_key:
        return
    given = request.headers.get("authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
        raise ApiError(
            401,
            "missing or wrong API key: send 'Authorization: Bearer <key>'",
            "authentication_error",
        )


def _check_size(texts: list[str], limits: ApiLimits, field: str) -> None:
    if len(texts) > limits.max_inputs:
        raise ApiError(
            413, f"too many items in '{field}': {len(texts)}, at most {limits.max_inputs}"
        )
    longest = max(len(t) for t in texts)
    if longest > limits.max_chars:
        raise ApiError(
            413, f"a text in '{field}' has {longest:,} characters, at most {limits.max_chars:,}"
        )
    total = sum(len(t) for t in texts)
    if limits.max_total_chars is not None and total > limits.max_total_chars:
        raise ApiError(
            413,
            f"'{field}' has {total:,} characters in all, at most {limits.max_total_chars:,} in "
            "one request on this server: send fewer or shorter texts per request",
        )


def _model(getter: Callable[[], Any]) -> Any:
    try:
        return getter()
    except Exception as e:  # noqa: BLE001 - whatever kept the model from loading
        raise ApiError(503, f"the model is not available: {e}", "service_unavailable") from None


def _check_model_name(asked: str | None, served: str) -> None:
    name = model_name(served)
    if asked is not None and not same_model(asked, name):
        raise ApiError(400, f"model {asked!r} is not served here; this server serves {name!r}")


def _count(model: Any, *args: Any) -> int:
    """Tokens the model reads (the contract's `count_tokens`, models/base.py)."""
    return int(model.count_tokens(*args))


def _model_entry(model: Any) -> dict[str, Any]:
    """OpenAI's model object, and where the model runs and in which precision, and why (as the
    page says it)."""
    return {
        "id": model_name(model.model_name),
        "object": "model",
        "created": int(time.time()),
        "owned_by": "qsearch",
        "device": getattr(model, "device", None),
        "precision": getattr(model, "precision", None),
    }
