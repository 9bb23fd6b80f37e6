"""Installs everywhere: requirements resolve for each platform a user has, with one FAISS.

`faiss-gpu` has wheels for Linux x86_64 only and `faiss-cpu` exists everywhere; both install
the same `faiss` package, so an environment must hold exactly one of them (milvus-lite pulls
faiss-cpu: it lives in requirements-milvus.txt, not beside faiss-gpu). The resolution is uv's
(`uv pip compile --python-platform`), from PyPI, in a throw-away virtualenv: `make
check-platforms`. Slow and needs PyPI; skipped when uv can't be installed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[1]
PLATFORMS = {  # uv's --python-platform -> what the platform is called in the README
    "aarch64-apple-darwin": "macOS arm64",
    "x86_64-unknown-linux-gnu": "Linux x86_64",
    "aarch64-unknown-linux-gnu": "Linux aarch64",
    "x86_64-pc-windows-msvc": "Windows x86_64",
}
FAISS = ("faiss-cpu", "faiss-gpu", "faiss-gpu-cu11", "faiss-gpu-cu12")
PYTHON_FLOOR = "3.11"  # transformers 5.21+ requires it
TORCH = "2.13.0"
# The PyTorch releases ZeroGPU lists (huggingface/hub-docs, docs/hub/spaces-zerogpu.md, "Supported
# Versions", as of hub-docs PR #2763, 2026-09-04). The pin is the newest of them, so that one
# requirements.txt runs on ZeroGPU and on every platform above. Its Linux x86_64 wheel is a CUDA
# 12.x/13.x build, which the `spaces` package needs (spaces 0.51.3, zero/torch/static.py).
ZEROGPU_TORCH = ("2.8.0", "2.9.1", "2.10.0", "2.11.0", "2.12.1", "2.13.0")
OFFLINE = r"failed to fetch|error sending request|dns error|connection refused|timed out"


@pytest.fixture(scope="module")
def uv(tmp_path_factory) -> str:
    """uv from PyPI, in a virtualenv of its own (the project's environment is left alone)."""
    if found := shutil.which("uv"):
        return found
    venv = tmp_path_factory.mktemp("uv-venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = venv / "bin" / "pip"
    if subprocess.run([str(pip), "install", "-q", "uv"], capture_output=True).returncode:
        pytest.skip("uv could not be installed from PyPI (no network?)")
    return str(venv / "bin" / "uv")


def resolve(uv: str, platform: str, *files: str) -> dict[str, str]:
    """{distribution: version} that `files` (requirements files, or pyproject.toml and its
    `--extra`s) resolve to on `platform` under Python 3.11."""
    done = subprocess.run(
        [uv, "pip", "compile", *files, "--python-platform", platform]
        + ["--python-version", PYTHON_FLOOR, "--no-header", "--no-annotate", "-q"]
        + ["--index-url", "https://pypi.org/simple"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "MACOSX_DEPLOYMENT_TARGET": "14.0"},  # torch's macOS wheels: 14+
    )
    if done.returncode and re.search(OFFLINE, done.stderr, flags=re.I):
        pytest.skip(f"PyPI is not reachable: {done.stderr.strip().splitlines()[-1]}")
    assert done.returncode == 0, f"{' '.join(files)} does not resolve on {platform}:\n{done.stderr}"
    pins = re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+)", done.stdout, flags=re.M)
    return {name.lower().replace("_", "-"): version for name, version in pins}


@pytest.mark.slow
@pytest.mark.parametrize("platform", PLATFORMS)
def test_requirements_resolve_with_one_faiss(uv, platform):
    pins = resolve(uv, platform, "requirements.txt")
    faiss = [name for name in pins if name in FAISS]
    want = "faiss-gpu" if platform == "x86_64-unknown-linux-gnu" else "faiss-cpu"
    assert faiss == [want], f"{PLATFORMS[platform]}: FAISS distributions {faiss}, want [{want}]"
    assert pins.get("torch") == TORCH, f"{PLATFORMS[platform]}: torch {pins.get('torch')}"
    assert "milvus-lite" not in pins, "milvus-lite (and its faiss-cpu) is optional"


@pytest.mark.slow
@pytest.mark.parametrize("platform", PLATFORMS)
def test_the_package_resolves_as_the_requirements_do(uv, platform):
    """`pip install "qsearch[app,ocr]"` into an empty environment: pyproject.toml's own
    resolution, one FAISS, a torch in its range (a library pins none); on Linux x86_64 torch's
    CUDA runtime comes with it (ZeroGPU and GPU hosts need it)."""
    pins = resolve(uv, platform, "pyproject.toml", "--extra", "app", "--extra", "ocr")
    faiss = [name for name in pins if name in FAISS]
    want = "faiss-gpu" if platform == "x86_64-unknown-linux-gnu" else "faiss-cpu"
    assert faiss == [want] and pins.get("torch") in torch_range(), (PLATFORMS[platform], pins)
    if platform == "x86_64-unknown-linux-gnu":  # (aarch64's torch 2.13 is a CUDA build too)
        assert any(name.startswith("nvidia-cuda-runtime") for name in pins), sorted(pins)


def torch_range() -> SpecifierSet:
    """pyproject.toml's torch requirement."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (spec,) = [s for s in project["dependencies"] if Requirement(s).name == "torch"]
    return Requirement(spec).specifier


def test_torch_is_pinned_for_spaces_and_a_range_for_a_library():
    """requirements.txt (Spaces, ZeroGPU, `make`) pins the newest release ZeroGPU lists;
    pyproject.toml takes a range holding every release ZeroGPU lists and newer 2.x ones, so that
    `pip install qsearch` keeps the torch a project already has (tests/test_packaging.py)."""
    assert TORCH == max(ZEROGPU_TORCH, key=lambda v: tuple(map(int, v.split("."))))
    assert f"torch=={TORCH}" in (ROOT / "requirements.txt").read_text().splitlines()
    declared = torch_range()
    assert not any(s.operator in ("==", "===", "~=") for s in declared), declared
    assert all(v in declared for v in ZEROGPU_TORCH), declared
    assert "2.14.1" in declared and "3.0.0" not in declared, declared


@pytest.mark.slow
@pytest.mark.parametrize("platform", PLATFORMS)
def test_milvus_extras_bring_no_second_faiss(uv, platform):
    pins = resolve(uv, platform, "requirements.txt", "requirements-milvus.txt")
    faiss = [name for name in pins if name in FAISS]
    assert len(faiss) == 1, f"{PLATFORMS[platform]}: FAISS distributions {faiss}"
    assert "pymilvus" in pins


def test_one_python_floor_everywhere():
    """pyproject's requires-python is the floor the platform check resolves under."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == f">={PYTHON_FLOOR}"
    for name in ("requirements.txt", "requirements-milvus.txt"):
        lines = (ROOT / name).read_text().splitlines()
        specs = [line.split("#")[0].strip() for line in lines]
        faiss = [s for s in specs if s.startswith("faiss")]
        assert all(";" in s for s in faiss), f"{name}: every FAISS line needs a platform marker"


def test_milvus_without_its_optional_packages_says_what_to_install(monkeypatch, tmp_path):
    from qsearch.store.milvus import connect
    from qsearch.store.vectors import IndexFolderError

    monkeypatch.setitem(sys.modules, "milvus_lite", None)  # pymilvus here, Milvus Lite not
    with pytest.raises(IndexFolderError, match=r"needs milvus-lite: .*requirements-milvus\.txt"):
        connect(str(tmp_path / "x.db"))
    monkeypatch.setitem(sys.modules, "pymilvus", None)  # neither
    with pytest.raises(IndexFolderError, match=r"needs pymilvus, .*requirements-milvus\.txt"):
        connect("http://localhost:19530")
