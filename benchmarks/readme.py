"""Pastes each benchmark's written result into ``benchmarks/README.md`` (and the other pages
in :data:`PAGES`, e.g. ``docs/RELIABILITY.md``), unchanged.

The README marks where a result goes with a pair of comments::

    <!-- results: bench_matcher -->
    (replaced by benchmarks/results/bench_matcher.md, as the script wrote it)
    <!-- /results -->

``python benchmarks/readme.py`` rewrites every such block from ``benchmarks/results/``;
``--check`` only reports blocks that differ (the unit test runs the same check), so a table in
the README is always the one a script printed.

``--check`` also ties every result to code: its ``Run:`` line must name a commit that is in this
branch's history, on a clean tree (no ``-dirty``). A result that does not is listed as a
warning; with ``--strict`` (used at a release, after every benchmark was re-run on the released
commit) it fails the check. Nothing is skipped silently: every result is either tied or listed.
"""

from __future__ import annotations

import argparse
import re
import subprocess
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


# "Run: <date> UTC, git <describe>": ``git describe --always --dirty`` gives "abc1234",
# "v1.0-3-gabc1234" or either with "-dirty".
RUN_LINE = re.compile(r"^Run: .*?, git (?P<rev>\S+?)\s*$", re.M)


def untied(results: Path = RESULTS, repo: Path = HERE.parent) -> list[str]:
    """One line per result file not tied to a commit of this history on a clean tree."""
    out = []
    for path in sorted(results.glob("*.md")):
        m = RUN_LINE.search(path.read_text(encoding="utf-8"))
        if m is None:
            out.append(f"{path.name}: no 'Run: …, git <commit>' line")
            continue
        rev = m.group("rev")
        dirty = rev.endswith("-dirty")
        rev = rev.removesuffix("-dirty")
        described = re.search(r"-g([0-9a-f]{7,40})$", rev)
        commit = described.group(1) if described else rev
        if not _in_history(commit, repo):
            out.append(f"{path.name}: commit {commit} is not in this branch's history")
        elif dirty:
            out.append(f"{path.name}: ran on a dirty tree at {commit} (uncommitted changes)")
    return out


def _in_history(commit: str, repo: Path) -> bool:
    if not re.fullmatch(r"[0-9a-f]{7,40}", commit):
        return False
    try:
        done = subprocess.run(["git", "-C", str(repo), "merge-base", "--is-ancestor", commit,
                               "HEAD"], capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def stray_tables(readme: str) -> list[str]:
    """Table rows outside results blocks: tables typed by hand."""
    outside = BLOCK.sub("", readme)
    return [line for line in outside.splitlines() if line.lstrip().startswith("|")]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="report differences, change nothing")
    ap.add_argument("--strict", action="store_true",
                    help="with --check: also fail on results not tied to a commit of this "
                         "history on a clean tree (at a release); otherwise they are warnings")
    args = ap.parse_args()
    failed = 0
    if args.check:
        problems = untied()
        for line in problems:
            print(f"{'error' if args.strict else 'warning'}: {line}", file=sys.stderr)
        if problems:
            print(f"{len(problems)} result file(s) not tied to a commit on a clean tree: re-run "
                  "them on a committed tree" + ("" if args.strict else
                                                " (fails with --strict)"), file=sys.stderr)
            failed = int(args.strict)
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
