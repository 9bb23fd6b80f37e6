"""An upload run: files into a session's collection, one run per collection at a time, within
the server's memory budget, with progress (and an ETA at the pace the run is seen to go), its
state for searches made meanwhile, and the collection kept on disk after it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gradio as gr

from ..documents.pool import reading_for
from ..engine import Cancelled, Engine
from ..models.loading import ModelLoadError
from .clients import tells_visitors_apart
from .memory import MemoryBudget
from .render import files_html, message_html, progress_html, report_html
from .server import Context
from .sessions import Busy, Indexing, Session
from .sizing import eta_text

POLL = 0.25  # seconds between the page's progress updates


class Uploads:
    """The upload runs of one server."""

    def __init__(self, ctx: Context):
        self.ctx = ctx

    def add(
        self, token: str, session: Session, files: list[str] | None, client: str, progress: Any
    ) -> tuple:
        """Index `files` into the session's collection (one run at a time per collection, and
        within the server's memory), then keep it; the report, the listing, an empty upload box."""
        engine, paths = session.engine, [Path(f) for f in files or []]
        if not paths:
            return message_html("Choose one or more files first."), *listing(engine), None
        budget = self.ctx.budget
        try:
            with self.ctx.sessions.indexing(session, client) as run, _run(budget):
                report = self.progress(run, progress)
                try:  # uploads stay in Gradio's shared cache, which deletes them itself
                    names = [p.name for p in paths]
                    stop = session.stop.is_set
                    self.wait_for_model(progress, stop)
                    with reading_for(visitor(client, token)):  # its share of the readers
                        result = engine.add_files(paths, report, names=names, should_stop=stop)
                except Cancelled:
                    stopped = message_html("Stopped: nothing from this upload was added.")
                    return stopped, *listing(engine), None
        except (Busy, ModelLoadError) as e:
            return message_html(str(e)), *listing(engine), None
        not_kept = self.ctx.keeper.save(token, session.library)
        return report_html(result, note=not_kept), *listing(engine), None

    def add_live(
        self, token: str, session: Session, files: list[str] | None, client: str
    ) -> Iterator[tuple]:
        """`add` for the page: run in a thread while its progress shows in the report, every
        POLL seconds, with qsearch's own ETA (the page hides Gradio's, which is an average of
        earlier uploads of anyone's); the last value is `add`'s."""
        latest: dict[str, Any] = {}
        outcome: dict[str, Any] = {}

        def progress(fraction: tuple[int, int], desc: str = "") -> None:
            latest["now"] = (desc, fraction)

        def run() -> None:
            try:
                outcome["value"] = self.add(token, session, files, client, progress)
            except BaseException as e:  # noqa: BLE001 - raised again in the handler's thread
                outcome["error"] = e

        worker = threading.Thread(target=run, name="qsearch-upload", daemon=True)
        worker.start()
        shown = None
        yield progress_html("starting", None), gr.skip(), gr.skip(), gr.skip()
        while worker.is_alive():
            worker.join(POLL)
            now = latest.get("now")
            if now is not None and now != shown and worker.is_alive():
                shown = now
                yield progress_html(*now), gr.skip(), gr.skip(), gr.skip()
        if "error" in outcome:
            raise outcome["error"]
        yield outcome["value"]

    def wait_for_model(self, progress: Any, stop: Callable[[], bool]) -> None:
        """While the server's embedding model loads (it starts in the background), wait for it,
        saying so on the upload's bar; Cancelled when the user stops the upload meanwhile."""
        service = self.ctx.service
        while not service.wait_loaded(timeout=0.5):
            if stop():
                raise Cancelled("stopped while the model was loading")
            progress(
                None,
                desc=f"waiting for the embedding model to load · {service.loading_seconds():.0f} s",
            )

    def progress(self, run: Indexing, progress: Any) -> Callable[[str, int, int], None]:
        """The run's progress callback: the bar, its state for searches, an ETA at the rate
        this run is seen to go (the model's measured speed only before its first window)."""
        chunk_tokens, rate = self.ctx.service.settings.chunk_tokens, self.ctx.service.embed_rate
        first: dict[str, tuple[float, int]] = {}  # stage -> (when, done) at its first report

        def report(stage: str, done: int, total: int) -> None:
            run.stage, run.done, run.total = stage, done, total
            now = time.monotonic()
            since, done_then = first.setdefault(stage, (now, done))
            if done > done_then:  # seen: this run's own pace, whatever else the server does
                left = (total - done) * (now - since) / (done - done_then)
            elif stage == "embedding":
                left = rate.seconds_for((total - done) * chunk_tokens)
            else:
                left = None
            eta = eta_text(left) if done < total else ""
            progress((done, total), desc=f"{stage} {done}/{total}" + (f" · {eta}" if eta else ""))

        return report


def visitor(client: str, token: str) -> str:
    """Who an upload's files are read for, in the readers' fair share (documents/pool.py): its
    client's address, or its collection where addresses can't tell visitors apart (all come
    from a tunnel that names none of them)."""
    return f"client {client}" if tells_visitors_apart(client) else f"collection {token}"


def _run(budget: MemoryBudget | None) -> contextlib.AbstractContextManager:
    """The memory budget's run (its reservations end with it), or nothing without a budget."""
    return budget.run() if budget is not None else contextlib.nullcontext()


def listing(engine: Engine | None) -> tuple[str, Any]:
    """The collection's file table and its removal choices."""
    docs = engine.documents() if engine else []
    table = files_html([(d.source, d.chunks, d.pages) for d in docs])
    return table, gr.update(choices=[(d.source, d.doc_id) for d in docs], value=None)
