"""Pastes each benchmark's written result into ``benchmarks/README.md`` (and the other pages
in :data:`PAGES`, e.g. ``docs/RELIABILITY.md``), unchanged.

The README marks where a result goes with a pair of comments::

    <!-- results: bench_matcher -->
    (replaced by benchmarks/results/bench_matcher.md, as the script wrote it)
    <!-- /results -->

``python benchmarks/readme.py`` rewrites every such block from ``benchmarks/results/``;
``--check`` only reports blocks that differ (the unit test runs the same check), so a table in
the README is always the one a script printed.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
README = HERE / "README.md"
PAGES = (README, HERE.parent / "docs" / "RELIABILITY.md")
RESULTS = HERE / "results"
BLOCK = re.compile(r"(<!-- results: (?P<name>[\w.-]+) -->\n)(?P<body>.*?)(<!-- /results -->)",
                   re.DOTALL)


def render(readme: str, results: Path = RESULTS) -> str:
    """The README with every results block replaced by its file's text."""
    def paste(m: re.Match[str]) -> str:
        path = results / f"{m.group('name')}.md"
        if not path.exists():
            raise FileNotFoundError(f"README names results {m.group('name')!r}, but {path} "
                                    "does not exist: run that benchmark")
        return m.group(1) + path.read_text(encoding="utf-8").rstrip("\n") + "\n" + m.group(4)
    return BLOCK.sub(paste, readme)


def stray_tables(readme: str) -> list[str]:
    """Table rows outside results blocks: tables typed by hand."""
    outside = BLOCK.sub("", readme)
    return [line for line in outside.splitlines() if line.lstrip().startswith("|")]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="report differences, change nothing")
    args = ap.parse_args()
    failed = 0
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        new = render(text)
        if args.check:
            stray = stray_tables(text)
            if new != text or stray:
                print(f"{page.name} differs from benchmarks/results/ (or has {len(stray)} "
                      "hand-typed table rows)", file=sys.stderr)
                failed = 1
            continue
        page.write_text(new, encoding="utf-8")
    return failed


if __name__ == "__main__":
    sys.exit(main())
