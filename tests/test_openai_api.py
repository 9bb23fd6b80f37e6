"""The OpenAI-compatible API: the official `openai` client, plain HTTP for /v1/rerank, remote
backends, and the app serving /v1 while it forwards to another server."""

from __future__ import annotations

import base64
import json

import httpx
import numpy as np
import openai  # a requirement (remote models): a broken install fails, never skips
import pytest

from qsearch import Engine, Settings
from qsearch.models.remote import RemoteEmbedder, RemoteError, RemoteReranker

TEXTS = [
    "Paris is the capital of France.",
    "Photosynthesis happens in chloroplasts.",
    "Tides follow the moon.",
]


@pytest.fixture(scope="module")
def api(app_server):
    _, url = app_server
    served = httpx.get(f"{url}v1/models").json()["data"]
    return url, served[0]["id"]


def test_models_lists_what_is_served(api, minilm_dir):
    url, model = api
    assert model == "all-MiniLM-L6-v2", "named as servers name models, never by a file path"
    [embedder, *_] = httpx.get(f"{url}v1/models").json()["data"]
    # where it runs and in which precision, and why, as the page says it (the app runs fp32 here)
    assert embedder["device"] == "cpu"
    assert embedder["precision"] == "float32 (set by --dtype / QSEARCH_DTYPE)"


def test_openai_client_gets_the_engines_own_vectors(api, minilm):
    url, model = api
    client = openai.OpenAI(base_url=f"{url}v1", api_key="unused")
    answer = client.embeddings.create(
        model=model, input=TEXTS
    )  # the client asks for base64 by default
    vectors = np.array([d.embedding for d in answer.data], dtype=np.float32)
    np.testing.assert_allclose(vectors, minilm.encode(TEXTS), atol=1e-5)
    assert [d.index for d in answer.data] == [0, 1, 2] and answer.model == model
    assert answer.usage.prompt_tokens == sum(len(ids) for ids in minilm.prepare(TEXTS))
    as_floats = client.embeddings.create(model=model, input=TEXTS[0], encoding_format="float")
    np.testing.assert_allclose(as_floats.data[0].embedding, minilm.encode(TEXTS[:1])[0], atol=1e-5)
    small = client.embeddings.create(model=model, input=TEXTS, dimensions=64).data
    expected = minilm.encode(TEXTS)[:, :64]
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose([d.embedding for d in small], expected, atol=1e-5)


def test_rerank_over_plain_http(api, qwen3_reranker_dir):
    from qsearch.models.reranker import load_reranker

    url, _ = api
    docs = ["The capital of France is Paris.", "Bananas are yellow.", "France borders Spain."]
    answer = httpx.post(
        f"{url}v1/rerank",
        json={
            "query": "capital of France",
            "documents": docs,
            "top_n": 2,
            "instruction": "Find facts",
            "return_documents": True,
        },
    ).json()
    expected = load_reranker(str(qwen3_reranker_dir), device="cpu", dtype="float32").score(
        "capital of France", docs, instruction="Find facts"
    )
    order = list(np.argsort(-expected, kind="stable")[:2])
    assert [r["index"] for r in answer["results"]] == order
    assert [r["relevance_score"] for r in answer["results"]] == pytest.approx(
        expected[order], abs=1e-5
    )
    assert answer["results"][0]["document"]["text"] == docs[order[0]]


@pytest.mark.parametrize(
    ("body", "status", "phrase"),
    [
        ({"input": []}, 400, "'input': list should have at least 1 item"),
        ({"input": [""]}, 400, "'input.0': string should have at least 1 character"),
        ({"input": [1, 2]}, 400, "'input.0': input should be a valid string"),
        (
            {"input": "x", "encoding_format": "int8"},
            400,
            "'encoding_format': input should be 'float' or 'base64'",
        ),
        (
            {"input": "x", "dimensions": 4096},
            400,
            "'dimensions' must be an integer in 1..384, got 4096",
        ),
        ({"input": "x", "dimensions": True}, 400, "'dimensions': input should be a valid integer"),
        ({"input": "x", "model": "someone/else"}, 400, "is not served here"),
        ({"input": ["x"] * 600}, 413, "too many"),
        ({"input": "x" * 200_000}, 413, "characters"),
    ],
)
def test_bad_embedding_requests(api, body, status, phrase):
    url, _ = api
    response = httpx.post(f"{url}v1/embeddings", json=body)
    assert response.status_code == status and phrase in response.json()["error"]["message"]
    assert httpx.post(f"{url}v1/embeddings", json={"input": "still serving"}).status_code == 200


def test_bad_rerank_requests_and_broken_json(api):
    url, _ = api
    assert httpx.post(f"{url}v1/rerank", json={"query": "q", "documents": []}).status_code == 400
    assert httpx.post(f"{url}v1/rerank", json={"query": "", "documents": ["d"]}).status_code == 400
    assert (
        httpx.post(
            f"{url}v1/rerank", json={"query": "q", "documents": ["d"], "top_n": 0}
        ).status_code
        == 400
    )
    broken = httpx.post(
        f"{url}v1/embeddings", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert broken.status_code == 400 and "not valid JSON" in broken.json()["error"]["message"]


def test_api_key_is_required_when_set(minilm_dir):
    import app

    demo = app.create_app(
        Settings(embed_model=str(minilm_dir), rerank_model="none/none", device="cpu")
    )
    _, url, _ = app.launch(demo, prevent_thread_lock=True, quiet=True, api_key="s3cret")
    try:
        assert httpx.post(f"{url}v1/embeddings", json={"input": "x"}).status_code == 401
        wrong = httpx.post(
            f"{url}v1/embeddings", json={"input": "x"}, headers={"Authorization": "Bearer nope"}
        )
        assert wrong.status_code == 401 and "API key" in wrong.json()["error"]["message"]
        client = openai.OpenAI(base_url=f"{url}v1", api_key="s3cret")
        assert (
            len(client.embeddings.create(model=str(minilm_dir), input="x").data[0].embedding) == 384
        )
        unavailable = httpx.post(
            f"{url}v1/rerank",
            json={"query": "q", "documents": ["d"]},
            headers={"Authorization": "Bearer s3cret"},
        )
        assert unavailable.status_code == 503
        with pytest.raises(RemoteError, match="401"):
            RemoteEmbedder(url, api_key="wrong", retries=0)
    finally:
        demo.close()


def test_a_remote_engine_ranks_like_the_local_one(api, minilm, tmp_path, qwen3_reranker_dir):
    url, model = api
    for name, text in {
        "a.md": "# Tides\n\nThe moon pulls the oceans into tides twice a day.",
        "b.txt": "Sourdough bread rises thanks to wild yeast and bacteria.",
        "c.html": "<p>Glaciers carve U-shaped valleys as they slowly move.</p>",
    }.items():
        (tmp_path / name).write_text(text)
    files = sorted(tmp_path.glob("*.*"))
    local = Engine(Settings(embed_model=model), embedder=minilm)
    remote = Engine(Settings(embed_url=url, rerank_url=url))
    assert isinstance(remote.embedder, RemoteEmbedder) and remote.embedder.model_name == model
    local.add_files(files)
    remote.add_files(files)
    for query in ("why are there tides?", "how does bread rise", "valleys and ice"):
        for mode in ("dense", "hybrid"):
            assert [h.source for h in remote.search(query, k=3, mode=mode)] == [
                h.source for h in local.search(query, k=3, mode=mode)
            ]
    reranked = remote.search("why are there tides?", k=3, rerank=True)
    assert isinstance(remote.reranker, RemoteReranker) and reranked[0].rerank_score is not None
    remote.save(tmp_path / "ix")
    assert Engine.open(tmp_path / "ix", Settings(embed_model=model), embedder=minilm).search(
        "tides", k=1
    )


def test_retries_then_a_clear_error():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if len(calls) < 3:
            return httpx.Response(
                503, json={"error": {"message": "warming up"}}, headers={"retry-after": "0"}
            )
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"data": [{"id": "m"}]})
        vector = base64.b64encode(np.ones(4, "<f4").tobytes()).decode()
        return httpx.Response(200, json={"data": [{"index": 0, "embedding": vector}]})

    embedder = RemoteEmbedder(
        "http://model-server.invalid",
        retries=3,
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),
    )
    assert embedder.dim == 4 and calls[:3] == ["/v1/models"] * 3, "two 503s, then the answer"
    np.testing.assert_allclose(np.linalg.norm(embedder.encode(["a"]), axis=1), 1.0)
    exploded = httpx.Client(
        transport=httpx.MockTransport(
            lambda r: httpx.Response(500, json={"error": {"message": "exploded"}})
        )
    )
    with pytest.raises(RemoteError, match="model-server.invalid/v1/models answered 500: exploded"):
        RemoteEmbedder("http://model-server.invalid", retries=1, http_client=exploded)


def test_an_app_forwarding_to_a_server_serves_that_servers_vectors(app_server):
    """The app with --embed-url / --rerank-url (issue 23): its /v1 answers with the vectors and
    scores of the server it forwards to (here the real app on another port), not a 500."""
    import app

    _, upstream = app_server
    demo = app.create_app(Settings(embed_url=upstream, rerank_url=upstream))
    _, url, _ = app.launch(demo, prevent_thread_lock=True, quiet=True)
    try:
        body = {"input": TEXTS, "encoding_format": "float"}
        ours = httpx.post(f"{url}v1/embeddings", json=body, timeout=60)
        theirs = httpx.post(f"{upstream}v1/embeddings", json=body, timeout=60)
        assert ours.status_code == 200, ours.text
        np.testing.assert_allclose(
            [d["embedding"] for d in ours.json()["data"]],
            [d["embedding"] for d in theirs.json()["data"]],
            atol=1e-6,
        )
        assert ours.json()["usage"]["prompt_tokens"] > 0
        pairs = {"query": "capital of France", "documents": TEXTS}
        ranked = httpx.post(f"{url}v1/rerank", json=pairs, timeout=60)
        expected = httpx.post(f"{upstream}v1/rerank", json=pairs, timeout=60).json()["results"]
        assert ranked.status_code == 200, ranked.text
        assert [r["index"] for r in ranked.json()["results"]] == [r["index"] for r in expected]
        assert [r["relevance_score"] for r in ranked.json()["results"]] == pytest.approx(
            [r["relevance_score"] for r in expected], abs=1e-6
        )
    finally:
        demo.close()


def test_a_rerank_server_that_drops_results_is_an_error_naming_it():
    """A /v1/rerank answer with fewer results than passages sent (seen from servers that apply
    their own top_n): an error, never scores left unset."""

    def handler(request: httpx.Request) -> httpx.Response:
        documents = json.loads(request.content)["documents"]
        results = [{"index": i, "relevance_score": 0.5} for i in range(len(documents) - 1)]
        return httpx.Response(200, json={"results": results})

    reranker = RemoteReranker(
        "http://rerank-server.invalid",
        retries=0,
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),
    )
    with pytest.raises(RemoteError, match=r"rerank-server.invalid/v1/rerank scored 2 of the 3"):
        reranker.score("q", ["a", "b", "c"])


@pytest.mark.parametrize(
    ("model", "setting", "instructed"),
    [
        ("my-embedder", None, False),
        ("Qwen/Qwen3-Embedding-0.6B", None, True),
        ("my-embedder", True, True),  # a Qwen3 model served under another name
        ("Qwen/Qwen3-Embedding-0.6B", False, False),
    ],
)
def test_whether_a_remote_model_takes_instructions_is_a_setting(model, setting, instructed):
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        texts = json.loads(request.content)["input"]
        sent.extend(texts)
        data = [{"index": i, "embedding": [1.0, 0.0, 0.0, 0.0]} for i in range(len(texts))]
        return httpx.Response(200, json={"data": data})

    embedder = RemoteEmbedder(
        "http://model-server.invalid",
        model,
        instructions=setting,
        tokenizer=object(),
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),
    )
    embedder.encode(["tides"], is_query=True)
    assert sent[-1].startswith("Instruct: ") == instructed, sent[-1]
    assert sent[-1].endswith("Query:tides" if instructed else "tides")


def test_the_remote_instructions_setting_reaches_the_backend(monkeypatch):
    from qsearch.models import choose, remote

    assert Settings.from_env({"QSEARCH_REMOTE_INSTRUCTIONS": "yes"}).remote_instructions is True
    assert Settings.from_env({}).remote_instructions is None
    seen = {}
    monkeypatch.setattr(remote, "RemoteEmbedder", lambda url, **kwargs: seen.update(kwargs))
    choose.make_embedder(Settings(embed_url="http://x.invalid", remote_instructions=False))
    assert seen["instructions"] is False
