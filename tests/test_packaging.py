"""qsearch installs as a package: one pyproject.toml, requirements files that agree with it, and a
wheel that installs into a fresh virtual environment and runs the `qsearch` command.

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
from packaging.utils import canonicalize_name

import qsearch

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _key(spec: str) -> tuple[str, tuple[str, ...], str, str]:
    """A requirement as a comparable value: name, extras, versions, marker (spelling aside)."""
    r = Requirement(spec)
    marker = str(r.marker) if r.marker else ""
    return canonicalize_name(r.name), tuple(sorted(r.extras)), str(r.specifier), marker


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
