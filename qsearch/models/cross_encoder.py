"""(query, passage) -> relevance with a cross-encoder: a BERT-style model that reads the pair
together and gives one logit (sentence-transformers' `CrossEncoder` with one label, such as
cross-encoder/ms-marco-MiniLM-L6-v2), the score being its sigmoid: P(relevant), as that class
gives it. Task instructions do not apply. The reranker qsearch falls back to when
Qwen3-Reranker can't be loaded (`--rerank-fallback`), or any `--rerank-model` whose config
says sequence classification.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import batching, loading, place
from .base import RerankerBase

Item = tuple[list[int], list[int]]  # (token ids, token type ids) of one (query, passage) pair


def is_cross_encoder(folder: Path) -> bool:
    """Whether a model folder holds a sequence-classification model (a cross-encoder)."""
    from transformers import AutoConfig

    architectures = AutoConfig.from_pretrained(folder).architectures or []
    return any(a.endswith("ForSequenceClassification") for a in architectures)


class CrossEncoderReranker(RerankerBase):
    """A one-label sequence-classification model over (query, passage) pairs."""

    def __init__(
        self,
        name_or_path: str,
        *,
        device: str = "auto",
        max_length: int | None = None,
        max_batch_tokens: int | None = None,
        max_batch_size: int = 256,
        dtype: str = "auto",
        compile: bool = True,  # noqa: ARG002 - encoders stay eager (as the embedder's)
    ):
        import torch
        from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

        loading.quiet_transformers()
        self.folder = folder = loading.resolve_model(
            name_or_path, flag="--rerank-model", env="QSEARCH_RERANK_MODEL"
        )
        self.model_name = name_or_path
        config = AutoConfig.from_pretrained(folder)
        if config.num_labels != 1:
            raise loading.ModelLoadError(
                f"{name_or_path}: a cross-encoder with {config.num_labels} labels; supported: "
                "one label (a relevance logit)"
            )
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model, self.device, self.precision = place.load_model(
            AutoModelForSequenceClassification, folder, loading.pick_device(device), dtype
        )
        limits = [getattr(config, "max_position_embeddings", None) or 512]
        if 0 < (self.tokenizer.model_max_length or 0) < 1_000_000:
            limits.append(self.tokenizer.model_max_length)
        self.max_length = max_length or int(min(limits))
        self.max_batch_tokens = max_batch_tokens or batching.default_token_budget(self.device)
        self.max_batch_size = max_batch_size
        pad = self.tokenizer.pad_token_id
        self.pad_id = 0 if pad is None else pad
        self._torch, self._fp32_model, self.compiled = torch, None, False

    def __repr__(self) -> str:
        return f"CrossEncoderReranker({self.model_name!r}, device={self.device})"

    def prepare(self, query: str, texts: Sequence[str], instruction: str | None = None) -> list:
        """Each pair tokenized together, truncated to max_length (longest first, as
        sentence-transformers' CrossEncoder does)."""
        encoded = self.tokenizer(
            [query] * len(texts),
            list(texts),
            truncation=True,
            max_length=self.max_length,
            return_attention_mask=False,
            return_token_type_ids=True,
        )
        return list(zip(encoded["input_ids"], encoded["token_type_ids"]))

    def lengths(self, items: Sequence[Item]) -> list[int]:
        return [len(ids) for ids, _ in items]

    def score_batch(self, query: str, items: list[Item], instruction: str | None) -> np.ndarray:
        return self._p_relevant(items, self.model)

    def score_batch_fp32(
        self, query: str, items: list[Item], instruction: str | None
    ) -> np.ndarray:
        """The batch again with a float32 copy of the model (loaded on first use)."""
        if self._fp32_model is None:
            from transformers import AutoModelForSequenceClassification

            self._fp32_model = place.load_fp32_copy(
                AutoModelForSequenceClassification, self.folder, self.device
            )
        return self._p_relevant(items, self._fp32_model)

    def _p_relevant(self, items: list[Item], model: Any) -> np.ndarray:
        torch = self._torch
        ids, mask = batching.pad([i for i, _ in items], self.pad_id)
        types, _ = batching.pad([t for _, t in items], 0)
        tensors = {
            "input_ids": torch.from_numpy(ids),
            "attention_mask": torch.from_numpy(mask),
            "token_type_ids": torch.from_numpy(types),
        }
        with torch.inference_mode():
            logits = model(**{k: v.to(self.device) for k, v in tensors.items()}).logits
            return torch.sigmoid(logits[:, 0].float()).cpu().numpy()
