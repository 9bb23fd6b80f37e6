"""The README's front matter is the Space's configuration: it must name and preload the models the
app loads by default (so a restarted Space serves without downloading 2.4 GB first) and the Gradio
the app is pinned to."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from packaging.version import Version

from qsearch.config import DEFAULT_EMBED_MODEL, DEFAULT_RERANK_MODEL

ROOT = Path(__file__).resolve().parents[1]


def front_matter() -> dict:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.match(r"---\n(.*?)\n---\n", text, re.S)
    assert match, "the README starts with the Space's front matter"
    return yaml.safe_load(match.group(1))


def test_the_space_names_and_preloads_the_default_models():
    config = front_matter()
    defaults = [DEFAULT_EMBED_MODEL, DEFAULT_RERANK_MODEL]
    assert config["models"] == defaults
    preloaded = [spec.split()[0] for spec in config["preload_from_hub"]]
    assert preloaded == defaults


def test_the_space_runs_the_app_on_the_pinned_gradio():
    config = front_matter()
    pinned = re.search(r"gradio\[mcp\]>=([\d.]+)", (ROOT / "requirements.txt").read_text())
    assert config["sdk"] == "gradio" and config["app_file"] == "app.py"
    assert pinned and Version(config["sdk_version"]) == Version(pinned.group(1))
