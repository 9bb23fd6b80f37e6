"""Remote backends: an OpenAI-compatible /v1/embeddings server (SGLang, vLLM, TEI, another qsearch)
as an Embedder, and a /v1/rerank server as a Reranker. Batches, retries with backoff on 429 and
5xx, timeouts, and errors that say which server answered what."""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from .embedder import Progress, format_query
from .loading import ModelLoadError


class RemoteError(RuntimeError):
    """A remote model server that failed, or answered something that isn't the expected shape."""


class _Client:
    """JSON calls to a /v1 server through the official `openai` client, which retries with exponential
    backoff (honouring Retry-After) on connection errors, 408, 409, 429 and 5xx; errors name the server."""

    def __init__(
        self, url: str, api_key: str | None, timeout: float, retries: int, http_client: Any = None
    ):
        import openai

        self.base = url.rstrip("/")
        if not self.base.endswith("/v1"):
            self.base += "/v1"
        self.openai = openai.OpenAI(
            base_url=self.base,
            api_key=api_key or "none",
            timeout=timeout,
            max_retries=retries,
            http_client=http_client,
        )
        self.retries = retries

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        import openai

        url = f"{self.base}{path}"
        try:
            if method == "GET":
                answer = self.openai.get(path, cast_to=object)
            else:
                answer = self.openai.post(path, body=body, cast_to=object)
        except openai.APIStatusError as e:
            raise RemoteError(f"{url} answered {e.status_code}: {_message(e.response)}") from None
        except openai.APIConnectionError as e:
            raise RemoteError(
                f"{url}: no answer after {self.retries + 1} tries ({type(e).__name__}: "
                f"{e.__cause__ or e})"
            ) from None
        if not isinstance(answer, dict):
            raise RemoteError(f"{url} answered with something that isn't a JSON object")
        return answer


class RemoteEmbedder:
    """Embeddings from an OpenAI-compatible server; the Embedder contract, like the local backends.

    The server embeds texts as sent, so queries are formatted here: Qwen3 embedding models get
    the official `Instruct: {task}\\nQuery:{query}` text. Chunking needs the model's tokenizer:
    it is loaded (without weights) when it can be, else word pieces are counted as an estimate.
    """

    def __init__(
        self,
        url: str,
        model: str | None = None,
        *,
        api_key: str | None = None,
        dim: int | None = None,
        batch_size: int = 64,
        timeout: float = 120.0,
        retries: int = 4,
        tokenizer: Any = None,
        http_client: Any = None,
    ):
        self.client = _Client(url, api_key, timeout, retries, http_client)
        self.url = url
        self.model_name = model or self._served_model()
        self.batch_size = batch_size
        self.requested_dim = dim
        self.supports_instruction = "qwen3-embedding" in self.model_name.lower()
        self.tokenizer, self.max_tokens = tokenizer, 8192
        if self.tokenizer is None:
            try:
                from .embedder import load_tokenizer

                self.tokenizer, self.max_tokens = load_tokenizer(self.model_name)
            except (ModelLoadError, OSError, ValueError):
                self.tokenizer = WordPieceEstimate()
        self.dim = dim or len(self._embed(["dimension probe"])[0])

    def __repr__(self) -> str:
        return f"RemoteEmbedder({self.url!r}, model={self.model_name!r}, dim={self.dim})"

    def encode(
        self,
        texts: Sequence[str],
        *,
        is_query: bool = False,
        instruction: str | None = None,
        progress: Progress | None = None,
    ) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("encode takes a list of texts, not a single string")
        if is_query and self.supports_instruction:
            texts = [format_query(t, instruction) for t in texts]
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            batch = [
                t if t else " " for t in texts[start : start + self.batch_size]
            ]  # servers refuse ""
            out[start : start + len(batch)] = self._embed(batch)
            if progress is not None:
                progress(start + len(batch), len(texts))
        return out

    def _embed(self, texts: list[str]) -> np.ndarray:
        body: dict[str, Any] = {
            "input": texts,
            "encoding_format": "base64",
            "model": self.model_name,
        }
        if self.requested_dim:
            body["dimensions"] = self.requested_dim
        answer = self.client.call("POST", "/embeddings", body)
        try:
            rows = sorted(answer["data"], key=lambda d: d["index"])
            vectors = np.stack([_vector(d["embedding"]) for d in rows])
        except (KeyError, TypeError, ValueError) as e:
            raise RemoteError(f"{self.client.base}/embeddings: unexpected answer ({e})") from None
        if len(vectors) != len(texts):
            raise RemoteError(
                f"{self.client.base}/embeddings: {len(vectors)} vectors for {len(texts)} texts"
            )
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def _served_model(self) -> str:
        models = self.client.call("GET", "/models").get("data") or []
        if not models:
            raise RemoteError(f"{self.client.base}/models lists no model; pass the model name")
        return str(models[0]["id"])


class RemoteReranker:
    """Relevance scores from a /v1/rerank server (vLLM, SGLang, Jina, qsearch); the Reranker contract."""

    def __init__(
        self,
        url: str,
        model: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        retries: int = 4,
        batch_size: int = 256,
    ):
        self.client = _Client(url, api_key, timeout, retries)
        self.model_name = model or "reranker"
        self._model_given = model is not None
        self.batch_size = batch_size

    def score(
        self, query: str, texts: Sequence[str], *, instruction: str | None = None
    ) -> np.ndarray:
        out = np.empty(len(texts), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start : start + self.batch_size])
            body: dict[str, Any] = {"query": query, "documents": batch, "top_n": len(batch)}
            if self._model_given:
                body["model"] = self.model_name
            if instruction:
                body["instruction"] = instruction
            answer = self.client.call("POST", "/rerank", body)
            try:
                for r in answer["results"]:
                    out[start + int(r["index"])] = float(r["relevance_score"])
            except (KeyError, TypeError, ValueError, IndexError) as e:
                raise RemoteError(f"{self.client.base}/rerank: unexpected answer ({e})") from None
        return out


class WordPieceEstimate:
    """Token offsets estimated without the model's tokenizer: one per ~4 characters of a word.

    Subword tokenizers average about 4 characters of English per token; chunks made with this
    estimate land near the intended size and never split a word."""

    _PIECE = re.compile(r"\S{1,4}")

    def __call__(
        self,
        texts: list[str],
        *,
        add_special_tokens: bool = False,
        return_offsets_mapping: bool = True,
    ) -> dict:
        return {"offset_mapping": [[m.span() for m in self._PIECE.finditer(t)] for t in texts]}


def _vector(value: Any) -> np.ndarray:
    if isinstance(value, str):
        return np.frombuffer(base64.b64decode(value), dtype="<f4").astype(np.float32)
    return np.asarray(value, dtype=np.float32)


def _message(response: Any) -> str:
    try:
        body = response.json()
        error = body.get("error", body) if isinstance(body, dict) else body
        message = error.get("message", error) if isinstance(error, dict) else error
        return str(message)[:300]
    except ValueError:
        return response.text[:300] or response.reason_phrase
