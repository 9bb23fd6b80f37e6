"""Attention for GPUs below compute capability 8.0 (a T4): SDPA with the K/V heads repeated.

With no attention mask, transformers passes `enable_gqa=True` to PyTorch's SDPA for
grouped-query models such as Qwen3 (16 query heads, 8 key/value heads). Below sm80 the
flash kernel is absent and the memory-efficient kernel refuses unequal query and key/value
heads, so SDPA falls back to its math kernel, whose memory grows with the square of the
length (transformers#48633). Repeating the K/V heads first (as transformers does when a mask
is given) lets the memory-efficient kernel run, with causal masking by `is_causal`.

Registered through transformers' documented `AttentionInterface` / `AttentionMaskInterface`
(the mask is built as for "sdpa"), so the model code is untouched.
"""

from __future__ import annotations

import functools
from typing import Any

SDPA_REPEAT_KV = "sdpa_repeat_kv"


def sdpa_repeat_kv(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[Any, None]:
    """transformers' SDPA attention for equal head counts: never `enable_gqa`."""
    import torch
    from transformers.integrations.sdpa_attention import repeat_kv

    groups = getattr(module, "num_key_value_groups", 1)
    key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    causal = bool(query.shape[2] > 1 and attention_mask is None and causal)
    out = torch.nn.functional.scaled_dot_product_attention(
        query,
        key,
        value,
        attn_mask=attention_mask,
        dropout_p=dropout,
        scale=scaling,
        is_causal=causal,
    )
    return out.transpose(1, 2).contiguous(), None


@functools.lru_cache(maxsize=1)
def register() -> str:
    """Register the attention (once) and return the name to pass as `attn_implementation`."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(SDPA_REPEAT_KV, sdpa_repeat_kv)
    AttentionMaskInterface.register(SDPA_REPEAT_KV, sdpa_mask)
    return SDPA_REPEAT_KV
