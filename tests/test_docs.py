"""The documentation: the site builds strictly (a broken page, link or anchor fails), its
configuration page, generated from the settings model and the parsers, names every setting's
`QSEARCH_*` variable and every flag; each CPU class has its plot; and the README stays a page a
newcomer reads in five minutes, with the quick start in its first screen."""

from __future__ import annotations

import argparse
import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from qsearch.config import ServerSettings, Settings

ROOT = Path(__file__).resolve().parents[1]
README_MAX_LINES = 250
FIRST_SCREEN = 50  # lines after the Spaces front matter


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    return out


def _text(page: Path) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", page.read_text(encoding="utf-8")))


def test_the_configuration_page_names_every_setting_and_every_flag(site):
    from qsearch.app_flags import app_parser
    from qsearch.cli_flags import build_parser, generic_help

    page = _text(site / "configuration" / "index.html")
    for cls in (Settings, ServerSettings):
        missing = [
            f"QSEARCH_{n.upper()}" for n in cls.model_fields if f"QSEARCH_{n.upper()}" not in page
        ]
        assert not missing, f"{cls.__name__}: not on the configuration page: {missing}"
    with generic_help():
        parsers = [app_parser(), build_parser(*[lambda a: 0] * 4)]
    flags = {f for p in parsers for sub in _with_subcommands(p) for a in sub._actions
             for f in a.option_strings}  # fmt: skip
    missing = sorted(f for f in flags if f not in page and f not in ("-h", "--help"))
    assert not missing, f"flags not on the configuration page: {missing}"
    assert "on this CPU" not in page, "the docs say what auto does anywhere, not on this machine"


def _with_subcommands(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return [parser] + [p for a in subs for p in a.choices.values()]


def test_a_setting_added_to_the_model_appears_on_the_page():
    """The generator reads the model itself: a field it can't describe stops the build."""
    sys.path.insert(0, str(ROOT / "docs" / "hooks"))
    try:
        import generate
    finally:
        sys.path.remove(str(ROOT / "docs" / "hooks"))
    table = generate._settings_table(Settings)
    assert all(f"`QSEARCH_{n.upper()}`" in table for n in Settings.model_fields)

    class Extended(Settings):
        brand_new_setting: int = 3

    with pytest.raises(ValueError, match="Extended.brand_new_setting has no flag help"):
        generate._settings_table(Extended)


def test_each_cpu_class_has_its_plot_and_the_results_page_is_in_the_site(site):
    classes = sorted((ROOT / "bench" / "results").glob("cpu-class-*.json"))
    assert classes
    for result in classes:
        plot = site / "img" / "generated" / f"{result.stem}.svg"
        assert plot.is_file() and plot.read_text().lstrip().startswith("<?xml"), plot
        assert f"{result.stem}.svg" in (site / "performance" / "index.html").read_text()
    assert "Benchmark results" in _text(site / "benchmarks" / "results" / "index.html")
    assert (site / "assets" / "screenshot.png").is_file()


def _readme_body() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    front = re.match(r"---\n.*?\n---\n", text, re.S)
    assert front, "the README starts with the Space's front matter"
    return text[front.end() :].splitlines()


def test_the_readme_is_short_with_the_quick_start_in_its_first_screen():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"
    first = "\n".join(_readme_body()[:FIRST_SCREEN])
    for step in ("git clone", "make run", "make test", "--embed-model"):
        assert step in first, f"the quick start's {step!r} is not in the README's first screen"


def test_the_readmes_links_into_the_docs_exist():
    links = re.findall(r"\]\((docs/[^)#]+)", "\n".join(_readme_body()))
    assert links, "the README links to the docs"
    missing = [link for link in links if not (ROOT / link).is_file()]
    assert not missing, missing
