"""The page's retrieval test: labelled queries (results marked as answers, or a CSV or JSONL of
them) -> each ranking's metrics side by side on the user's own collection (qsearch/labelled.py,
the code `qsearch eval` reports with), and how well the minimum relevance separates the passages
of the files they named from the others. Handlers (a base of `Handlers`) and their HTML.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import gradio as gr

from ..labelled import labelled_test, parse_labels
from ..models.loading import ModelLoadError
from .render import message_html, where


def file_name(source: str) -> str:
    """A source's file name, as labels name files."""
    return source.replace("\\", "/").rsplit("/", 1)[-1]


class RetrievalTest:
    """The retrieval test's handlers; `ctx` (a web Context) and `_open` come from `Handlers`."""

    ctx: Any

    def _open(self, token: str | None) -> tuple[str, Any]:  # Handlers._open
        raise NotImplementedError

    def evidence_choices(self, token: str | None) -> tuple[Any, str, None, Any]:
        """After a search: results to open and to mark, an empty evidence panel, no download."""
        last = self.ctx.results(token)
        choices = [(f"#{h.rank} {where(h)}", h.rank) for h in (last["hits"] if last else [])]
        opened = gr.update(choices=choices, value=None, interactive=bool(choices))
        return opened, "", None, self.marks(token, choices)

    def marks(self, token: str | None, choices: list[tuple[str, int]]) -> Any:
        """The results to tick as answers after a search: those of files already labelled for
        this query ticked."""
        last, session = self.ctx.results(token), self.ctx.sessions.peek(token or "")
        labelled = session.labels.get(last["query"], set()) if session and last else set()
        ticked = [h.rank for h in (last["hits"] if last else []) if file_name(h.source) in labelled]
        return gr.update(choices=choices, value=ticked, interactive=bool(choices))

    def mark_relevant(self, marked: list[int] | None, token: str | None) -> str:
        """One click on a result: the latest query's answers are the files of the ticked results
        (none ticked: the query is no longer labelled)."""
        last, session = self.ctx.results(token), self.ctx.sessions.peek(token or "")
        if not last or session is None:
            return message_html("Search first, then tick the results that answer the query.")
        files = {file_name(h.source) for h in last["hits"] if h.rank in set(marked or [])}
        if files:
            session.labels[last["query"]] = files
        else:
            session.labels.pop(last["query"], None)
        return labels_html(session.labels)

    def load_labels(self, file: str | None, token: str | None) -> str:
        """A CSV or JSONL of labelled queries, added to this collection's (a query given again
        takes the file's answers)."""
        if not file:
            return message_html("Choose a .csv, .tsv or .jsonl file of labelled queries.")
        token, session = self._open(token)
        name = Path(file).name
        try:
            text = Path(file).read_text(encoding="utf-8-sig")
            labels = parse_labels(text, name)
        except UnicodeDecodeError:
            return message_html(f"Not read: {name} is not UTF-8 text.")
        except ValueError as e:
            return message_html(f"Not read: {e}")
        session.labels.update(labels)
        return labels_html(session.labels, added=f"{len(labels)} from {name}")

    def retrieval_test(
        self,
        k: float,
        rerank: bool,
        instruction: str | None,
        min_score: float | None,
        token: str | None,
        progress: gr.Progress = gr.Progress(),
    ) -> str:
        """Each ranking's nDCG@10, Recall@k and MRR@10 over the labelled queries, side by side,
        and how the minimum relevance separates the labelled files' passages from the rest."""
        ctx, session = self.ctx, self.ctx.sessions.find(token)
        if session is None or not session.labels:
            return message_html(
                "No labelled queries yet: tick the results that answer a search, or upload a "
                "CSV or JSONL of queries and the files that answer them."
            )
        if session.indexing is not None:
            return message_html("Your documents are still being indexed: test when it is done.")
        shared = [ctx.shared] if ctx.shared is not None and len(ctx.shared.documents()) else []
        note = ""
        if rerank and ctx.service.rerank_unavailable:
            rerank, note = False, ctx.rerank_off()
        try:
            report = labelled_test(
                session.engine,
                session.labels,
                k=int(k),
                rerank=bool(rerank),
                rerank_candidates=int(ctx.service.rerank_candidates()),
                min_score=None if min_score is None else float(min_score),
                instruction=instruction or None,
                also=shared,
                progress=lambda done, total: progress(done / total, desc="testing queries"),
            )
        except ValueError as e:
            return message_html(f"Not tested: {e}")
        except ModelLoadError:
            report = labelled_test(
                session.engine, session.labels, k=int(k), rerank=False, also=shared,
                min_score=None if min_score is None else float(min_score),
                instruction=instruction or None,
            )  # fmt: skip
            note = ctx.rerank_off()
        return test_html(report, note=note)


def labels_html(labels: dict[str, set[str]], *, added: str = "") -> str:
    """The retrieval test's labelled queries: how many, and the latest few with their files."""
    if not labels:
        return message_html("No labelled queries yet.")
    shown = list(labels.items())[-5:]
    rows = "".join(
        f"<li>{html.escape(q)} → {html.escape(', '.join(sorted(files)))}</li>" for q, files in shown
    )
    more = f" (the last {len(shown)} below)" if len(labels) > len(shown) else ""
    note = f" Added {html.escape(added)}." if added else ""
    return (
        f'<div class="qs-labels" data-count="{len(labels)}"><small>{len(labels)} labelled '
        f"quer{'ies' if len(labels) != 1 else 'y'}{more}.{note}</small><ul "
        f'style="margin:4px 0;font-size:0.85em">{rows}</ul></div>'
    )


TEST_METRICS = (  # (report key, column heading, what it says)
    ("ndcg_at_10", "nDCG@10", "how high the right files rank in the top 10 (1: all first)"),
    ("recall_at_k", "Recall@k", "the share of the right files found in the top k"),
    ("mrr_at_10", "MRR@10", "1 / the rank of the first right file (0 past 10)"),
)


def test_html(report: dict, *, note: str = "") -> str:
    """The retrieval test: each ranking's metrics side by side (the best of each column in bold),
    and how the minimum relevance separates the labelled files' passages from the rest."""
    k = report["k"]
    best = {key: max(r[key] for r in report["configs"]) for key, _, _ in TEST_METRICS}
    head = "".join(
        f'<th title="{html.escape(why)}" style="text-align:right;padding:2px 8px">'
        f"{name.replace('@k', f'@{k}')}</th>"
        for _, name, why in TEST_METRICS
    )
    body = "".join(
        f'<tr class="qs-test-row" data-config="{html.escape(r["config"])}">'
        f'<td style="padding:2px 8px">{html.escape(r["config"])}</td>'
        + "".join(
            f'<td class="qs-{key}" data-value="{r[key]:.4f}" style="text-align:right;'
            f'padding:2px 8px">{"<b>" if r[key] == best[key] else ""}{r[key]:.3f}'
            f"{'</b>' if r[key] == best[key] else ''}</td>"
            for key, _, _ in TEST_METRICS
        )
        + "</tr>"
        for r in report["configs"]
    )
    t = report["threshold"]

    def pct(v: float | None) -> str:
        return "–" if v is None else f"{100 * v:.0f}%"

    split = (
        f"At the minimum relevance {t['min_score']:.2f}, {pct(t['relevant_kept'])} of the "
        f"{t['relevant']} passages from the files you named stay shown and "
        f"{pct(t['others_folded'])} of the {t['others']} others fold away (hybrid top {k}"
        f"{', reranked' if any(r['config'].endswith('rerank') for r in report['configs']) else ''}"
        f"). The best separation here: {t['best_min_score']:.2f} "
        f"({pct(t['best_relevant_kept'])} kept, {pct(t['best_others_folded'])} folded)."
    )
    extra = (
        f'<div class="qs-notice" style="color:#92400e">{html.escape(note)}</div>' if note else ""
    )
    return (
        f'<div class="qs-test-report">{extra}<small>{report["queries"]} labelled queries, '
        "ranked as <code>qsearch eval</code> ranks (a file counts where its best passage ranks)"
        f'</small><table class="qs-test-table" style="margin:6px 0"><thead><tr><th '
        f'style="text-align:left;padding:2px 8px">ranking</th>{head}</tr></thead>'
        f'<tbody>{body}</tbody></table><div class="qs-threshold">{html.escape(split)}</div></div>'
    )
