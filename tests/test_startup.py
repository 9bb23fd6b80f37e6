"""What the app says at start, in the terminal and on the page (qsearch/web/startup.py): the model
loaded, its precision and any fallback with its full reason; a warning when the server is public
with no login; qsearch's own hint on a public link in place of Gradio's. The status line is whole
phrases, never cut, and the full reasons are in "Server details".

The fallback is the real one: a hub id that is not cached, with the hub unreachable
(HF_HUB_OFFLINE, as on a machine without a network), so the loader's own message is what shows.
"""

from __future__ import annotations

import httpx
import pytest

import app
from qsearch.config import ServerSettings, Settings
from qsearch.web.limits import ServerLimits
from qsearch.web.model_service import ModelService
from qsearch.web.page import build_page
from qsearch.web.server import Context
from qsearch.web.startup import startup_lines, status_line

UNCACHED = "qsearch-tests/never-cached-embedder"  # a hub id: the loader asks the hub, which fails
GRADIO_HINT = "To create a public link, set `share=True` in `launch()`"


@pytest.fixture(scope="module")
def fallen_back(minilm_dir) -> ModelService:
    """The app's model service when its embedding model can't be loaded: MiniLM runs instead."""
    settings = Settings(embed_model=UNCACHED, rerank_model="none/none", device="cpu")
    service = ModelService.load(settings, measure=False)
    yield service
    service.close()


def _context(service: ModelService, **server: object) -> Context:
    return Context(service, None, ServerLimits.resolve(ServerSettings(**server), {}))


def test_the_fallback_is_said_in_full_in_the_terminal_and_in_whole_words_on_the_page(
    fallen_back, minilm_dir
):
    assert fallen_back.settings.embed_model == str(minilm_dir)
    (fallback,) = fallen_back.fallbacks
    assert (fallback.role, fallback.wanted, fallback.used) == (
        "embedding",
        UNCACHED,
        str(minilm_dir),
    )
    ctx = _context(fallen_back)
    terminal = "\n".join(startup_lines(ctx))
    assert "embedding: all-MiniLM-L6-v2 · CPU" in terminal
    assert f"⚠ Could not load {UNCACHED} (can't load model '{UNCACHED}': not cached here and the " \
        "Hugging Face hub can't be reached" in terminal  # fmt: skip
    assert "Running on the small bundled model all-MiniLM-L6-v2 instead" in terminal
    assert "precision: " in terminal and "⚠ reranking: off: " in terminal
    line = status_line(ctx)
    assert line.endswith("· ⚠ never-cached-embedder could not be loaded (why: Server details)")
    assert "…" not in line and "..." not in line, "nothing is cut"
    assert "embedding all-MiniLM-L6-v2" in line and "· auto ·" not in line, "the precision run"
    assert fallback.reason in ctx.status_markdown(), "the full reason, one click away"


def test_the_launched_app_says_the_fallback_and_the_page_shows_it(fallen_back, capsys):
    demo = build_page(_context(fallen_back))
    _, url, _ = app.launch(demo, prevent_thread_lock=True)
    try:
        out = capsys.readouterr().out
        page = httpx.get(url, timeout=30).text
    finally:
        demo.close()
    assert f"⚠ Could not load {UNCACHED}" in out
    assert f"* Running on local URL:  {url}" in out
    assert "never-cached-embedder could not be loaded (why: Server details)" in page
    assert "Server details: the full reasons" in page


@pytest.mark.parametrize(
    ("server", "reason"),
    [
        ({"host": "0.0.0.0"}, "listening on 0.0.0.0, reachable from other machines"),
        ({"share": True}, "--share: a public *.gradio.live link"),
    ],
)
def test_a_public_server_without_a_login_warns_in_the_terminal_and_on_the_page(
    fallen_back, capsys, server, reason
):
    ctx = _context(fallen_back, **server)
    demo = build_page(ctx)
    _, url, _ = app.launch(demo, prevent_thread_lock=True, quiet=True)  # served on loopback
    try:
        out = capsys.readouterr().out
        page = httpx.get(url, timeout=30).text
    finally:
        demo.close()
    warning = f"This server is public ({reason}) and asks for no login"
    assert f"qsearch: ⚠ {warning}" in out, "warned even when quiet"
    assert "Add --auth USER:PASSWORD (or set QSEARCH_AUTH)" in out
    assert "⚠ public, with no login" in status_line(ctx) and warning in ctx.status_markdown()
    assert "public, with no login" in page


def test_a_space_without_a_login_is_told_how_to_add_one():
    limits = ServerLimits.resolve(ServerSettings(), {"SPACE_ID": "someone/qsearch"})
    assert "QSEARCH_AUTH=USER:PASSWORD as a secret in the Space's settings" in (
        limits.public_warning()
    )


def test_a_login_or_a_private_server_warns_of_nothing(fallen_back, capsys):
    assert ServerLimits.resolve(ServerSettings(host="0.0.0.0", auth="ada:pw"), {}).login
    ctx = _context(fallen_back, host="0.0.0.0", auth="ada:pw")
    assert ctx.limits.public_warning() == "" and "public, with no login" not in status_line(ctx)
    demo = build_page(ctx)
    app.launch(demo, prevent_thread_lock=True, auth="ada:pw")
    demo.close()
    out = capsys.readouterr().out
    assert "asks for no login" not in out


def test_qsearchs_share_hint_replaces_gradios(fallen_back, capsys):
    demo = build_page(_context(fallen_back))
    app.launch(demo, prevent_thread_lock=True)
    demo.close()
    out = capsys.readouterr().out
    assert GRADIO_HINT not in out
    assert "* For a temporary public link, start it with --share" in out
    assert "--auth USER:PASSWORD puts a login before the page" in out


def test_quiet_says_only_warnings(fallen_back, capsys):
    demo = build_page(_context(fallen_back))
    app.launch(demo, prevent_thread_lock=True, quiet=True)
    demo.close()
    out = capsys.readouterr().out
    assert GRADIO_HINT not in out and "Running on local URL" not in out
    assert "public link" not in out and "embedding: " not in out
    assert f"⚠ Could not load {UNCACHED}" in out, "a fallback is a warning"


def test_the_command_line_stops_and_says_why_and_how_to_use_the_bundled_model(
    minilm_dir, tmp_path, capsys
):
    """Where the app falls back, the command line stops: an index keeps its model."""
    from qsearch.__main__ import EXIT_USAGE, main

    (tmp_path / "a.txt").write_text("Tides follow the moon.")
    code = main(["index", "--index", str(tmp_path / "ix"), "--embed-model", UNCACHED,
                 str(tmp_path / "a.txt")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and "not cached here and the Hugging Face hub can't be reached" in err
    assert "an index keeps the model it was built with" in err
    assert f"pass --embed-model {minilm_dir}" in err
    assert not (tmp_path / "ix").exists(), "nothing half-written"
