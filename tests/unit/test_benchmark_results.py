"""benchmarks/README.md holds only what the benchmark scripts wrote (benchmarks/results/)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import readme  # noqa: E402
from report import Report  # noqa: E402


@pytest.mark.parametrize("page", readme.PAGES, ids=lambda p: p.name)
def test_result_blocks_are_the_written_results(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    assert readme.BLOCK.search(text), f"no results block in {page.name}"
    assert readme.render(text) == text, (
        f"a results block in {page.name} differs from benchmarks/results/: "
        "run `python benchmarks/readme.py` after the benchmark, never edit a table by hand")


@pytest.mark.parametrize("page", readme.PAGES, ids=lambda p: p.name)
def test_pages_have_no_hand_typed_tables(page: Path) -> None:
    stray = readme.stray_tables(page.read_text(encoding="utf-8"))
    assert stray == [], (f"tables in {page.name} must come from a script's results file "
                         "(benchmarks/report.py + a results block):\n" + "\n".join(stray))


def test_a_block_naming_a_missing_result_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="bench_nothing"):
        readme.render("<!-- results: bench_nothing -->\nold\n<!-- /results -->\n", tmp_path)


def test_a_changed_table_is_seen(tmp_path: Path) -> None:
    (tmp_path / "b.md").write_text("| a |\n|---|\n| 1 |\n")
    edited = "<!-- results: b -->\n| a |\n|---|\n| 2 |\n<!-- /results -->\n"
    assert readme.render(edited, tmp_path) != edited
    assert readme.stray_tables("x\n| hand | typed |\n") == ["| hand | typed |"]


def test_goals_are_judged_on_the_printed_figures_and_misses_are_printed() -> None:
    rep = Report("t", command="python x.py")
    rep.table(["p99 ms"], [["7.3"]])
    met = rep.goal("p99", 0.9, "<=", 1, "ms")
    missed = rep.goal("p99 wall", 7.3, "<=", 1, "ms")
    assert met.met and not missed.met and not rep.all_met
    out = rep.render()
    assert "p99 wall: measured 7.3 ms, goal <= 1 ms: **MISSED**" in out
    assert "(1 met, 1 missed)" in out
    assert "Command: `python x.py`" in out and "Load average" in out


def test_the_readme_check_command_passes() -> None:
    """``python3 -m benchmarks.readme --check`` as CI and a contributor run it: a hand edit of
    a pasted table, or a table typed outside a results block, fails here."""
    out = subprocess.run([sys.executable, "-m", "benchmarks.readme", "--check"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def test_every_benchmark_reports_and_is_pasted() -> None:
    """Each ``benchmarks/bench_*.py`` reports through ``Report`` under its own name, its
    results file exists, and a results block of some page shows it."""
    shown = {m.group("name") for page in readme.PAGES
             for m in readme.BLOCK.finditer(page.read_text(encoding="utf-8"))}
    benches = sorted(p.stem for p in (ROOT / "benchmarks").glob("bench_*.py"))
    assert benches
    for name in benches:
        source = (ROOT / "benchmarks" / f"{name}.py").read_text(encoding="utf-8")
        assert f'Report("{name}"' in source, f"{name}.py does not report through Report"
        assert (readme.RESULTS / f"{name}.md").exists(), f"{name}: no results file, run it"
        assert name in shown, f"{name}: no <!-- results: {name} --> block in {readme.PAGES}"


def test_every_page_with_a_results_block_is_checked() -> None:
    """A results block in a page readme.py does not know would never be checked."""
    pages = [*(ROOT / "docs").glob("*.md"), ROOT / "README.md",
             *(ROOT / "benchmarks").glob("*.md")]
    with_blocks = {p.resolve() for p in pages
                   if re.search(r"<!-- results:", p.read_text(encoding="utf-8"))}
    assert with_blocks <= {p.resolve() for p in readme.PAGES}


def test_results_not_tied_to_a_clean_commit_of_the_history_are_listed(tmp_path: Path) -> None:
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.strip()
    runs = {"tied": f"git {head}", "described": f"git v0.1-3-g{head}",
            "dirty": f"git {head}-dirty", "foreign": "git 0123abc", "unknown": "git unknown"}
    for name, rev in runs.items():
        (tmp_path / f"{name}.md").write_text(f"### x\n\nRun: 2026-01-01 00:00 UTC, {rev}  \n")
    (tmp_path / "none.md").write_text("### x\n")
    listed = readme.untied(tmp_path, ROOT)
    assert [line.split(":")[0] for line in listed] == [
        "dirty.md", "foreign.md", "none.md", "unknown.md"]
    assert "dirty tree" in listed[0] and "not in this branch's history" in listed[1]


def test_strict_check_fails_on_untied_results() -> None:
    """Without --strict an untied result is a warning (printed); with it, a failure."""
    strict = subprocess.run([sys.executable, "-m", "benchmarks.readme", "--check", "--strict"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    loose = subprocess.run([sys.executable, "-m", "benchmarks.readme", "--check"],
                           cwd=ROOT, capture_output=True, text=True, timeout=60)
    if readme.untied():
        assert strict.returncode == 1 and "error:" in strict.stderr
        assert loose.returncode == 0 and "warning:" in loose.stderr
    else:
        assert strict.returncode == 0 == loose.returncode


def test_a_run_is_dirty_for_changed_code_not_for_changed_results(tmp_path: Path) -> None:
    """Benchmarks run one after another leave the previous result table changed: that is not
    a change of the code they measure, and a code change is."""
    from report import _git_commit

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "benchmarks" / "results" / "bench_x.md").write_text("old\n")
    (tmp_path / "benchmarks" / "README.md").write_text("old\n")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    clean = _git_commit(tmp_path)
    assert clean and not clean.endswith("-dirty") and clean != "unknown"
    (tmp_path / "benchmarks" / "results" / "bench_x.md").write_text("new\n")
    (tmp_path / "benchmarks" / "README.md").write_text("new\n")
    assert _git_commit(tmp_path) == clean
    (tmp_path / "code.py").write_text("x = 2\n")
    assert _git_commit(tmp_path) == clean + "-dirty"
