"""`python app.py` serves its page while the models load (ModelService.start): the status says
the model is loading (and later what runs), uploads and searches wait for it instead of failing,
and a model that can't be loaded is said on the page and to every upload."""

from __future__ import annotations

import threading
import time

import pytest
from fakes import HashingEmbedder

from qsearch.config import Settings
from qsearch.web import model_service
from qsearch.web.handlers import Handlers
from qsearch.web.page import build_page
from qsearch.web.server import Context


@pytest.fixture
def gated(monkeypatch):
    """make_embedder that blocks until the test opens the gate (or raises what it was given)."""
    gate, outcome = threading.Event(), {"model": HashingEmbedder()}

    def make_embedder(settings: Settings) -> HashingEmbedder:
        assert gate.wait(60), "the test never opened the gate"
        if isinstance(outcome["model"], Exception):
            raise outcome["model"]
        return outcome["model"]

    monkeypatch.setattr(model_service, "make_embedder", make_embedder)
    monkeypatch.setattr(model_service, "rerank_choice", lambda s: (None, "no reranker here"))
    yield gate, outcome
    gate.set()


def _upload(handlers: Handlers, path: str, seen: list) -> tuple:
    token, session = handlers.ctx.sessions.open(None)

    def progress(value: object, desc: str = "") -> None:
        seen.append(desc)

    return handlers.uploads.add(token, session, [path], "test", progress)


def test_the_page_answers_while_the_model_loads_and_an_upload_waits(gated, tmp_path):
    gate, _ = gated
    started = time.monotonic()
    ctx = Context.create(Settings(embed_model=HashingEmbedder.model_name), background=True)
    demo = build_page(ctx)  # the page is built (and served) with the model still loading
    assert time.monotonic() - started < 30 and ctx.service.loading
    assert ctx.status_summary().startswith("⏳ Loading the embedding model `hashing-embedder`")
    assert "uploads and searches wait for it" in ctx.status_markdown()
    assert demo is not None and ctx.service.embedder.device == "loading"
    handlers, seen, done = Handlers(ctx), [], {}
    (tmp_path / "tides.txt").write_text("The tide rises twice a day along the coast.")
    upload = threading.Thread(
        target=lambda: done.setdefault(
            "report", _upload(handlers, str(tmp_path / "tides.txt"), seen)
        )
    )
    upload.start()
    upload.join(1.5)
    assert upload.is_alive(), "the upload waits for the model"
    assert seen and seen[-1].startswith("waiting for the embedding model to load · ")
    gate.set()
    upload.join(30)
    assert "tides.txt" in done["report"][0] and "indexed" in done["report"][0].lower()
    assert not ctx.service.loading and ctx.service.embedder.dim == 64
    assert not ctx.status_summary().startswith("⏳") and "hashing-embedder" in ctx.status_summary()
    token, session = handlers.ctx.sessions.open(None)
    assert session.engine.embedder.model_name == HashingEmbedder.model_name


def test_a_model_that_cannot_load_is_said_on_the_page_and_to_uploads(gated, tmp_path, monkeypatch):
    gate, outcome = gated
    outcome["model"] = OSError("weights damaged on disk")
    monkeypatch.setattr(model_service, "bundled_small_model", lambda: None)  # no fallback
    ctx = Context.create(Settings(embed_model=HashingEmbedder.model_name), background=True)
    gate.set()
    time.sleep(0.3)
    assert not ctx.service.loaded.is_set(), "the load waits for the server (launch) to be up"
    ctx.service.begin_loading()  # what server.launch does once the server answers
    assert ctx.service.loaded.wait(30)
    assert "could not be loaded: weights damaged on disk" in ctx.status_summary()
    (tmp_path / "a.txt").write_text("some text")
    report, *_ = _upload(Handlers(ctx), str(tmp_path / "a.txt"), [])
    assert "The embedding model could not be loaded: weights damaged on disk" in report


def test_without_background_the_context_loads_first(gated):
    """Tests, the CLI's server and a shared --index load before serving, as before."""
    gate, _ = gated
    gate.set()
    ctx = Context.create(Settings(embed_model=HashingEmbedder.model_name))
    assert not ctx.service.loading and ctx.service.embedder.device == "remote"
