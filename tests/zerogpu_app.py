"""The app as it runs on ZeroGPU (`spaces` is the stand-in of zerogpu.py): print the URL, serve.

python tests/zerogpu_app.py EMBED_MODEL RERANK_MODEL [INDEX_DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
import zerogpu  # noqa: E402

sys.modules["spaces"] = zerogpu  # before the app, and so qsearch.web.model_service, is imported

import app  # noqa: E402
from qsearch import Settings  # noqa: E402
from qsearch.web.server import launch  # noqa: E402

if __name__ == "__main__":
    settings = Settings(
        embed_model=sys.argv[1],
        rerank_model=sys.argv[2],
        device="cpu",
        max_files=20,
        max_chunks=2000,
    )
    demo = app.create_app(settings, sys.argv[3] if len(sys.argv) > 3 else None)
    _, url, _ = launch(demo, prevent_thread_lock=True, quiet=True)
    print(f"URL {url}", flush=True)
    demo.block_thread()
