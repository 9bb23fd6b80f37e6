"""The app with its public limits on, driven as visitors drive it: rate and size limits on /v1 and
MCP, a login before the page, one upload per collection, honest first moments (a token before
the first upload, searches during indexing, collections freed to make room)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

import app as qsearch_app
from qsearch import Settings
from qsearch.config import ServerSettings
from qsearch.web.handlers import Handlers
from qsearch.web.server import Context

PER_MINUTE = 4
PAGE = dict(top_k=3, rerank=False, instruction="", mode="hybrid", rerank_candidates=10)


@pytest.fixture(scope="module")
def public(minilm_dir):
    """(context, url): the app with the public limits on, small enough to reach in a test."""
    server = ServerSettings(
        limits="on", api_per_minute=PER_MINUTE, request_max_kb=4, api_max_chars=2_000
    )
    settings = Settings(embed_model=str(minilm_dir), rerank_model="none/none", device="cpu")
    demo = qsearch_app.create_app(settings, server=server)
    _, url, _ = qsearch_app.launch(demo, prevent_thread_lock=True, quiet=True)
    yield demo.qsearch_context, url
    demo.close()


def _embed(url: str, texts: list[str], client: str = "198.51.100.7") -> httpx.Response:
    return httpx.post(
        f"{url}v1/embeddings",
        json={"input": texts},
        headers={"x-forwarded-for": client},  # as the share link's tunnel passes it on
        timeout=60,
    )


def test_v1_and_mcp_answer_429_past_a_clients_rate_and_413_past_the_size(public):
    ctx, url = public
    assert f"Limits: collections share {ctx.limits.memory_budget_mb:,} MB" in ctx.status_markdown()
    assert f"/v1 and MCP: {PER_MINUTE} requests a minute per client" in ctx.status_markdown()
    answers = [_embed(url, ["hello"]) for _ in range(PER_MINUTE + 1)]
    assert [a.status_code for a in answers] == [200] * PER_MINUTE + [429]
    refused = answers[-1]
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert f"at most {PER_MINUTE} a minute per client" in refused.json()["error"]["message"]
    assert _embed(url, ["hello"], client="192.0.2.44").status_code == 200, "another client"

    big = _embed(url, ["x" * 5_000], client="192.0.2.45")
    assert big.status_code == 413 and "at most 4,096" in big.json()["error"]["message"]
    many = _embed(url, ["y" * 900] * 3, client="192.0.2.46")
    assert many.status_code == 413 and "at most 2,000 in one request" in many.text
    mcp = httpx.post(
        f"{url}gradio_api/mcp/",
        content=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "x", "params": "z" * 5_000}),
        headers={"content-type": "application/json", "x-forwarded-for": "192.0.2.47"},
    )
    assert mcp.status_code == 413, "MCP requests are held to the same size"


def test_the_page_mints_a_token_before_the_first_upload_so_stop_works_then(public):
    ctx, _ = public
    on = Handlers(ctx)
    token, files, _, message = on.restore(None)
    assert ctx.sessions.peek(token) is None and "No documents yet" in files and message == ""
    report, *_, kept = on.add_files(
        [str(qsearch_app.SAMPLES / "first-aid-basics.txt")], token, lambda *a, **k: None
    )
    assert kept == token and "1 indexed" in report, "the minted token names the collection"


def test_a_search_during_indexing_says_so_and_a_second_upload_waits_its_turn(public):
    ctx, _ = public
    on = Handlers(ctx)
    token = on.restore(None)[0]
    session = ctx.sessions.open(token)[1]
    with ctx.sessions.indexing(session, "192.0.2.50") as run:
        run.stage, run.done, run.total = "embedding", 4, 9
        html, hits = on.search_page("how do I treat a burn?", token=token, **PAGE)
        assert hits == [] and "still being indexed (embedding 4/9)" in html
        report, *_ = on.add_files(
            [str(qsearch_app.SAMPLES / "solar-system.md")], token, lambda *a, **k: None
        )
        assert "still being indexed into this collection" in report
    on.add_files([str(qsearch_app.SAMPLES / "first-aid-basics.txt")], token, lambda *a, **k: None)
    with ctx.sessions.indexing(session, "192.0.2.50") as run:
        run.stage, run.done, run.total = "reading", 1, 2
        html, hits = on.search_page("how do I treat a burn?", token=token, **PAGE)
        assert hits and "Still indexing your upload (reading 1/2)" in html
        assert "documents indexed before it" in html


def _leave_memory(ctx, on: Handlers) -> str:  # noqa: ANN001
    """A visitor's token whose collection (one file) was let go to make room for others."""
    token = on.restore(None)[0]
    on.add_files([str(qsearch_app.SAMPLES / "solar-system.md")], token, lambda *a, **k: None)
    ctx.sessions.peek(token).used -= 3600  # idle long enough to leave memory
    while ctx.sessions.peek(token) is not None:
        assert ctx.sessions.evict_one()
    return token


def test_a_collection_that_left_memory_to_make_room_comes_back_from_disk(public):
    """Kept by default (the public server too): a collection that left memory to make room for
    other visitors is read back from the data folder on its next visit."""
    ctx, _ = public
    on = Handlers(ctx)
    assert ctx.keeper.place.kind == "local" and ctx.keeper.store is not None
    token = _leave_memory(ctx, on)
    again, files, _, message = on.restore(token)
    assert again == token and "solar-system.md" in files and message == ""
    _, hits = on.search_page("largest planet", token=token, **PAGE)
    assert hits and hits[0]["source"] == "solar-system.md"


def test_a_collection_freed_to_make_room_says_so_on_the_next_visit(minilm_dir):
    """Kept in memory only (--data-dir off): one freed to make room is gone, and its visitor is
    told why, on the page and when searching."""
    settings = Settings(
        embed_model=str(minilm_dir), rerank_model="none/none", device="cpu", data_dir="off"
    )
    ctx = Context.create(settings, server=ServerSettings(limits="on"))
    on = Handlers(ctx)
    assert ctx.keeper.store is None and "not kept on disk" in on.shelf.kept()
    token = _leave_memory(ctx, on)
    again, files, _, message = on.restore(token)
    assert again == token and "No documents yet" in files
    assert "freed to make room for other visitors" in message
    html, _ = on.search_page("largest planet", token=token, **PAGE)
    assert "freed to make room" in html


def test_the_ETA_follows_the_pace_the_run_is_seen_to_go(public, monkeypatch):
    ctx, _ = public
    from qsearch.web import uploads
    from qsearch.web.sessions import Indexing

    clock = [100.0]
    monkeypatch.setattr(uploads.time, "monotonic", lambda: clock[0])
    shown = []
    report = uploads.Uploads(ctx).progress(Indexing("c"), lambda done, desc: shown.append(desc))
    report("embedding", 0, 300)
    clock[0] += 30.0  # 10 texts in 30 s: 290 more take 870 s, whatever the model's speed says
    report("embedding", 10, 300)
    assert shown[-1] == "embedding 10/300 · about 14 min 30 s left"
    report("embedding", 300, 300)
    assert shown[-1] == "embedding 300/300"


def test_a_login_keeps_the_page_and_its_api_closed(minilm_dir):
    from gradio_client import Client

    settings = Settings(embed_model=str(minilm_dir), rerank_model="none/none", device="cpu")
    demo = qsearch_app.create_app(settings)
    _, url, _ = qsearch_app.launch(demo, prevent_thread_lock=True, quiet=True, auth="ada:lovelace")
    try:
        assert httpx.get(f"{url}config").status_code == 401
        with pytest.raises(Exception):  # noqa: B017 - gradio_client's own error for a login
            Client(url, verbose=False)
        ada = Client(url, auth=("ada", "lovelace"), verbose=False)
        with pytest.raises(Exception, match="collection is empty"):  # noqa: B017 - gr.Error's
            ada.predict(query="anything", api_name="/search")
    finally:
        demo.close()


def test_one_visitors_stuck_uploads_leave_a_reader_for_another_visitor(
    public, tmp_path, monkeypatch
):
    """Visitor A uploads four pages that each hold a reader until their deadline (as 100,000-deep
    pages did before they were read in linear time; tests/stuck_loader.py stands in for them),
    from two tabs; visitor B's 1 KB file is indexed within 10 s. Both come through the share
    link's tunnel as every visitor does: from 127.0.0.1, each named by the X-Forwarded-For the
    tunnel adds (frp's HTTP proxy appends the address it saw)."""
    from gradio_client import Client, handle_file

    from qsearch.documents import pool

    _, url = public
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))  # where stuck_loader is
    readers = pool.Readers(size=2, modules=["stuck_loader"])
    monkeypatch.setattr(pool, "_READERS", readers)
    pages = []
    for i in range(4):
        pages.append(tmp_path / f"deep-{i}.txt")
        pages[-1].write_text(f"STUCK {tmp_path / f'child-{i}.pid'}")
    note = tmp_path / "note.txt"
    note.write_text("A short note about the tides of the harbour. " * 22)  # 1 KB
    a_tabs = [Client(url, headers={"X-Forwarded-For": "203.0.113.5"}, verbose=False) for _ in "12"]
    b = Client(url, headers={"X-Forwarded-For": "198.51.100.9"}, verbose=False)
    try:
        jobs = [
            tab.submit([handle_file(str(p)) for p in pages[i::2]], api_name="/add_documents")
            for i, tab in enumerate(a_tabs)
        ]
        deadline = time.monotonic() + 120  # the readers' start (imports), under load
        while readers._busy < 1:
            assert time.monotonic() < deadline, "A's uploads never started reading"
            time.sleep(0.1)
        time.sleep(1.0)
        assert readers._holding == {"client 203.0.113.5": 1}, readers._holding
        started = time.monotonic()
        report, *_ = b.predict([handle_file(str(note))], api_name="/add_documents")
        seconds = time.monotonic() - started
        assert "1 indexed" in report and seconds < 10, (seconds, report)
    finally:
        deadline = time.monotonic() + 120
        while not all(job.done() for job in jobs) and time.monotonic() < deadline:
            readers.close()  # A's stuck readers are killed, each file reported: the runs end
            time.sleep(0.5)
        assert all("failed" in job.result(timeout=5)[0] for job in jobs)
        for client in (*a_tabs, b):
            client.close()


def test_four_deeply_nested_pages_and_another_visitors_file(public, tmp_path):
    """The real pages: visitor A's four 100,000-deep pages (two tabs, two each) and visitor B's
    1 KB file at once. Before: each page held a reader for its whole 120 s deadline."""
    from gradio_client import Client, handle_file

    _, url = public
    pages = []
    for i in range(4):
        pages.append(tmp_path / f"deep-{i}.html")
        deep = "<div>" * 100_000 + f"Deep text {i}." + "</div>" * 100_000
        pages[-1].write_text(f"<html><body><p>Page {i}.</p>{deep}</body></html>")
    note = tmp_path / "note.txt"
    note.write_text("A short note about the tides of the harbour. " * 22)
    a_tabs = [Client(url, headers={"X-Forwarded-For": "203.0.113.6"}, verbose=False) for _ in "12"]
    b = Client(url, headers={"X-Forwarded-For": "198.51.100.10"}, verbose=False)
    try:
        jobs = [
            tab.submit([handle_file(str(p)) for p in pages[i::2]], api_name="/add_documents")
            for i, tab in enumerate(a_tabs)
        ]
        started = time.monotonic()
        report, *_ = b.predict([handle_file(str(note))], api_name="/add_documents")
        assert "1 indexed" in report and time.monotonic() - started < 10, report
        for job in jobs:
            assert "2 indexed" in job.result(timeout=120)[0]
    finally:
        for client in (*a_tabs, b):
            client.close()
