"""Make the mixed office collection the relevance fit uses (bench/weak_match.py), from its
manifest: each file taken unchanged from the test corpus of Apache Tika, Apache POI or odfdo, at
the commit named, none of them among tests/data/formats (its README lists those).

    python bench/office_corpus.py /work/devdata/office

The files stay outside the repository: git mirrors of the three repositories are read with
`git --git-dir=MIRROR show COMMIT:PATH`; `--mirrors` is the folder holding them as
OWNER+NAME/repo (a `git clone --mirror` each). A MANIFEST.tsv (repo, path, commit, licence,
file) is written beside the files.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
from pathlib import Path

MANIFEST = Path(__file__).with_name("office_corpus.tsv")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, help="the folder to fill")
    p.add_argument("--mirrors", type=Path, default=Path("/work/.mirror"))
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = list(csv.DictReader(MANIFEST.open(encoding="utf-8"), delimiter="\t"))
    for row in rows:
        git = args.mirrors / row["repo"].replace("/", "+") / "repo"
        data = subprocess.run(
            ["git", f"--git-dir={git}", "show", f"{row['commit']}:{row['path']}"],
            capture_output=True,
            check=True,
        ).stdout
        name = row["path"].rsplit("/", 1)[-1]
        (args.out / name).write_bytes(data)
        row["file"] = name
    with (args.out / "MANIFEST.tsv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, ["repo", "path", "commit", "licence", "file"], delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} files in {args.out}")


if __name__ == "__main__":
    main()
