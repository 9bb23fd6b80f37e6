"""Stopping the app: after an upload (which starts a reader process), SIGTERM or Ctrl-C (SIGINT)
leaves no process of the app and frees its port within 10 s, so `make run` can start again."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    """As Gradio checks a port before serving on it: a bind with SO_REUSEADDR."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def sigint_as_in_a_terminal() -> None:
    """In the app's process before exec: SIGINT at its default, as Ctrl-C finds a program started
    in a terminal. A process inherits an ignored SIGINT, and a non-interactive shell ignores it in
    every background job (POSIX: `cmd &` without job control), so a test suite started that way
    would start an app that no Ctrl-C can stop (seen: `bash .ci/run &`, the app alive 20 s after
    SIGINT; under `timeout`, which catches SIGINT, the same test passed)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_app(minilm_dir: Path, port: int, *flags: str) -> subprocess.Popen:
    """`python app.py` on `port` with the small model, no reranker, and `flags`, as a terminal
    starts it (SIGINT at its default); its output on its stdout."""
    command = [sys.executable, "app.py", "--port", str(port), "--embed-model", str(minilm_dir)]
    command += ["--rerank-model", "none/none", "--device", "cpu", *flags]
    return subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=sigint_as_in_a_terminal,
    )


def alive(processes: list[psutil.Process]) -> list[str]:
    found = []
    for p in processes:
        try:
            if p.status() != psutil.STATUS_ZOMBIE:
                found.append(f"{p.pid} {' '.join(p.cmdline()[:4])}")
        except psutil.NoSuchProcess:
            pass
    return found


@pytest.mark.slow  # the app starts in a fresh interpreter: ~15 s idle, a minute on a loaded machine
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stopping_the_app_leaves_no_process_and_frees_the_port(stop, minilm_dir, tmp_path):
    from gradio_client import Client, handle_file

    port = free_port()
    app = start_app(minilm_dir, port)
    children: list[psutil.Process] = []
    try:
        for line in app.stdout:  # the app says where it serves once it is listening
            if "Running on local URL" in line:
                break
        upload = tmp_path / "upload.txt"
        upload.write_text("Lighthouses guide ships at night; a reader process reads this file.")
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        report, *_ = client.predict([handle_file(str(upload))], api_name="/add_documents")
        assert "1 indexed" in report
        children = psutil.Process(app.pid).children(recursive=True)
        assert children, "reading the upload started a reader process"
        client.close()
        app.send_signal(stop)
        started = time.monotonic()
        while time.monotonic() - started < 10 and (
            app.poll() is None or alive(children) or not port_is_free(port)
        ):
            time.sleep(0.1)
        assert app.poll() is not None, "the app is still running 10 s after the signal"
        assert alive(children) == [], "processes of the app outlived it"
        assert port_is_free(port), "the port is still held"
    finally:
        if app.poll() is None:
            app.kill()
        app.wait()
        app.stdout.close()
        for child in children:  # a failed test leaves nothing behind either
            if child.is_running():
                child.kill()
