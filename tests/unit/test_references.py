"""Every reference in the repository points at something its readers have.

Comments, docstrings, docs, chart files and help texts used to cite sections of a product
specification and numbered work items kept outside the repository, which no reader of it can
follow. They point at the docs in ``docs/`` instead (or say what they mean in place). This scans
every tracked text file and names each file and line that still cites one.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Each pattern is written so that this file's own text does not match it.
PATTERNS: dict[str, re.Pattern[str]] = {
    "a section of a specification outside the repository": re.compile(
        r"\bSPEC\b\s*(?:§|[Ss]ection\b)|\bSPEC\.md\b"),
    "a path outside the repository": re.compile(r"\.\./shared\b|/work/share[d]\b"),
    "a numbered issue: say what it asked for, or point at docs/": re.compile(
        r"\bissues?\s*#?\d+", re.IGNORECASE),
    "an ECI reference file outside the repository": re.compile(r"\breference/eci-[\w.-]+\.md"),
}
# Directories a checkout without git metadata may hold that are not part of the repository.
_UNTRACKED_DIRS = {"__pycache__", "_cluster", "_demo", "node_modules"}


def tracked_files(root: Path) -> list[Path]:
    """The repository's files: ``git ls-files``, or a walk of the tree outside a git checkout."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=root, check=True,
                             capture_output=True).stdout
    except (OSError, subprocess.CalledProcessError):
        found = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")
                           and d not in _UNTRACKED_DIRS and not d.endswith(".egg-info")]
            found.extend(Path(dirpath, f) for f in filenames)
        return sorted(found)
    return [root / name for name in out.decode().split("\0") if name]


def _text(path: Path) -> str | None:
    """The file's text, or None for a binary file (or one gone from the work tree)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def findings(paths: Iterable[Path], root: Path) -> list[str]:
    """``path:line: what  |  the line`` for every outside reference in ``paths``."""
    found = []
    for path in paths:
        text = _text(path)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            for what, pattern in PATTERNS.items():
                if pattern.search(line):
                    found.append(f"{path.relative_to(root)}:{number}: {what}  |  "
                                 f"{line.strip()[:120]}")
    return found


def test_no_file_cites_a_specification_section_an_issue_or_a_path_outside_the_repository(
        ) -> None:
    files = tracked_files(ROOT)
    assert len(files) > 100  # the scan saw the repository, not an empty list
    found = findings(files, ROOT)
    assert not found, ("references readers of the repository cannot follow; point at docs/ "
                       "instead:\n" + "\n".join(found))


def test_the_scan_finds_each_kind_of_planted_reference(tmp_path: Path) -> None:
    section = "SPEC" + " §3"
    planted = tmp_path / "planted.py"
    planted.write_text(
        "x = 1\n"
        f"# ranked as {section} says\n"
        '"""Fixed for ' + "Issue" + ' #12 item 3."""\n'
        "# see " + "SPEC" + " section 5\n"
        "# from .." + "/shared/reference\n"
        "# (" + "reference/eci" + "-openapi-wire.md)\n"
        "# the fixes of " + "issues" + " 6 and 10\n", encoding="utf-8")
    found = findings([planted], tmp_path)
    assert [f.split(":", 2)[1] for f in found] == ["2", "3", "4", "5", "6", "7"], found
    assert found[0].startswith("planted.py:2: a section of a specification")
    assert found[1].startswith("planted.py:3: a numbered issue")


def test_the_scan_leaves_ordinary_words_alone(tmp_path: Path) -> None:
    clean = tmp_path / "clean.py"
    clean.write_text(
        "SPEC_TABLE = {}  # the spec table (docs/BEHAVIOUR.md §9)\n"
        "# an issue with the pod spec section of a Deployment; tissue 3; reissue\n"
        "# registry.example.com/shared/app:1 and docs/SECURITY.md §5\n", encoding="utf-8")
    binary = tmp_path / "blob.bin"
    binary.write_bytes(b"\0" + ("SPEC" + " §1").encode())
    assert findings([clean, binary], tmp_path) == []
