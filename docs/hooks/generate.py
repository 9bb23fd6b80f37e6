"""mkdocs hooks: the parts of the site generated from the repository, so they can't drift from it.

- The configuration page's tables come from the one settings model (`qsearch/config.py`:
  `Settings`, `ServerSettings`) and the parsers that set it (`qsearch/cli_flags.py`,
  `qsearch/app_flags.py`): every setting, its `QSEARCH_*` variable, its flags and its default.
  A setting with neither a flag's help nor a comment in config.py fails the build.
- The performance page's plot per CPU class is drawn from `bench/results/cpu-class-*.json`.
- The screenshot (`assets/screenshot.png`) and `bench/results/README.md` join the site as they are.

A page asks for a generated part with a marker on a line of its own: `<!-- generated: NAME -->`.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
import tempfile
import tokenize
import typing
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

MARKER = re.compile(r"^<!-- generated: ([a-z-]+) -->$", re.M)
RESULTS = ROOT / "bench" / "results"
PLOTS = "img/generated"  # where the plots land in the site
_TMP = tempfile.TemporaryDirectory(prefix="qsearch-docs-")


def on_config(config: Any) -> Any:
    """Import qsearch from this checkout, however mkdocs was started (mkdocs restores sys.path
    after loading a hook, so this is done here rather than at import)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return config


def on_files(files: Any, config: Any) -> Any:
    """Add the screenshot, the benchmark results' README and the drawn plots to the site."""
    from mkdocs.structure.files import File

    generated = Path(_TMP.name)
    (generated / "benchmarks").mkdir(exist_ok=True)
    (generated / "benchmarks" / "results.md").write_text(
        (RESULTS / "README.md").read_text(encoding="utf-8"), encoding="utf-8"
    )
    for plot in _draw_cpu_class_plots(generated / PLOTS):
        files.append(_file(File, plot.relative_to(generated), generated, config))
    files.append(_file(File, Path("benchmarks/results.md"), generated, config))
    files.append(_file(File, Path("assets/screenshot.png"), ROOT, config))
    return files


def _file(file_class: Any, path: Path, src: Path, config: Any) -> Any:
    return file_class(path.as_posix(), str(src), config["site_dir"], config["use_directory_urls"])


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace each `<!-- generated: NAME -->` marker with what NAME generates."""
    return MARKER.sub(lambda m: GENERATORS[m.group(1)](), markdown)


# --- the settings ---------------------------------------------------------------------------


def _parsers() -> dict[str, argparse.ArgumentParser]:
    """{command: parser}: the CLI's subcommands and `python app.py`, with help that says what
    `auto` does anywhere (not what it picked on the machine building the docs)."""
    from qsearch.app_flags import app_parser
    from qsearch.cli_flags import build_parser, generic_help

    def never(args: argparse.Namespace) -> int:
        raise AssertionError("the docs only read the parser")

    with generic_help():
        cli = build_parser(never, never, never, never)
        app = app_parser()
    (sub,) = [a for a in cli._actions if isinstance(a, argparse._SubParsersAction)]
    return {f"qsearch {name}": p for name, p in sub.choices.items()} | {"python app.py": app}


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.option_strings and a.dest != "help"]


def _help(action: argparse.Action) -> str:
    return (action.help or "").replace("%%", "%")


def _field_comments(cls_name: str) -> dict[str, str]:
    """{field: its comment in config.py}: on the field's line, else the comment lines above it."""
    import ast

    source = (ROOT / "qsearch" / "config.py").read_text(encoding="utf-8")
    comments: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("# ").strip()
    lines = source.splitlines()
    classes = [n for n in ast.parse(source).body if getattr(n, "name", "") == cls_name]
    found: dict[str, str] = {}
    for node in classes[0].body if classes else []:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            said = comments.get(node.lineno, "")
            above, line = [], node.lineno - 1
            while not said and line >= 1 and lines[line - 1].strip().startswith("#"):
                above.insert(0, comments[line])
                line -= 1
            found[node.target.id] = said or " ".join(above)
    return found


def _default(cls: type, name: str) -> str:
    from qsearch.web.limits import MEMORY_SHARE, PUBLIC

    field = cls.model_fields[name]
    value = field.default
    if name == "memory_budget_mb":
        return f"unbounded; public: {MEMORY_SHARE:.0%} of the machine's memory"
    if name in PUBLIC:
        return f"unbounded; public: {PUBLIC[name]:,}"
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"`{value}`" if not isinstance(value, (int, float)) else f"{value:,g}"


def _choices(cls: type, name: str) -> str:
    annotation = cls.model_fields[name].annotation
    if typing.get_origin(annotation) is typing.Literal:
        return " One of " + ", ".join(f"`{c}`" for c in typing.get_args(annotation)) + "."
    return ""


def _reads(command: str) -> tuple[type, ...]:
    """The settings models a command's flags set: the CLI's, Settings; the app's, both."""
    from qsearch.config import ServerSettings, Settings

    return (Settings, ServerSettings) if command == "python app.py" else (Settings,)


def _settings_table(cls: type) -> str:
    """One row per field of `cls`: its variable, the flags that set it, its default, meaning."""
    flags: dict[str, dict[str, list[str]]] = {}  # setting -> flag -> commands
    helps: dict[str, str] = {}
    for command, parser in _parsers().items():
        if not issubclass(cls, _reads(command)):
            continue
        for action in _options(parser):
            flag = action.option_strings[-1]
            flags.setdefault(action.dest, {}).setdefault(flag, []).append(command)
            helps.setdefault(action.dest, _help(action))
    comments = {}
    for klass in reversed(cls.__mro__):  # a subclass's own comments over its bases'
        comments |= _field_comments(klass.__name__)
    rows = ["| variable | flag | default | what it sets |", "| --- | --- | --- | --- |"]
    for name in cls.model_fields:
        meaning = helps.get(name) or comments.get(name)
        if not meaning:
            raise ValueError(f"{cls.__name__}.{name} has no flag help and no comment to show")
        where = "<br>".join(
            f"`{flag}` ({', '.join(_short_command(c) for c in commands)})"
            for flag, commands in flags.get(name, {}).items()
        )
        rows.append(
            f"| `QSEARCH_{name.upper()}` | {where or 'variable only'} | {_default(cls, name)} | "
            f"{_cell(meaning.rstrip('.') + '.' + _choices(cls, name))} |"
        )
    return "\n".join(rows)


def _short_command(command: str) -> str:
    return command.removeprefix("qsearch ") if command.startswith("qsearch ") else "app"


def _flag_tables() -> str:
    """Every flag of every command, as `--help` says it."""

    out = []
    for command, parser in _parsers().items():
        settings = {name for model in _reads(command) for name in model.model_fields}
        out += [f"### `{command}`", "", _cell(parser.description or ""), ""]
        out += ["| flag | what it does | setting |", "| --- | --- | --- |"]
        for action in _options(parser):
            names = ", ".join(f"`{s}`" for s in action.option_strings)
            metavar = f" `{action.metavar}`" if action.metavar else ""
            if action.choices and not action.metavar:
                metavar = " `{" + ",".join(map(str, action.choices)) + "}`"
            setting = f"`QSEARCH_{action.dest.upper()}`" if action.dest in settings else ""
            out.append(f"| {names}{metavar} | {_cell(_help(action))} | {setting} |")
        positional = [a for a in parser._actions if not a.option_strings]
        if positional:
            said = "; ".join(f"`{a.metavar or a.dest}`: {_help(a)}" for a in positional)
            out += ["", f"Arguments: {_cell(said)}"]
        out.append("")
    return "\n".join(out)


def _cell(text: str) -> str:
    """`text` as one Markdown table cell: pipes and asterisks escaped, on one line."""
    return text.replace("|", "\\|").replace("*", "\\*").replace("\n", " ")


# --- the plots ------------------------------------------------------------------------------

PRECISIONS = ("float32", "bfloat16", "int8", "int8+bf16")


def _cpu_classes() -> list[tuple[Path, dict]]:
    return [(p, json.loads(p.read_text())) for p in sorted(RESULTS.glob("cpu-class-*.json"))]


def _draw_cpu_class_plots(folder: Path) -> list[Path]:
    """One bar chart per CPU class: each precision's speed against fp32 (fastest round and
    median) on the whole model, the race's pick marked, the class's contract as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    drawn = []
    for path, result in _cpu_classes():
        fastest, median = result["ratio_vs_fp32"], result["ratio_vs_fp32_median"]
        shown = [p for p in PRECISIONS if p in fastest]
        fig, ax = plt.subplots(figsize=(6.4, 3.2), dpi=100)
        xs = range(len(shown))
        ax.bar([x - 0.2 for x in xs], [fastest[p] for p in shown], 0.4, label="fastest round")
        ax.bar([x + 0.2 for x in xs], [median[p] for p in shown], 0.4, label="median round")
        target = result["contract"]["target_vs_fp32"]
        top = max([*fastest.values(), *median.values(), target])
        ax.set_ylim(0, top * 1.2)
        ax.axhline(target, color="grey", linestyle="--", linewidth=1)
        ax.text(len(shown) - 0.5, target, f" goal {target}×", va="bottom", ha="right")
        labels = [p + (" (picked)" if p == result["cpu_default"] else "") for p in shown]
        ax.set_xticks(list(xs), labels)
        ax.set_ylabel("× float32 (higher is faster)")
        ax.set_title(f"{_class_name(path, result)}: embedding speed by precision")
        ax.legend(loc="upper left", fontsize="small")
        fig.tight_layout()
        out = folder / f"{path.stem}.svg"
        fig.savefig(out, format="svg", metadata={"Date": None})
        plt.close(fig)
        drawn.append(out)
    return drawn


def _class_name(path: Path, result: dict) -> str:
    caps = result.get("isa_caps") or {}
    said = result["contract"]["class"]
    return f"{said} (emulated by caps)" if caps else said


def _cpu_class_figures() -> str:
    out = []
    for path, result in _cpu_classes():
        name, contract = _class_name(path, result), result["contract"]
        reached = "reached" if contract["reached"] else f"short by {contract['short_by']:.2f}×"
        caps = result.get("isa_caps") or {}
        capped = ", ".join(f"`{k}={v}`" for k, v in caps.items()) or "none: the CPU as it is"
        out += [
            f"![{name}: speed of each precision against float32]({PLOTS}/{path.stem}.svg)",
            "",
            f"*{name}* — caps: {capped}. `auto` picked **{result['cpu_default']}**: "
            f"{result['ratio_cpu_default_vs_fp32']:.2f}× float32 by fastest round "
            f"({result['ratio_cpu_default_vs_fp32_median']:.2f}× by median); the goal, "
            f"{contract['target_vs_fp32']}×, {reached}. Source: `bench/results/{path.name}`.",
            "",
        ]
    return "\n".join(out)


def _settings() -> str:
    from qsearch.config import Settings

    return _settings_table(Settings)


def _server_settings() -> str:
    from qsearch.config import ServerSettings

    return _settings_table(ServerSettings)


def _formats() -> str:
    from qsearch.documents.formats import describe

    where = "`qsearch/documents/formats.py` (the upload box and `--help` show it too)"
    return f"The one list, {where}: {describe()}."


GENERATORS = {
    "formats": _formats,
    "settings": _settings,
    "server-settings": _server_settings,
    "flags": _flag_tables,
    "cpu-class-plots": _cpu_class_figures,
}
