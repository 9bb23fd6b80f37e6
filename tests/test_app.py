"""The web app, launched for real on a free local port and driven with gradio_client."""

from __future__ import annotations

import json
from pathlib import Path

import gradio_client  # a requirement (through gradio): a broken install fails, never skips
import numpy as np
import pytest

import app as qsearch_app
from qsearch.types import HIT_FIELDS
from qsearch.web.handlers import Handlers


@pytest.fixture(scope="module")
def server(any_server):
    return any_server


def client(url: str):
    return gradio_client.Client(url, verbose=False)


def upload(c, *paths: Path) -> str:
    report, *_ = c.predict(
        [gradio_client.handle_file(str(p)) for p in paths], api_name="/add_documents"
    )
    return report


def search(c, query: str, **kwargs) -> list[dict]:
    """The search API: the hits as JSON text (Hit.to_dict), nothing else."""
    return json.loads(c.predict(query=query, api_name="/search", **kwargs))


def test_upload_and_search_with_a_bad_file_among_good_ones(server, tmp_path):
    _, url = server
    bad = tmp_path / "broken.pdf"
    bad.write_bytes(b"%PDF-1.4 this is not really a pdf")
    c = client(url)
    report = upload(
        c,
        qsearch_app.SAMPLES / "solar-system.md",
        bad,
        qsearch_app.SAMPLES / "first-aid-basics.txt",
    )
    assert "2 indexed, 0 unchanged, 1 failed" in report
    assert "broken.pdf</code>: not a readable PDF" in report
    hits = search(c, "what should I do for a burn?", top_k=2)
    assert hits[0]["source"] == "first-aid-basics.txt" and hits[0]["rank"] == 1
    assert list(hits[0]) == list(HIT_FIELDS), "the API speaks Hit.to_dict's vocabulary"
    assert 0 <= hits[0]["overall"] <= 1 and hits[0]["meaning"] > hits[1]["meaning"]
    assert not hits[0]["weak"] and hits[1]["weak"], "the burn passage, then a weak one"
    everything = search(c, "what should I do for a burn?", top_k=2, min_score=0)
    assert [h["overall"] for h in everything] == [h["overall"] for h in hits]
    assert not any(h["weak"] for h in everything), "min_score is the API's (and MCP's) too"


def test_rerank_changes_the_order_as_the_reranker_scores_say(server, qwen3_reranker_dir):
    _, url = server
    c = client(url)
    upload(c, *sorted(qsearch_app.SAMPLES.iterdir()))
    plain = search(c, "grind size for espresso", top_k=4, rerank=False)
    reranked = search(c, "grind size for espresso", top_k=4, rerank=True, rerank_candidates=5)
    assert all(h["rerank"] is None for h in plain)
    scores = [h["rerank"] for h in reranked]
    assert scores == sorted(scores, reverse=True) and None not in scores
    from qsearch.models.reranker import load_reranker

    # the plain server runs fp32 (conftest's app_server); the ZeroGPU one runs the CPU default, as
    # users get it, uncompiled (qsearch.web.model_service: no torch.compile on ZeroGPU)
    reranker = load_reranker(
        str(qwen3_reranker_dir),
        device="cpu",
        dtype="float32" if server[0] else "auto",
        compile=False,
    )
    expected = reranker.score(
        "grind size for espresso",
        [h["text"] for h in reranked],
        instruction=qsearch_app.INSTRUCTIONS[0][1],
    )
    assert scores == pytest.approx(list(expected), abs=1e-5)
    before = {h["text"]: h["rank"] for h in plain}
    for h in reranked:  # each hit says where it was before the rerank
        assert h["rank_before_rerank"] is not None
        if h["text"] in before:
            assert h["rank_before_rerank"] == before[h["text"]]
    assert [h["text"] for h in reranked] != [h["text"] for h in plain], "the rerank moved passages"
    assert any(h["rank"] != h["rank_before_rerank"] for h in reranked)


def test_sessions_never_see_each_others_documents(server, tmp_path):
    _, url = server
    alice, bob = client(url), client(url)
    secret = tmp_path / "alice-secret.txt"
    secret.write_text("The vault combination is kumquat-7731-zebra.")
    assert "1 indexed" in upload(alice, secret)
    assert search(alice, "vault combination")[0]["source"] == "alice-secret.txt"
    with pytest.raises(Exception, match="collection is empty"):
        search(bob, "vault combination kumquat-7731-zebra")
    upload(bob, qsearch_app.SAMPLES / "python-tips.md")
    assert all(
        h["source"] != "alice-secret.txt" for h in search(bob, "kumquat-7731-zebra vault", top_k=10)
    )


def test_helpful_messages_and_escaping(server, tmp_path):
    _, url = server
    c = client(url)
    with pytest.raises(Exception, match="collection is empty"):
        search(c, "anything")
    hostile = tmp_path / "<img src=x onerror=alert(1)>.html"
    hostile.write_text(
        "<p>Payload: &lt;script&gt;alert('boom')&lt;/script&gt; and "
        "&lt;img src=x onerror=alert(2)&gt; in plain sight.</p>"
    )
    report = upload(c, hostile)
    assert "<img" not in report and "onerror=alert(1)" in report  # Gradio drops <>; we escape
    hits = search(c, "payload in plain sight", mode="lexical")
    assert hits and "<script>" in hits[0]["text"], "the API gives the text as it is"
    with pytest.raises(Exception, match="Type a question"):
        search(c, "   ")
    assert search(c, "zzzqqqxxx", mode="lexical") == []


def test_the_page_escapes_and_explains(app_server, tmp_path):
    """The page's own handlers (what the browser calls), on the running app's context."""
    demo, _ = app_server
    on = Handlers(demo.qsearch_context)
    hostile = tmp_path / "notes.html"
    hostile.write_text("<p>Payload: &lt;script&gt;alert('boom')&lt;/script&gt; in plain sight.</p>")
    *_, token = on.add_files([str(hostile)], None, progress=lambda *a, **k: None)
    page = dict(top_k=5, rerank=False, instruction="", mode="lexical", rerank_candidates=10)
    html, hits = on.search_page("payload in plain sight", token=token, **page)
    assert hits and "<script>" in hits[0]["text"]
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "Type a question" in on.search_page("   ", token=token, **page)[0]
    assert "No passage matches" in on.search_page("zzzqqqxxx", token=token, **page)[0]
    assert "collection is empty" in on.search_page("payload", token=None, **page)[0]
    assert "collection is empty" in on.search_page("payload", token="x" * 43, **page)[0], (
        "a token nobody was given opens nothing"
    )


def test_remove_and_clear(server):
    _, url = server
    c = client(url)
    _, files, choices, _ = c.predict(
        [
            gradio_client.handle_file(str(qsearch_app.SAMPLES / name))
            for name in ("solar-system.md", "python-tips.md")
        ],
        api_name="/add_documents",
    )
    assert "solar-system.md" in files and "python-tips.md" in files
    solar = next(doc_id for label, doc_id in choices["choices"] if label == "solar-system.md")
    files, choices = c.predict(solar, api_name="/remove_document")
    assert "solar-system.md" not in files and "python-tips.md" in files
    assert [label for label, _ in choices["choices"]] == ["python-tips.md"]
    assert all(
        h["source"] != "solar-system.md" for h in search(c, "planets orbit the sun", top_k=5)
    )
    files, choices = c.predict(api_name="/clear_documents")
    assert "No documents yet" in files and choices["choices"] == []
    with pytest.raises(Exception, match="collection is empty"):
        search(c, "planets")


def test_v1_api_gives_the_engines_vectors(server, minilm, minilm_dir):
    import httpx

    from qsearch.models.embedder import load_embedder

    _, url = server
    if (
        server[0] is None
    ):  # the ZeroGPU server runs the CPU default dtype; the plain one fp32, as `minilm`
        minilm = load_embedder(str(minilm_dir), device="cpu")
    body = {
        "input": ["Tides follow the moon.", "Ferns reproduce with spores."],
        "encoding_format": "float",
    }
    answer = httpx.post(f"{url}v1/embeddings", json=body, timeout=60).json()
    vectors = np.array([d["embedding"] for d in answer["data"]], dtype=np.float32)
    np.testing.assert_allclose(vectors, minilm.encode(body["input"]), atol=1e-5)
    assert httpx.get(f"{url}v1/models").json()["data"][0]["id"] == "all-MiniLM-L6-v2"


def test_a_shared_read_only_index_is_searched_by_every_session(minilm, minilm_dir, tmp_path):
    from qsearch import Engine, Settings

    library = Engine(Settings(embed_model=str(minilm_dir)), embedder=minilm)
    (tmp_path / "handbook.md").write_text(
        "# Handbook\n\nThe office closes at 6pm on Fridays during summer."
    )
    library.add_files([tmp_path / "handbook.md"])
    library.save(tmp_path / "shared-index")
    demo = qsearch_app.create_app(
        Settings(embed_model=str(minilm_dir), device="cpu"),
        index_dir=str(tmp_path / "shared-index"),
    )
    _, url, _ = qsearch_app.launch(demo, prevent_thread_lock=True, quiet=True)
    try:
        alice, bob = client(url), client(url)

        def names(hits: list[dict]) -> set[str]:
            return {Path(h["source"]).name for h in hits}

        assert names(search(alice, "when does the office close on Friday?")) == {"handbook.md"}
        upload(bob, qsearch_app.SAMPLES / "coffee-brewing.html")
        assert names(search(bob, "office hours and coffee", top_k=5)) == {
            "handbook.md",
            "coffee-brewing.html",
        }
        assert names(search(alice, "coffee grind size", top_k=5)) == {"handbook.md"}
        alice.predict(api_name="/clear_documents")
        assert names(search(alice, "office")) == {"handbook.md"}, (
            "clearing a session spares the shared index"
        )
    finally:
        demo.close()


def test_weak_matches_look_weak_and_the_notice_agrees_with_the_bars(app_server, tmp_path):
    """Overall relevance is absolute, so one threshold decides what is weak: the page fades,
    greys and folds the cards below the minimum relevance, and says "No strong match" exactly
    when all of them are; the minimum is the page's setting."""
    from qsearch.search.strength import DEFAULT_MIN_SCORE

    demo, _ = app_server
    on = Handlers(demo.qsearch_context)
    lorem = tmp_path / "placeholder.txt"
    lorem.write_text("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.")
    files = [str(p) for p in sorted(qsearch_app.SAMPLES.iterdir())] + [str(lorem)]
    *_, token = on.add_files(files, None, progress=lambda *a, **k: None)
    page = dict(top_k=5, rerank=False, instruction="", mode="hybrid", rerank_candidates=10)

    html, hits = on.search_page("what should I wear against volcanic ash?", token=token, **page)
    assert hits[0]["source"] == "volcanoes-field-guide.pdf" and not hits[0]["weak"]
    first_aid = [h for h in hits if h["source"] == "first-aid-basics.txt"]
    assert first_aid and all(h["weak"] for h in first_aid), first_aid
    for h in hits:  # the rule, on the scores shown
        assert h["weak"] == (h["overall"] < DEFAULT_MIN_SCORE)
    n_weak = sum(h["weak"] for h in hits)
    assert html.count("qs-card qs-weak") == html.count("weak match:") == n_weak
    assert f"{n_weak} weak match{'es' if n_weak > 1 else ''} hidden" in html
    assert "No strong match" not in html, "one card matches: no notice"

    html, hits = on.search_page("what is the capital of France?", token=token, **page)
    assert hits and all(h["weak"] for h in hits) and "No strong match" in html
    html, hits = on.search_page("adipiscing elit", token=token, **page)
    assert hits[0]["source"] == "placeholder.txt" and hits[0]["keywords"] == 1.0
    assert not hits[0]["weak"] and "No strong match" not in html, "its words, all of them"
    html, hits = on.search_page("what is the capital of France?", token=token, **page, min_score=0)
    assert not any(h["weak"] for h in hits) and "weak match" not in html, "nothing below 0"
    exported = json.loads(Path(on.export(token)[0]).read_text())  # the export says it too
    assert exported["settings"]["min_score"] == 0
    assert not any(r["weak"] for r in exported["results"])


def test_a_reader_process_never_keeps_a_browsers_connection_open(tmp_path):
    """The reload hang: readers forked from the server held copies of its keep-alive sockets, so a
    socket the server closed stayed open and the browser's next request on it was never read.
    Readers are separate interpreters now (close_fds): none holds a socket of the server's."""
    import socket

    from qsearch.documents import pool
    from qsearch.types import Limits, ReadOptions

    server_side, browser_side = socket.socketpair()
    pool._READERS.close()  # the next parse starts new readers, while both ends are open
    try:
        pool.parse("a.txt", b"some text", Limits(), ReadOptions(ocr=False))
        server_side.close()  # the server closes the connection: the browser must see it closed
        browser_side.settimeout(10)
        assert browser_side.recv(1) == b"", "the connection stayed open"
    finally:
        browser_side.close()
