"""(query, passages) -> relevance scores. The `Reranker` contract and the Qwen3-Reranker backend.

Qwen3-Reranker is a causal LM asked whether a document meets the query; the score is
P("yes") from the two logits [no, yes] at the last position. We compute only those two
logits (last hidden state times two rows of the LM head), never the full vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from . import batching, checks, heap, loading, place, settle
from .base import DEFAULT_TASK, Reranker, RerankerBase

__all__ = ["PREFIX", "SUFFIX", "Qwen3Reranker", "Reranker", "format_body", "load_reranker"]
PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query "
    'and the Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n'
    "<|im_start|>user\n"
)
SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"


def format_body(query: str, document: str, instruction: str | None = None) -> str:
    """The official body between PREFIX and SUFFIX."""
    return f"<Instruct>: {instruction or DEFAULT_TASK}\n<Query>: {query}\n<Document>: {document}"


class Qwen3Reranker(RerankerBase):
    """Qwen3-Reranker (or any causal LM trained on the same yes/no template)."""

    def __init__(
        self,
        name_or_path: str,
        *,
        device: str = "auto",
        max_length: int = 8192,
        max_batch_tokens: int | None = None,
        max_batch_size: int = 256,
        dtype: str = "auto",
        compile: bool = True,
    ):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        loading.quiet_transformers()
        self.folder = folder = loading.resolve_model(
            name_or_path, flag="--rerank-model", env="QSEARCH_RERANK_MODEL"
        )
        self.model_name = name_or_path
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.yes_no = self.tokenizer.convert_tokens_to_ids(["no", "yes"])
        if any(t is None or t == self.tokenizer.unk_token_id for t in self.yes_no):
            raise loading.ModelLoadError(
                f"{name_or_path}: the tokenizer has no 'yes'/'no' tokens: not a Qwen3 reranker"
            )
        model, self.device, self.precision = place.load_model(
            AutoModelForCausalLM, folder, loading.pick_device(device), dtype
        )
        self.body, self.head_rows, self.head_bias = self._parts(model)
        del model  # the body is all that runs (the head's two rows are copied out)
        self._fp32: tuple[Any, Any, Any] | None = None
        self.prefix_ids = self.tokenizer(PREFIX, add_special_tokens=False)["input_ids"]
        self.suffix_ids = self.tokenizer(SUFFIX, add_special_tokens=False)["input_ids"]
        self.max_length = max_length
        self.max_batch_tokens = max_batch_tokens or batching.default_token_budget(self.device)
        self.max_batch_size = max_batch_size
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else self.tokenizer.eos_token_id
        self._torch = torch
        choices = loading.cpu_choices(self.device, dtype)  # the head rows above stay fp32
        if choices:
            check = None  # a precision set by hand runs unchecked
            if dtype == "auto":
                groups = [self.prepare(q, texts) for q, texts in checks.CHECK_QUERIES.items()]
                direction = self.head_rows[1] - self.head_rows[0]  # the yes-minus-no logit
                check = checks.order_check(groups, direction, self.pad_id)
            device, body, self.body = self.device, self.body, None  # settle converts in place

            def reload() -> Any:
                return place.reload(AutoModelForCausalLM, folder, device, dtype).base_model

            self.body, self.precision = settle.settle(body, folder, choices, check, reload)
        self.compiled = loading.compile_on_cpu(self.body, self.device, compile)
        if self.compiled:  # compile now, not on a user's first query: one passage, then a batch
            self.score("warm-up", ["one passage"])
            self.score("warm-up", ["one passage", "and a second, longer passage"])
        heap.release()  # what loading, converting and the tokenizer's set-up freed

    def __repr__(self) -> str:
        return f"Qwen3Reranker({self.model_name!r}, device={self.device})"

    def _parts(self, model: Any) -> tuple[Any, Any, Any]:
        """(decoder body, the LM head's [no, yes] rows, their bias or None)."""
        head = model.get_output_embeddings()
        rows = head.weight[self.yes_no].detach().float()  # (2, hidden): [no, yes], in fp32
        bias = getattr(head, "bias", None)
        return model.base_model, rows, None if bias is None else bias[self.yes_no].detach().float()

    def prepare(
        self, query: str, texts: Sequence[str], instruction: str | None = None
    ) -> list[list[int]]:
        """prefix + body (truncated to fit max_length) + suffix, as token ids."""
        room = self.max_length - len(self.prefix_ids) - len(self.suffix_ids)
        bodies = self.tokenizer(
            [format_body(query, t, instruction) for t in texts],
            add_special_tokens=False,
            truncation=True,
            max_length=room,
            return_attention_mask=False,
        )["input_ids"]
        return [self.prefix_ids + body + self.suffix_ids for body in bodies]

    def score_batch(
        self, query: str, items: list[list[int]], instruction: str | None
    ) -> np.ndarray:
        return self._p_yes(items, self.body, self.head_rows, self.head_bias)

    def score_batch_fp32(
        self, query: str, items: list[list[int]], instruction: str | None
    ) -> np.ndarray:
        """The batch again in float32: on a GPU the body itself, upcast for the batch (the head's
        two rows are fp32); elsewhere a float32 copy of the model (loaded on first use)."""
        if self.device.startswith("cuda"):
            with place.in_float32(self.body) as body:
                return self._p_yes(items, body, self.head_rows, self.head_bias)
        if self._fp32 is None:
            from transformers import AutoModelForCausalLM

            model = place.load_fp32_copy(AutoModelForCausalLM, self.folder, self.device)
            self._fp32 = self._parts(model)
        return self._p_yes(items, *self._fp32)

    def _p_yes(
        self, sequences: list[list[int]], body: Any, head_rows: Any, head_bias: Any
    ) -> np.ndarray:
        torch = self._torch
        ids, _ = batching.pad(sequences, self.pad_id)
        input_ids = torch.from_numpy(ids).to(self.device)
        last = torch.tensor([len(s) - 1 for s in sequences], device=self.device)
        with torch.inference_mode():
            # Causal attention: right padding needs no padding mask (see embedder.py); each
            # row's answer position is its own last token.
            hidden = body(input_ids=input_ids, use_cache=False).last_hidden_state
            rows = torch.arange(len(sequences), device=hidden.device)
            logits = hidden[rows, last].float() @ head_rows.T  # the two rows are fp32
            if head_bias is not None:
                logits = logits + head_bias
            p_yes = torch.softmax(logits.float(), dim=-1)[:, 1]
        return p_yes.cpu().numpy()


def load_reranker(name_or_path: str, **kwargs: Any) -> RerankerBase:
    """A local reranker (hub id or folder): a cross-encoder where the folder's config says sequence
    classification (cross_encoder.py), else Qwen3-Reranker; keyword arguments as Qwen3Reranker."""
    from .cross_encoder import CrossEncoderReranker, is_cross_encoder

    folder = loading.resolve_model(name_or_path, flag="--rerank-model", env="QSEARCH_RERANK_MODEL")
    if is_cross_encoder(folder):
        return CrossEncoderReranker(name_or_path, **kwargs)
    return Qwen3Reranker(name_or_path, **kwargs)
