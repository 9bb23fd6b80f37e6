"""The limits of a public server, piece by piece: when they are on, the rate limiter, who a client
is, the memory budget, the sessions that leave memory to make room, the data folder's quota, the
files handed out, and the fair model lock."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from qsearch import Engine, Library, Settings
from qsearch.config import ServerSettings
from qsearch.types import Chunk
from qsearch.web.api_guard import RateLimiter
from qsearch.web.clients import client_address
from qsearch.web.keeping import CollectionStore
from qsearch.web.limits import PUBLIC, ServerLimits, machine_memory
from qsearch.web.memory import MemoryBudget, MemoryFull, chunk_bytes
from qsearch.web.model_lock import ModelLock
from qsearch.web.scratch import Scratch
from qsearch.web.sessions import EVICTABLE_AFTER, Busy, Sessions, TooManySessions

# --- when the limits are on -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("server", "env", "public"),
    [
        (ServerSettings(), {}, False),
        (ServerSettings(host="127.0.0.1"), {}, False),
        (ServerSettings(host="localhost"), {}, False),
        (ServerSettings(share=True), {}, True),
        (ServerSettings(host="0.0.0.0"), {}, True),
        (ServerSettings(), {"SPACE_ID": "someone/qsearch"}, True),
        (ServerSettings(), {"GRADIO_SERVER_NAME": "0.0.0.0"}, True),
    ],
)
def test_the_limits_are_on_by_default_exactly_when_the_server_is_public(server, env, public):
    limits = ServerLimits.resolve(server, env)
    assert (limits.public, limits.on) == (public, public)
    if public:
        assert limits.memory_budget_mb == int(0.75 * machine_memory() / 2**20)
        assert limits.api_per_minute == PUBLIC["api_per_minute"]
        assert limits.data_quota_mb == PUBLIC["data_quota_mb"]
        assert "Public server, limits on" in limits.summary()
    else:
        assert (limits.memory_budget_mb, limits.api_per_minute, limits.data_quota_mb) == (None,) * 3
        assert limits.summary() == "no server-wide limits (a private server)"


def test_a_limit_given_applies_whether_the_limits_are_on_or_off():
    off = ServerLimits.resolve(ServerSettings(share=True, limits="off", api_per_minute=7), {})
    assert off.public and not off.on
    assert (off.api_per_minute, off.memory_budget_mb, off.api_max_chars) == (7, None, None)
    on = ServerLimits.resolve(ServerSettings(limits="on", memory_budget_mb=900), {})
    assert on.on and not on.public and on.memory_budget_mb == 900
    assert on.request_max_kb == PUBLIC["request_max_kb"]


def test_every_limit_comes_from_a_flag_or_its_variable(monkeypatch):
    from qsearch.app_flags import parse_app_args

    monkeypatch.setenv("QSEARCH_API_PER_MINUTE", "9")
    monkeypatch.setenv("QSEARCH_AUTH", "ada:secret")
    args, _ = parse_app_args(["--share", "--memory-budget-mb", "900", "--uploads-at-once", "2"])
    limits = ServerLimits.resolve(args.server, {})
    assert (limits.public, limits.on, limits.memory_budget_mb) == (True, True, 900)
    assert (limits.api_per_minute, limits.uploads_at_once, args.auth) == (9, 2, "ada:secret")
    off, _ = parse_app_args(["--share", "--limits", "off"])
    assert not ServerLimits.resolve(off.server, {}).on


def test_a_bad_limit_is_refused_naming_it():
    with pytest.raises(ValueError, match="memory_budget_mb"):
        ServerSettings(memory_budget_mb=0)
    with pytest.raises(ValueError, match="limits must be one of 'auto', 'on', 'off'"):
        ServerSettings(limits="maybe")
    with pytest.raises(ValueError, match=r"auth must be of the form USER:PASSWORD, got '…'"):
        ServerSettings(auth="no-colon-secret")


# --- the rate limiter and who a client is ----------------------------------------------------


def test_the_rate_limiter_lets_a_client_through_per_window_and_says_how_long_to_wait():
    rate = RateLimiter(3, window_seconds=2)  # 3 a minute, in a 2 s window so the test is short
    started = time.time()
    assert [rate.wait_seconds("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = rate.wait_seconds("a")
    assert 0 < wait <= 2 and wait >= 2 - (time.time() - started) - 0.05, (
        "the fourth waits until the first leaves the window"
    )
    assert rate.wait_seconds("b") == 0.0, "each client has its own allowance"
    time.sleep(wait + 0.05)
    assert rate.wait_seconds("a") == 0.0, "a request left the window: one more may go"
    time.sleep(2.1)
    assert [rate.wait_seconds("a") for _ in range(4)][-1] > 0, "a long pause allows 3, not more"
    with pytest.raises(ValueError, match="at least 1 request, got 0"):
        RateLimiter(0)


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("93.184.216.34", None, "93.184.216.34"),
        ("93.184.216.34", "10.0.0.1", "93.184.216.34"),  # a client's own header is not believed
        ("127.0.0.1", "198.51.100.7", "198.51.100.7"),  # the share link's tunnel, Spaces' proxy
        ("10.1.2.3", "forged, 198.51.100.7", "198.51.100.7"),  # the proxy's entry comes last
        (None, None, "unknown"),
    ],
)
def test_a_client_is_the_address_the_nearest_proxy_saw(peer, forwarded, client):
    assert client_address(peer, forwarded) == client


# --- the memory budget ---------------------------------------------------------------------


def _chunks(n: int, text: str = "x" * 1000) -> list[Chunk]:
    return [Chunk("d", "s", text, 0, len(text)) for _ in range(n)]


def test_the_budget_admits_what_fits_frees_idle_collections_then_refuses():
    rss = [850 * 2**20]  # the ceiling: the budget less 5% (50 MB) for work in flight
    collections = [50 * 2**20, 50 * 2**20]  # what each idle collection frees when it leaves

    def evict_one() -> bool:
        if not collections:
            return False
        rss[0] -= collections.pop()
        return True

    budget = MemoryBudget(1000, evict_one, rss=lambda: rss[0])
    small = _chunks(100)  # ~1.2 MB
    with budget.run():
        budget.admit(small, 384)
        assert budget._reserved == chunk_bytes(small, 384) and len(collections) == 2
        budget.admit(_chunks(16_000), 384)  # ~185 MB: both idle collections leave first
        assert collections == []
        with pytest.raises(MemoryFull, match="the server's memory is full"):
            budget.admit(_chunks(20_000), 384)
        reserved = budget._reserved
        budget.admit_text(100_000, 384)  # chunking 100k characters fits, and reserves nothing
        assert budget._reserved == reserved
        with pytest.raises(MemoryFull):
            budget.admit_text(5_000_000, 384)  # chunking 5M characters needs ~170 MB
    assert budget._reserved == 0, "a run's reservations end with it"


def test_an_engine_refuses_the_file_the_budget_refuses_and_adds_the_rest(minilm, tmp_path):
    refused, asked = [], []

    class Budget:  # refuses by content, once a file is chunked
        def admit_text(self, chars: int, dim: int) -> None:
            asked.append(chars)

        def admit(self, chunks, dim: int) -> None:
            if any("rejected" in c.text for c in chunks):
                refused.append(len(chunks))
                raise MemoryFull("", "not added: the server's memory is full")

    engine = Engine(Settings(embed_model=minilm.model_name), embedder=minilm, admit=Budget())
    (tmp_path / "a.txt").write_text("A file the server has room for.")
    (tmp_path / "b.txt").write_text("A rejected file the server has no room for.")
    report = engine.add_files(sorted(tmp_path.iterdir()))
    assert [f.status for f in report.files] == ["indexed", "error"] and refused == [1]
    texts = [p.read_text() for p in sorted(tmp_path.iterdir())]
    assert asked == [len(t) for t in texts], "each document's length was asked before chunking"
    assert report.files[1].error == "not added: the server's memory is full"
    assert [d.source for d in engine.documents()] == [str(tmp_path / "a.txt")]


# --- sessions: tokens minted on load, leaving memory to make room ------------------------------


def _sessions(now: list[float], **kwargs) -> tuple[Sessions, list[Engine]]:
    made: list[Engine] = []
    sessions = Sessions(
        lambda: made.append(Engine(Settings())) or made[-1], clock=lambda: now[0], **kwargs
    )
    return sessions, made


def test_a_token_minted_on_load_becomes_the_collections_token_and_forged_ones_do_not():
    sessions, _ = _sessions([0.0])
    minted = sessions.mint()
    assert sessions.find(minted) is None and len(sessions) == 0, "minting keeps nothing"
    token, session = sessions.open(minted)
    assert token == minted and sessions.peek(minted) is session
    forged = minted[:22] + "A" * 21
    assert sessions.open(forged)[0] not in (forged, minted), "only tokens minted here open"


def test_the_least_recently_used_idle_collection_leaves_memory_first_and_its_visitor_is_told():
    now = [0.0]
    sessions, _ = _sessions(now, max_sessions=2)
    old, _ = sessions.open(None)
    now[0] += 10
    busy, busy_session = sessions.open(None)
    now[0] += EVICTABLE_AFTER
    with sessions.indexing(busy_session, "client"):
        assert sessions.evict_one() and sessions.peek(old) is None, "the oldest idle one left"
        assert not sessions.evict_one(), "a collection being indexed never leaves"
    assert "freed to make room for other visitors" in sessions.why_gone(old)
    assert sessions.why_gone(busy) is None


def test_a_full_registry_makes_room_from_idle_collections_before_refusing():
    now = [0.0]
    sessions, _ = _sessions(now, max_sessions=2)
    first, _ = sessions.open(None)
    now[0] += 1
    sessions.open(None)
    with pytest.raises(TooManySessions):
        sessions.open(None)  # both used just now: none may leave
    now[0] += EVICTABLE_AFTER
    third, _ = sessions.open(None)
    assert len(sessions) == 2 and sessions.peek(first) is None and sessions.peek(third)


def test_one_upload_per_collection_and_per_client_as_many_as_allowed():
    sessions, _ = _sessions([0.0], uploads_per_client=1)
    _, a = sessions.open(None)
    _, b = sessions.open(None)
    with sessions.indexing(a, "93.184.216.34") as run:
        run.stage, run.done, run.total = "embedding", 3, 10
        with pytest.raises(Busy, match="still being indexed into this collection"):
            with sessions.indexing(a, "198.51.100.7"):
                pass
        with pytest.raises(Busy, match="You have 1 upload being indexed"):
            with sessions.indexing(b, "93.184.216.34"):
                pass
        with sessions.indexing(b, "198.51.100.7"):
            assert a.indexing.describe() == "embedding 3/10"
    assert a.indexing is None and b.indexing is None


# --- the data folder's quota -----------------------------------------------------------------


def test_the_data_folder_keeps_within_its_quota_dropping_the_oldest_first(minilm, tmp_path):
    def engine_with(text: str) -> Library:
        library = Library(lambda: Engine(Settings(embed_model=minilm.model_name), embedder=minilm))
        (tmp_path / "in").mkdir(exist_ok=True)
        (tmp_path / "in" / "doc.txt").write_text(text)
        library.engine().add_files([tmp_path / "in" / "doc.txt"])
        return library

    store = CollectionStore(tmp_path / "data", idle_seconds=3600)
    tokens = [f"token-{i:02d}-" + "x" * 30 for i in range(3)]
    assert store.save(tokens[0], engine_with("First collection. " * 50)) == ""
    one = store.usage()
    store.quota = int(2.5 * one)  # room for two
    for i, token in enumerate(tokens[1:], 1):
        time.sleep(0.05)  # distinct last-used times
        assert store.save(token, engine_with(f"Collection {i}. " * 50)) == ""
    assert store.usage() <= store.quota
    kept = {t for t in tokens if (store._folder(t) / "library.json").is_file()}
    assert kept == set(tokens[1:]), "the collection used longest ago went first"
    store.quota = one // 2
    why = store.save(tokens[2], engine_with("Too big for the whole quota. " * 50))
    assert why.startswith("not kept on disk: your collections take")
    assert not store._folder(tokens[2]).exists(), "nothing half-kept"


# --- files handed out ----------------------------------------------------------------------


def test_handed_out_files_are_deleted_when_old_at_exit_and_after_a_crash(tmp_path):
    scratch = Scratch(keep_seconds=60, parent=str(tmp_path))
    folder = scratch.folder("results-")
    (folder / "results.json").write_text("{}")
    assert scratch.sweep(now=time.time() + 30) == 0 and folder.exists()
    assert scratch.sweep(now=time.time() + 61) == 1 and not folder.exists()
    scratch.close()
    assert not scratch.root.exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], text=True,
                          capture_output=True, check=True).stdout.strip()  # fmt: skip
    orphan = tmp_path / f"qsearch-files-{dead}-abc"
    orphan.mkdir()
    alive = tmp_path / f"qsearch-files-{os.getpid()}-def"
    alive.mkdir()
    Scratch(parent=str(tmp_path)).close()
    assert not orphan.exists() and alive.exists(), "only a dead process's folder is removed"


# --- the model lock --------------------------------------------------------------------------


def test_the_model_lock_serves_short_calls_first_and_windows_in_turn():
    lock, order, started = ModelLock(), [], []

    def take(name: str, urgent: bool) -> None:
        started.append(name)
        with lock.hold(urgent):
            order.append(name)

    with lock.hold(urgent=False):  # a window runs; others ask meanwhile, in this order
        threads = []
        for name, urgent in (("w1", False), ("w2", False), ("query", True), ("w3", False)):
            threads.append(threading.Thread(target=take, args=(name, urgent)))
            threads[-1].start()
            while len(started) < len(threads):
                time.sleep(0.01)
            time.sleep(0.05)  # it is waiting now
    for t in threads:
        t.join(10)
    assert order == ["query", "w1", "w2", "w3"], order


def test_a_window_waits_for_short_calls_only_so_long():
    now = [0.0]
    lock = ModelLock(clock=lambda: now[0])
    lock._urgent = 1  # a short call waits, forever
    went = threading.Event()

    def window() -> None:
        with lock.hold(urgent=False):
            went.set()

    thread = threading.Thread(target=window)
    thread.start()
    assert not went.wait(0.3), "a window waits while a short call does"
    now[0] += 2.5  # past MAX_DEFER
    assert went.wait(5), "then it goes anyway"
    thread.join()
