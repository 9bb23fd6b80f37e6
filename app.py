"""qsearch web app: upload documents, search them, see why each passage ranks where it does.

The Space's entry: builds the page from `qsearch.web` and launches it. The page is
`qsearch.web.page`, its handlers `qsearch.web.handlers`, search logic `qsearch.Engine`, the
shared models `qsearch.web.model_service.ModelService`, each client's collection
`qsearch.web.sessions.Sessions`. The same server answers the OpenAI-compatible /v1 API and,
unless `--no-mcp`, serves `search` and `add_documents` as MCP tools.

    python app.py [--host H] [--port P] [--share] [--index DIR] [--embed-model M] [--rerank-model M]
                  [--device D] [--dtype T] [--no-ocr] [--ocr-lang L] [--api-key KEY] [--no-mcp]
                  [--auth USER:PASSWORD] [--limits auto|on|off] [--memory-budget-mb MB] ...
    gradio app.py    (reload mode: the page is rebuilt on change, the models stay loaded)
"""

from __future__ import annotations

import gc
from typing import Any

import gradio as gr

from qsearch.search.strength import DEFAULT_MIN_SCORE
from qsearch.web.handlers import SAMPLES
from qsearch.web.page import INSTRUCTIONS, UPLOAD_CACHE, build_page
from qsearch.web.server import Context, launch, parse_args

__all__ = ["INSTRUCTIONS", "SAMPLES", "UPLOAD_CACHE", "DEFAULT_MIN_SCORE", "create_app", "launch"]


def create_app(
    settings: Any, index_dir: str | None = None, server: Any = None, **page: Any
) -> gr.Blocks:
    """Load the models once, open the shared index if any, build the page (build_page options);
    `server` (ServerSettings) sets the limits, as `python app.py`'s flags do."""
    return build_page(Context.create(settings, index_dir, server), **page)


if __name__ == "__main__":  # `python app.py`, and `gradio app.py`, which re-runs this file
    if gr.NO_RELOAD:
        ARGS, SETTINGS = parse_args()
        CONTEXT = Context.create(SETTINGS, ARGS.index, ARGS.server, background=True)
    demo = build_page(CONTEXT)
    if gr.NO_RELOAD:
        gc.freeze()  # the start-up heap is never scanned again: Ctrl-C exits in ~1 s, not ~10
        launch(
            demo,
            host=ARGS.host,
            port=ARGS.port,
            share=ARGS.share,
            max_file_mb=SETTINGS.max_file_mb,
            api_key=ARGS.api_key,
            auth=ARGS.auth,
            mcp=ARGS.mcp,
        )
