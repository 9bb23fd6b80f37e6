"""Remote backends: an OpenAI-compatible /v1/embeddings server (SGLang, vLLM, TEI, another
qsearch) as an Embedder, and a /v1/rerank server as a Reranker, each one method over the bases
(base.py: batching, validation, progress, the non-finite guard). Retries with backoff on 429
and 5xx, timeouts, and errors that say which server answered what.

Whether a remote embedding model takes query instructions is the `instructions` argument
(QSEARCH_REMOTE_INSTRUCTIONS); unset, it is guessed from the served name (Qwen3-Embedding
models do)."""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from .base import EmbedderBase, RerankerBase
from .loading import ModelLoadError

INSTRUCTION_MODELS = ("qwen3-embedding",)  # served names that take `Instruct: ...` queries


class RemoteError(RuntimeError):
    """A remote model server that failed, or answered something that isn't the expected shape."""


class _Client:
    """JSON calls to a /v1 server through the official `openai` client, which retries with
    exponential backoff (honouring Retry-After) on connection errors, 408, 409, 429 and 5xx;
    errors name the server."""

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


def takes_instructions(model_name: str, setting: bool | None = None) -> bool:
    """`setting` when given (QSEARCH_REMOTE_INSTRUCTIONS), else a guess from the served name."""
    if setting is not None:
        return setting
    return any(name in model_name.lower() for name in INSTRUCTION_MODELS)


class RemoteEmbedder(EmbedderBase):
    """Embeddings from an OpenAI-compatible server; the Embedder contract, like the local backends.

    The server embeds texts as sent, so queries are formatted here: a model that takes
    instructions (see `takes_instructions`) gets the official `Instruct: {task}\\nQuery:{query}`
    text. Chunking needs the model's tokenizer: it is loaded (without weights) when it can be,
    else word pieces are counted as an estimate.
    """

    max_batch_tokens = 1 << 30  # a server batches by its own rule: only the count is capped

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
        instructions: bool | None = None,
    ):
        self.client = _Client(url, api_key, timeout, retries, http_client)
        self.url = url
        self.model_name = model or self._served_model()
        self.max_batch_size = batch_size
        self.requested_dim = dim
        self.supports_instruction = takes_instructions(self.model_name, instructions)
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

    def prepare(
        self, texts: Sequence[str], *, is_query: bool = False, instruction: str | None = None
    ) -> list[str]:
        """The texts as sent: queries formatted, and " " for "" (servers refuse empty input)."""
        texts = super().prepare(texts, is_query=is_query, instruction=instruction)
        return [t or " " for t in texts]

    def embed_batch(
        self, items: list[str], *, is_query: bool, instruction: str | None
    ) -> np.ndarray:
        return self._embed(items)

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


class RemoteReranker(RerankerBase):
    """Relevance scores from a /v1/rerank server (vLLM, SGLang, Jina, qsearch): the Reranker
    contract. A server must score every passage it is sent: fewer (or other) results are an
    error naming the server, never a score left unset."""

    def __init__(
        self,
        url: str,
        model: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        retries: int = 4,
        batch_size: int = 256,
        http_client: Any = None,
    ):
        self.client = _Client(url, api_key, timeout, retries, http_client)
        self.url = url
        self.model_name = model or "reranker"
        self._model_given = model is not None
        self.max_batch_size = batch_size

    def __repr__(self) -> str:
        return f"RemoteReranker({self.url!r}, model={self.model_name!r})"

    def score_batch(self, query: str, items: list[str], instruction: str | None) -> np.ndarray:
        body: dict[str, Any] = {"query": query, "documents": items, "top_n": len(items)}
        if self._model_given:
            body["model"] = self.model_name
        if instruction:
            body["instruction"] = instruction
        answer = self.client.call("POST", "/rerank", body)
        where = f"{self.client.base}/rerank"
        try:
            scores = {int(r["index"]): float(r["relevance_score"]) for r in answer["results"]}
        except (KeyError, TypeError, ValueError) as e:
            raise RemoteError(f"{where}: unexpected answer ({e})") from None
        if sorted(scores) != list(range(len(items))):
            raise RemoteError(
                f"{where} scored {len(scores)} of the {len(items)} passages it was sent "
                f"(indices {sorted(scores)[:10]}): every passage needs a score"
            )
        return np.array([scores[i] for i in range(len(items))], dtype=np.float32)


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
