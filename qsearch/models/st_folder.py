"""A sentence-transformers model folder, read as sentence-transformers reads it.

What a folder says about how to embed, besides the weights: `modules.json` (Transformer, Pooling,
Normalize), the pooling mode (`1_Pooling/config.json`), `sentence_bert_config.json` (longest
input, lowercasing) and `config_sentence_transformers.json` (prompts: the text put before a query
or a document, named prompts, `default_prompt_name`; the similarity function). Prompts follow
sentence-transformers' `encode_query` / `encode_document` over the folder's own prompts: a query
takes the "query" prompt, a document the first of "document", "passage", "corpus", and either
falls back to the default prompt (sentence-transformers 6 first fills in empty "query" and
"document" prompts, so there e5's "passage" prompt is never reached; the folder's authors meant
it for documents). An instruction that names a prompt picks it, as `prompt_name=` does.
Anything qsearch can't honour is refused by name, so vectors are never silently wrong: modules
such as Dense, a pooling that leaves the prompt out, a dot-product or Manhattan model
whose vectors are not normalised (qsearch ranks by cosine).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .base import format_query
from .loading import ModelLoadError

MODULES = ("Transformer", "Pooling", "Normalize")  # what qsearch runs (its vectors are unit)
POOLING = {"lasttoken": "lasttoken", "mean_tokens": "mean", "cls_token": "cls"}
DOCUMENT_PROMPTS = ("document", "passage", "corpus")  # sentence-transformers' encode_document
# Qwen3-Embedding's query prompt, `Instruct: {task}\nQuery:`, with the task as a group and what
# follows "Query:" (nothing for Qwen3, a space for gte-Qwen2) as another.
INSTRUCT = re.compile(r"Instruct: (?P<task>.*)\nQuery:(?P<sep>\s?)", re.S)


@dataclass(frozen=True)
class StFolder:
    """How a folder's model embeds: pooling, prompts, normalisation, input limits."""

    pooling: str  # "lasttoken", "mean" or "cls"
    prompts: dict[str, str] = field(default_factory=dict)
    default_prompt_name: str | None = None
    normalize: bool = False  # a Normalize module: the model's own vectors are unit length
    lowercase: bool = False  # sentence_bert_config's do_lower_case
    max_seq_length: int | None = None

    @property
    def takes_instruction(self) -> bool:
        """Whether queries carry a task instruction (Qwen3-Embedding's format): last-token models
        with no query prompt, or one of that form."""
        prompt = self.prompts.get("query")
        return self.pooling == "lasttoken" and (prompt is None or bool(INSTRUCT.fullmatch(prompt)))

    def query_text(self, text: str, instruction: str | None = None) -> str:
        """A query as the model reads it. An instruction that names one of the folder's prompts
        picks that prompt; on an instruction model it is the task; else the query prompt (or the
        default prompt), as `encode_query` puts it."""
        if instruction is not None and instruction in self.prompts:
            return self.prompts[instruction] + text
        if self.takes_instruction:
            found = INSTRUCT.fullmatch(self.prompts.get("query", ""))
            task = instruction or (found["task"] if found else None)  # else the default task
            return format_query(text, task, found["sep"] if found else "")
        return self._prompt(("query",)) + text

    def document_prompt(self) -> str:
        """The text put before a document, as `encode_document` puts it."""
        return self._prompt(DOCUMENT_PROMPTS)

    def _prompt(self, names: tuple[str, ...]) -> str:
        for name in names:
            if name in self.prompts:
                return self.prompts[name]
        return self.prompts.get(self.default_prompt_name or "", "")


def read_folder(folder: Path, model_type: str) -> StFolder:
    """The folder's sentence-transformers configuration; without one, the pooling qsearch knows
    the model by (last token for Qwen2/Qwen3 decoders, mean otherwise)."""
    modules = _read(folder / "modules.json", [])
    _refuse_modules(folder, modules)
    names = {m.get("type", "").rsplit(".", 1)[-1] for m in modules}
    pooling = "lasttoken" if model_type.startswith(("qwen2", "qwen3")) else "mean"
    for module in modules:
        if module.get("type", "").endswith("Pooling"):
            pooling = _pooling(folder, _read(folder / module["path"] / "config.json", {}))
    bert = _read(folder / "sentence_bert_config.json", {})
    config = _read(folder / "config_sentence_transformers.json", {})
    prompts = {str(k): str(v) for k, v in (config.get("prompts") or {}).items()}
    default = config.get("default_prompt_name") or None
    if default is not None and default not in prompts:
        raise ModelLoadError(
            f"{folder}: default_prompt_name {default!r} is not one of its prompts {list(prompts)}"
        )
    normalize = "Normalize" in names
    _check_similarity(folder, config.get("similarity_fn_name"), normalize)
    return StFolder(
        pooling,
        prompts,
        default,
        normalize,
        bool(bert.get("do_lower_case")),
        int(bert["max_seq_length"]) if bert.get("max_seq_length") else None,
    )


def _read(path: Path, empty: Any) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else empty


def _refuse_modules(folder: Path, modules: list[dict]) -> None:
    for module in modules:
        if module.get("type", "").rsplit(".", 1)[-1] not in MODULES:
            raise ModelLoadError(
                f"{folder}: the sentence-transformers module {module.get('type')!r} "
                f"({module.get('path') or module.get('name')}) is not supported; supported: "
                f"{', '.join(MODULES)}. Without it the vectors would be wrong."
            )


def _pooling(folder: Path, config: dict) -> str:
    modes = [POOLING[m] for m in POOLING if config.get(f"pooling_mode_{m}")]
    others = [k for k, v in config.items() if k.startswith("pooling_mode_") and v]
    if len(modes) != 1 or len(others) != 1:
        raise ModelLoadError(
            f"{folder}: unsupported pooling {config}; supported: one of lasttoken, mean, cls"
        )
    if config.get("include_prompt") is False:
        raise ModelLoadError(
            f"{folder}: pooling that leaves the prompt out (include_prompt: false) is not "
            "supported; supported: pooling over the whole input, prompt included"
        )
    return modes[0]


def _check_similarity(folder: Path, name: str | None, normalize: bool) -> None:
    """qsearch ranks by cosine over unit vectors: the same order as a normalised model's dot
    product or Euclidean distance, but not as an unnormalised one's, nor as Manhattan distance."""
    if name in (None, "cosine") or (normalize and name in ("dot", "euclidean")):
        return
    raise ModelLoadError(
        f"{folder}: similarity_fn_name {name!r} without a Normalize module is not supported; "
        "supported: cosine (or dot and euclidean over normalised vectors), as qsearch ranks"
    )
