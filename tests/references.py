"""Reference computations written out plainly from the model cards, independent of qsearch's code
(no shared batching, padding side or pooling): what the backends are checked against."""

from __future__ import annotations

import numpy as np
import torch

from qsearch.models.base import DEFAULT_TASK
from qsearch.models.reranker import PREFIX, SUFFIX


def official_qwen3_embeddings(folder, texts: list[str]) -> np.ndarray:  # noqa: ANN001
    """The Qwen3-Embedding model card's recipe: left padding, last token, L2 normalisation."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, padding_side="left")
    model = AutoModel.from_pretrained(folder).eval()
    batch = tokenizer(texts, padding=True, truncation=True, max_length=8192, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"]
    assert bool((mask[:, -1] == 1).all()), "left padding puts every row's last token at the end"
    return torch.nn.functional.normalize(hidden[:, -1], p=2, dim=1).numpy()


def official_rerank_scores(
    folder,  # noqa: ANN001
    query: str,
    docs: list[str],
    instruction: str | None = None,
    max_length: int = 8192,
) -> np.ndarray:
    """The Qwen3-Reranker model card's recipe: full logits at the last position of a left-padded
    batch, softmax over [no, yes]."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    prefix = tokenizer.encode(PREFIX, add_special_tokens=False)
    suffix = tokenizer.encode(SUFFIX, add_special_tokens=False)
    pairs = [
        f"<Instruct>: {instruction or DEFAULT_TASK}\n<Query>: {query}\n<Document>: {d}"
        for d in docs
    ]
    inputs = tokenizer(
        pairs,
        padding=False,
        truncation="longest_first",
        return_attention_mask=False,
        max_length=max_length - len(prefix) - len(suffix),
    )
    inputs["input_ids"] = [prefix + ids + suffix for ids in inputs["input_ids"]]
    inputs = tokenizer.pad(inputs, padding=True, return_tensors="pt", max_length=max_length)
    no, yes = tokenizer.convert_tokens_to_ids("no"), tokenizer.convert_tokens_to_ids("yes")
    with torch.no_grad():
        logits = model(**inputs).logits[:, -1, :]
    pair = torch.stack([logits[:, no], logits[:, yes]], dim=1)
    return torch.nn.functional.log_softmax(pair, dim=1)[:, 1].exp().numpy()
