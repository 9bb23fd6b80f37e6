"""Text -> vectors: the transformers backend of the Embedder contract (see base.py).

`TransformersEmbedder` reads how to embed from the model folder as sentence-transformers does
(st_folder.py: pooling, prompts, lowercasing, limits), so one class serves both kinds we use:
- last-token pooling (Qwen3-Embedding): a causal decoder, so right padding with no padding
  mask; EOS guaranteed at the end of every sequence, queries as
  `Instruct: {task}\\nQuery:{query}`, optional MRL dimension;
- mean (or CLS) pooling (all-MiniLM-L6-v2 and other sentence-transformers models), with the
  folder's query and document prompts (e5's "query: ", bge's instruction).
What would change the vectors and qsearch does not run (a Dense module, ...) is refused by name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from . import batching, checks, heap, loading, place, settle
from .base import DEFAULT_TASK, Embedder, EmbedderBase, Progress, format_query
from .st_folder import StFolder, read_folder

__all__ = ["DEFAULT_TASK", "Embedder", "Progress", "TransformersEmbedder", "format_query"]
MIN_MRL_DIM = 32


class TransformersEmbedder(EmbedderBase):
    """Any Hugging Face encoder or decoder embedding model, loaded with `from_pretrained`."""

    def __init__(
        self,
        name_or_path: str,
        *,
        device: str = "auto",
        dim: int | None = None,
        max_length: int | None = None,
        max_batch_tokens: int | None = None,
        max_batch_size: int = 512,
        window: int = 4096,
        dtype: str = "auto",
        compile: bool = True,
    ):
        import torch
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        loading.quiet_transformers()
        self.folder = folder = loading.resolve_model(name_or_path)
        self.model_name = name_or_path
        config = AutoConfig.from_pretrained(folder)
        self.st: StFolder = read_folder(folder, config.model_type)
        self.pooling = self.st.pooling
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model, self.device, self.precision = place.load_model(
            AutoModel, folder, loading.pick_device(device), dtype
        )
        self._torch, self._fp32_model = torch, None
        hidden = int(config.hidden_size)
        if dim is not None and not MIN_MRL_DIM <= dim <= hidden:
            raise ValueError(
                f"embedding dimension must be in {MIN_MRL_DIM}..{hidden} for "
                f"{name_or_path}, got {dim}"
            )
        self.dim = dim or hidden
        self.max_length = max_length or _max_length(self.st, config, self.tokenizer)
        self.max_tokens = self.max_length - _n_reserved(self.tokenizer, self.st)
        self.max_batch_tokens = max_batch_tokens or batching.default_token_budget(self.device)
        self.max_batch_size = max_batch_size
        self.window = window  # texts tokenized (and length-sorted) together
        self.supports_instruction = self.st.takes_instruction
        self.eos_id = self.tokenizer.eos_token_id
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else self.eos_id
        if self.pooling == "lasttoken" and self.eos_id is None:
            raise loading.ModelLoadError(f"{name_or_path}: last-token pooling needs an EOS token")
        self._settle(dtype)
        # measured on the Qwen3 decoder only (bench/cpu_forward.py): encoders stay eager
        self.compiled = loading.compile_on_cpu(
            self.model, self.device, compile and self.pooling == "lasttoken"
        )
        if self.compiled:  # compile now, not on a user's first upload: one text, then a batch
            self.encode(["warm-up"]), self.encode(["warm-up", "the compiled modules, two rows"])
        heap.release()  # what loading, converting and the tokenizer's set-up freed

    def _settle(self, dtype: str) -> None:
        """On a CPU, the model (loaded as its checkpoint stores it) converted, in place, to the
        first of `auto`'s precisions its check passes, or to the one set by hand."""
        from transformers import AutoModel

        choices = loading.cpu_choices(self.device, dtype)
        if not choices:
            return
        check = None  # a precision set by hand runs unchecked
        if dtype == "auto":
            sequences = self.prepare(checks.CHECK_TEXTS)
            check = checks.vectors_check(sequences, decoder=self.pooling == "lasttoken")
        folder, device, body, self.model = self.folder, self.device, self.model, None

        def reload() -> Any:  # a fresh body where a check that failed converted this one
            return place.reload(AutoModel, folder, device, dtype)

        self.model, self.precision = settle.settle(body, folder, choices, check, reload)

    def __repr__(self) -> str:
        return (
            f"TransformersEmbedder({self.model_name!r}, pooling={self.pooling}, dim={self.dim}, "
            f"device={self.device})"
        )

    def prepare(
        self, texts: Sequence[str], *, is_query: bool = False, instruction: str | None = None
    ) -> list[list[int]]:
        """Token ids exactly as the model sees them (prompt, truncation, EOS), unpadded."""
        if is_query:
            texts = [self.st.query_text(t, instruction) for t in texts]
        else:
            texts = [self.st.document_prompt() + t for t in texts]
        if self.st.lowercase:  # sentence-transformers lowercases the prompted text
            texts = [t.lower() for t in texts]
        ids = self.tokenizer(
            list(texts),
            add_special_tokens=True,
            truncation=True,
            max_length=self.max_length,
            return_attention_mask=False,
        )["input_ids"]
        if self.pooling == "lasttoken":
            ids = [
                s if s and s[-1] == self.eos_id else s[: self.max_length - 1] + [self.eos_id]
                for s in ids
            ]
        return ids

    def embed_batch(
        self, items: list[list[int]], *, is_query: bool, instruction: str | None
    ) -> np.ndarray:
        return self._forward(items)

    def embed_batch_fp32(
        self, items: list[list[int]], *, is_query: bool, instruction: str | None
    ) -> np.ndarray:
        """The batch again in float32: on a GPU the model itself, upcast for the batch; elsewhere
        a float32 copy of the model (loaded on first use: an int8 model has no exact upcast)."""
        if self.device.startswith("cuda"):
            with place.in_float32(self.model) as model:
                return self._forward(items, model)
        if self._fp32_model is None:
            from transformers import AutoModel

            self._fp32_model = place.load_fp32_copy(AutoModel, self.folder, self.device)
        return self._forward(items, self._fp32_model)

    def _forward(self, sequences: list[list[int]], model: Any = None) -> np.ndarray:
        """Pooled, normalised vectors of one batch of token-id lists."""
        torch, model = self._torch, model if model is not None else self.model
        ids, mask = batching.pad(sequences, self.pad_id)
        input_ids, attention = torch.from_numpy(ids), torch.from_numpy(mask)
        if self.device.startswith("cuda"):  # pinned host memory: the copy runs asynchronously
            input_ids, attention = input_ids.pin_memory(), attention.pin_memory()
        input_ids = input_ids.to(self.device, non_blocking=True)
        attention = attention.to(self.device, non_blocking=True)
        with torch.inference_mode():
            if self.pooling == "lasttoken":
                # A causal decoder: no token sees a later one, so right padding needs no mask.
                # Attention stays purely causal (SDPA's is_causal path, no mask built or read),
                # positions count from 0 in every row, and each row's EOS sits at length - 1.
                hidden = model(input_ids=input_ids, use_cache=False).last_hidden_state
                rows = torch.arange(len(sequences), device=hidden.device)
                pooled = hidden[rows, attention.sum(-1) - 1]
            else:
                hidden = model(input_ids=input_ids, attention_mask=attention).last_hidden_state
                if self.pooling == "cls":
                    pooled = hidden[:, 0]
                else:
                    weights = attention.unsqueeze(-1).to(hidden.dtype)
                    pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)
            pooled = torch.nn.functional.normalize(pooled[:, : self.dim].float(), dim=-1)
        return pooled.cpu().numpy()


def load_embedder(name_or_path: str, **kwargs: Any) -> TransformersEmbedder:
    """A local embedding model (hub id or folder); keyword arguments as TransformersEmbedder."""
    return TransformersEmbedder(name_or_path, **kwargs)


def load_tokenizer(name_or_path: str) -> tuple[Any, int]:
    """(tokenizer, max_tokens) of an embedding model, without loading its weights: for chunking."""
    from transformers import AutoConfig, AutoTokenizer

    loading.quiet_transformers()
    folder = loading.resolve_model(name_or_path)
    config = AutoConfig.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    st = read_folder(folder, config.model_type)
    return tokenizer, _max_length(st, config, tokenizer) - _n_reserved(tokenizer, st)


def _max_length(st: StFolder, config: Any, tokenizer: Any) -> int:
    if st.max_seq_length:
        return st.max_seq_length
    limits = [8192, getattr(config, "max_position_embeddings", None) or 8192]
    if 0 < (tokenizer.model_max_length or 0) < 1_000_000:
        limits.append(tokenizer.model_max_length)
    return int(min(limits))


def _n_reserved(tokenizer: Any, st: StFolder) -> int:
    """Positions taken by special tokens ([CLS]/[SEP], or the EOS that last-token pooling needs)
    and by the document prompt: a chunk of max_tokens then fits whole."""
    special = len(tokenizer("x", add_special_tokens=True)["input_ids"]) - len(
        tokenizer("x", add_special_tokens=False)["input_ids"]
    )
    prompt = st.document_prompt()
    prompt_tokens = len(tokenizer(prompt, add_special_tokens=False)["input_ids"]) if prompt else 0
    return max(special, 1 if st.pooling == "lasttoken" else 0) + prompt_tokens
