"""Model folders as sentence-transformers defines them (models/st_folder.py): prompts (query,
document, named, default), normalisation, pooling; checked against sentence-transformers' own
`encode(..., prompt_name=...)` on the same folder, and what can't be honoured refused by name."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from qsearch.models.base import DEFAULT_TASK, format_query
from qsearch.models.embedder import load_embedder
from qsearch.models.loading import ModelLoadError

TEXTS = ["How do plants make energy from sunlight?", "Paris is the capital of France."]
PROMPTS = {"query": "query: ", "document": "passage: ", "classification": "Classify the topic: "}
# Qwen3-Embedding-0.6B's own config_sentence_transformers.json on the hub
QWEN3_PROMPTS = {"query": f"Instruct: {DEFAULT_TASK}\nQuery:", "document": ""}


def with_config(source: Path, folder: Path, **config) -> Path:  # noqa: ANN003
    """A copy of a model folder with this config_sentence_transformers.json."""
    shutil.copytree(source, folder)
    (folder / "config_sentence_transformers.json").write_text(json.dumps(config))
    return folder


def cosines(ours: np.ndarray, theirs: np.ndarray) -> np.ndarray:
    theirs = theirs / np.linalg.norm(theirs, axis=1, keepdims=True)
    return (ours * theirs).sum(axis=1)


@pytest.fixture(scope="module")
def prompted(minilm_dir, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("prompted") / "minilm"
    return with_config(minilm_dir, folder, prompts=PROMPTS, similarity_fn_name="cosine")


def test_prompts_embed_as_sentence_transformers_does(prompted, minilm):
    st = pytest.importorskip("sentence_transformers")
    theirs = st.SentenceTransformer(str(prompted), device="cpu")
    ours = load_embedder(str(prompted), device="cpu", dtype="float32")
    queries = ours.encode(TEXTS, is_query=True)
    assert cosines(queries, theirs.encode(TEXTS, prompt_name="query")).min() >= 0.9999
    assert cosines(queries, theirs.encode_query(TEXTS)).min() >= 0.9999
    documents = ours.encode(TEXTS)
    assert cosines(documents, theirs.encode(TEXTS, prompt_name="document")).min() >= 0.9999
    assert cosines(documents, theirs.encode_document(TEXTS)).min() >= 0.9999
    named = ours.encode(TEXTS, is_query=True, instruction="classification")
    assert cosines(named, theirs.encode(TEXTS, prompt_name="classification")).min() >= 0.9999
    # the prompt is really there: without it the same texts embed differently
    assert cosines(queries, minilm.encode(TEXTS)).max() < 0.999
    assert not ours.supports_instruction  # a task text that names no prompt is not a prompt


def test_default_prompt_name_applies_where_no_role_prompt_does(minilm_dir, tmp_path):
    st = pytest.importorskip("sentence_transformers")
    folder = with_config(
        minilm_dir, tmp_path / "m", prompts={"retrieval": "Be: "}, default_prompt_name="retrieval"
    )
    theirs = st.SentenceTransformer(str(folder), device="cpu")
    ours = load_embedder(str(folder), device="cpu", dtype="float32")
    default = theirs.encode(TEXTS)  # a plain encode applies the default prompt
    assert cosines(default, theirs.encode(TEXTS, prompt="Be: ")).min() >= 0.9999
    assert cosines(ours.encode(TEXTS, is_query=True), default).min() >= 0.9999
    assert cosines(ours.encode(TEXTS), default).min() >= 0.9999


def test_a_passage_prompt_is_the_documents_prompt(minilm_dir, tmp_path):
    """e5's folders name {"query": "query: ", "passage": "passage: "}. sentence-transformers 6
    fills in an empty "document" prompt first, so its encode_document never reaches "passage";
    qsearch follows the folder's own prompts, in encode_document's order."""
    st = pytest.importorskip("sentence_transformers")
    prompts = {"query": "query: ", "passage": "passage: "}
    folder = with_config(minilm_dir, tmp_path / "e5", prompts=prompts)
    theirs = st.SentenceTransformer(str(folder), device="cpu")
    ours = load_embedder(str(folder), device="cpu", dtype="float32")
    passages = theirs.encode(TEXTS, prompt_name="passage")
    assert cosines(ours.encode(TEXTS), passages).min() >= 0.9999
    assert cosines(ours.encode(TEXTS, is_query=True), theirs.encode_query(TEXTS)).min() >= 0.9999


def test_qwen3_prompts_give_one_instruction_exactly(qwen3_embedder_dir, tmp_path):
    """Qwen3-Embedding's folder names its query prompt: queries carry the instruction once, as
    format_query writes it, and a task of one's own replaces the default."""
    folder = with_config(qwen3_embedder_dir, tmp_path / "q", prompts=QWEN3_PROMPTS)
    plain = load_embedder(str(qwen3_embedder_dir), device="cpu", dtype="float32")
    ours = load_embedder(str(folder), device="cpu", dtype="float32")
    assert ours.supports_instruction
    expected = plain.tokenizer(format_query("what is MRL?"))["input_ids"]
    assert ours.prepare(["what is MRL?"], is_query=True) == [expected]
    assert ours.prepare(["what is MRL?"], is_query=True) == plain.prepare(
        ["what is MRL?"], is_query=True
    )
    task = "Given a claim, retrieve evidence"
    (ids,) = ours.prepare(["x"], is_query=True, instruction=task)
    assert ours.tokenizer.decode(ids).count("Instruct:") == 1
    assert ours.tokenizer.decode(ids).startswith(f"Instruct: {task}\nQuery:x")
    assert ours.prepare(TEXTS) == plain.prepare(TEXTS)  # documents: the empty prompt


def test_qwen3_prompts_match_sentence_transformers(qwen3_embedder_dir, tmp_path):
    st = pytest.importorskip("sentence_transformers")
    folder = with_config(qwen3_embedder_dir, tmp_path / "q", prompts=QWEN3_PROMPTS)
    theirs = st.SentenceTransformer(str(folder), device="cpu")
    ours = load_embedder(str(folder), device="cpu", dtype="float32")
    assert cosines(ours.encode(TEXTS, is_query=True), theirs.encode_query(TEXTS)).min() >= 0.9999
    assert cosines(ours.encode(TEXTS), theirs.encode_document(TEXTS)).min() >= 0.9999


def test_a_space_after_query_is_kept(qwen3_embedder_dir, tmp_path):
    """gte-Qwen2's prompt is `Instruct: ...\\nQuery: ` (a space): its queries keep it."""
    prompts = {"query": f"Instruct: {DEFAULT_TASK}\nQuery: "}
    ours = load_embedder(
        str(with_config(qwen3_embedder_dir, tmp_path / "g", prompts=prompts)), device="cpu"
    )
    (ids,) = ours.prepare(["x"], is_query=True, instruction="Find it")
    assert ours.tokenizer.decode(ids).startswith("Instruct: Find it\nQuery: x")


def edit(source: Path, folder: Path, path: str, change: dict) -> Path:
    shutil.copytree(source, folder)
    config = json.loads((folder / path).read_text()) if (folder / path).is_file() else {}
    (folder / path).write_text(json.dumps(config | change))
    return folder


@pytest.mark.parametrize(
    "path, change, reason",
    [
        ("1_Pooling/config.json", {"include_prompt": False}, r"include_prompt: false"),
        ("1_Pooling/config.json", {"pooling_mode_max_tokens": True}, r"unsupported pooling"),
        (
            "config_sentence_transformers.json",
            {"prompts": {"query": "q: "}, "default_prompt_name": "retrieval"},
            r"default_prompt_name 'retrieval' is not one of its prompts \['query'\]",
        ),
        (
            "config_sentence_transformers.json",
            {"similarity_fn_name": "manhattan"},
            r"similarity_fn_name 'manhattan' without a Normalize module",
        ),
    ],
)
def test_what_cannot_be_honoured_is_refused_by_name(minilm_dir, tmp_path, path, change, reason):
    folder = edit(minilm_dir, tmp_path / "m", path, change)
    with pytest.raises(ModelLoadError, match=reason):
        load_embedder(str(folder), device="cpu", dtype="float32")


def test_dot_product_is_cosine_only_over_normalised_vectors(
    minilm_dir, qwen3_embedder_dir, tmp_path
):
    dot = {"similarity_fn_name": "dot"}
    loaded = load_embedder(
        str(edit(qwen3_embedder_dir, tmp_path / "q", "config_sentence_transformers.json", dot)),
        device="cpu",
    )
    assert loaded.st.normalize  # Qwen3's folder has a Normalize module: dot = cosine
    modules = json.loads((minilm_dir / "modules.json").read_text())
    unnormalised = edit(minilm_dir, tmp_path / "m", "config_sentence_transformers.json", dot)
    (unnormalised / "modules.json").write_text(
        json.dumps([m for m in modules if not m["type"].endswith("Normalize")])
    )
    with pytest.raises(ModelLoadError, match="similarity_fn_name 'dot' without a Normalize"):
        load_embedder(str(unnormalised), device="cpu", dtype="float32")
