"""A public server under a hostile visitor: 20 ordinary sessions search while one visitor uploads
as fast as the app accepts (many small files, then large text files, then many new sessions).
The server, started as `python app.py --limits on --memory-budget-mb N`, must keep its RSS under
the budget, the ordinary sessions' p95 within 2x of the same searches without the hostile
visitor (measured in the same run), and every ordinary session its collection."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest
from test_shutdown import free_port, start_app

import app as qsearch_app

SESSIONS, SEARCHES = 20, 12
QUERIES = ["how do I treat a burn?", "grind size for espresso", "largest volcano", "moons"]
HEADROOM_MB = 100  # the budget: the warm server's RSS plus this, so the visitor reaches it


@contextmanager
def running_app(minilm_dir: Path, *flags: str):
    """(url, pid) of `python app.py` with `flags`, in a process of its own; stopped after."""
    port = free_port()
    app = start_app(minilm_dir, port, "--no-mcp", *flags)
    try:
        for line in app.stdout:
            if "Running on local URL" in line:
                break
        threading.Thread(target=app.stdout.read, daemon=True).start()  # never blocks the app
        yield f"http://127.0.0.1:{port}/", app.pid
    finally:
        app.terminate()
        try:
            app.wait(30)
        except subprocess.TimeoutExpired:
            app.kill()
            app.wait()


def ordinary_session(url: str, n: int):  # noqa: ANN201 - a gradio_client Client
    """A visitor with the samples in its collection (retrying while the upload slots are taken)."""
    from gradio_client import Client, handle_file

    c = Client(url, verbose=False)
    files = [handle_file(str(qsearch_app.SAMPLES / name)) for name in SAMPLE_FILES[n % 2]]
    report, *_ = c.predict(files, api_name="/add_documents")
    assert "2 indexed" in report, report
    return c


SAMPLE_FILES = [
    ("first-aid-basics.txt", "coffee-brewing.html"),
    ("volcanoes-field-guide.pdf", "solar-system.md"),
]


def searches(client, n: int, until: threading.Event | None = None) -> list[float]:
    """SEARCHES timed searches (more, until `until` is set); each must find something."""
    latencies, k = [], 0
    while k < SEARCHES or (until is not None and not until.is_set()):
        started = time.perf_counter()
        hits = json.loads(
            client.predict(query=QUERIES[(n + k) % len(QUERIES)], top_k=3, api_name="/search")
        )
        latencies.append(time.perf_counter() - started)
        assert hits, "every search finds something"
        k += 1
    return latencies


def hostile(url: str, folder: Path) -> dict[str, int]:
    """Uploads as fast as the app takes them: small files, large text files, new sessions.
    Returns what happened to its uploads."""
    from gradio_client import Client, handle_file

    outcome = {"indexed": 0, "refused": 0, "busy": 0}

    def upload(c: Client, paths: list[Path]) -> None:
        report, *_ = c.predict([handle_file(str(p)) for p in paths], api_name="/add_documents")
        outcome["indexed"] += report.count(">indexed<") + int("1 indexed" in report)
        outcome["refused"] += report.count("memory is full")
        outcome["busy"] += int("still being indexed" in report)

    one = Client(url, verbose=False)
    small = sorted(folder.glob("small-*.txt"))
    with ThreadPoolExecutor(2) as pool:  # two at once into one collection: one is turned away
        list(pool.map(lambda i: upload(one, small[i : i + 5]), range(0, len(small), 5)))
    with ThreadPoolExecutor(3) as pool:  # large text files, each in a collection of its own
        list(pool.map(lambda p: upload(Client(url, verbose=False), [p]), folder.glob("large-*")))
    with ThreadPoolExecutor(6) as pool:  # many new sessions
        list(pool.map(lambda i: upload(Client(url, verbose=False), [small[i]]), range(30)))
    return outcome


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))]


@pytest.mark.slow
def test_a_hostile_visitor_starves_nobody_and_the_server_keeps_its_memory_budget(
    minilm_dir, tmp_path
):
    for i in range(40):
        (tmp_path / f"small-{i}.txt").write_text(f"Note {i}. " + "Tide tables and charts. " * 40)
    for i in range(3):  # ~1,500 chunks each
        (tmp_path / f"large-{i}.txt").write_text(
            "\n\n".join(
                f"Paragraph {j} of log {i}: the harbour master records " + "tides " * 150
                for j in range(1_500)
            )  # fmt: skip
        )
    with running_app(minilm_dir) as (url, pid):  # the server's size with the ordinary sessions
        clients = [ordinary_session(url, n) for n in range(SESSIONS)]
        with ThreadPoolExecutor(SESSIONS) as pool:
            list(pool.map(searches, clients, range(SESSIONS)))
        budget_mb = int(psutil.Process(pid).memory_info().rss / 2**20) + HEADROOM_MB

    with running_app(minilm_dir, "--limits", "on", "--memory-budget-mb", str(budget_mb)) as (
        url,
        pid,
    ):
        server, peak, sampling = psutil.Process(pid), [0], threading.Event()

        def sample() -> None:
            while not sampling.is_set():
                peak[0] = max(peak[0], server.memory_info().rss)
                time.sleep(0.05)

        threading.Thread(target=sample, daemon=True).start()
        clients = [ordinary_session(url, n) for n in range(SESSIONS)]
        with ThreadPoolExecutor(SESSIONS) as pool:
            alone = [x for r in pool.map(searches, clients, range(SESSIONS)) for x in r]
        done = threading.Event()
        with ThreadPoolExecutor(SESSIONS + 1) as pool:
            attack = pool.submit(hostile, url, tmp_path)
            attack.add_done_callback(lambda _: done.set())
            jobs = [pool.submit(searches, c, n, done) for n, c in enumerate(clients)]
            under_attack = [x for job in jobs for x in job.result()]
            outcome = attack.result()
        lost = [
            n
            for n, c in enumerate(clients)
            if not json.loads(c.predict(query=QUERIES[n % 2 * 2], top_k=3, api_name="/search"))
        ]
        sampling.set()
    p95_alone, p95_attack = percentile(alone, 0.95), percentile(under_attack, 0.95)
    print(
        f"\nbudget {budget_mb} MB, peak RSS {peak[0] / 2**20:.0f} MB; hostile: {outcome}; "
        f"p95 alone {p95_alone * 1000:.0f} ms over {len(alone)} searches, under attack "
        f"{p95_attack * 1000:.0f} ms over {len(under_attack)} "
        f"(p50 {percentile(alone, 0.5) * 1000:.0f} / {percentile(under_attack, 0.5) * 1000:.0f})"
    )
    assert peak[0] < budget_mb * 2**20, "the server stays under its memory budget"
    assert outcome["refused"] >= 1, "the visitor reached the budget and was told"
    assert lost == [], "no ordinary session lost its collection"
    assert p95_attack <= 2 * p95_alone, (p95_attack, p95_alone)


@pytest.mark.slow
def test_a_small_file_is_not_stuck_behind_two_large_uploads(app_server, tmp_path):
    """Two visitors upload large text files; a third visitor's small file is indexed in seconds,
    not after theirs: uploads run side by side, and the model serves their windows in turn."""
    from gradio_client import Client, handle_file

    _, url = app_server
    for i in range(2):  # ~1,000 chunks each: a minute or more of embedding on 2 cores
        (tmp_path / f"big-{i}.txt").write_text(
            "\n\n".join(
                f"Entry {j}: the archivist notes the shelf marks " + "ledger " * 120
                for j in range(1_000)
            )  # fmt: skip
        )
    small = tmp_path / "note.txt"
    small.write_text("The spare key is under the blue flowerpot by the door.")
    big = [
        Client(url, verbose=False).submit(
            [handle_file(str(tmp_path / f"big-{i}.txt"))], api_name="/add_documents"
        )
        for i in range(2)
    ]
    time.sleep(5)  # both are reading or embedding now
    started = time.perf_counter()
    third = Client(url, verbose=False)
    report, *_ = third.predict([handle_file(str(small))], api_name="/add_documents")
    waited = time.perf_counter() - started
    assert "1 indexed" in report
    assert not all(job.done() for job in big), "the large uploads were still running"
    print(f"\nthe small file took {waited:.1f} s beside two large uploads")
    assert waited < 20, f"the small file waited {waited:.0f} s behind the large ones"
    hits = json.loads(third.predict(query="where is the spare key?", api_name="/search"))
    assert hits[0]["source"] == "note.txt"
    for job in big:
        job.cancel()
