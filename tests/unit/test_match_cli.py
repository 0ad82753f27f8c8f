"""``vk-eci match``: the README's transcripts, run as written, and its edge cases."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "image-cache"


def readme_transcript() -> list[tuple[str, str]]:
    """(command, expected output) pairs of the README's ``vk-eci match`` console block."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("`vk-eci match`\n"):]
    block = re.search(r"```console\n(.*?)```", section, re.S)
    assert block is not None, "the README has no vk-eci match transcript"
    steps: list[tuple[str, str]] = []
    for chunk in re.split(r"^\$ ", block.group(1), flags=re.M)[1:]:
        command, _, output = chunk.partition("\n")
        steps.append((command, output))
    return steps


def shell(command: str, env: dict[str, str] | None = None,
          stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    # `vk-eci` as installed is `python -m vk_eci` of this checkout.
    script = f'vk-eci() {{ "{sys.executable}" -m vk_eci "$@"; }}; {command}'
    return subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, input=stdin, timeout=60)


def test_readme_examples_run_as_written() -> None:
    steps = readme_transcript()
    assert sum(1 for c, _ in steps if c.startswith("vk-eci match")) >= 3
    last: subprocess.CompletedProcess[str] | None = None
    for command, expected in steps:
        if command == "echo $?":
            assert last is not None
            assert f"{last.returncode}\n" == expected, f"exit status of {last.args}"
            continue
        last = shell(command)
        assert last.stdout == expected, command
        assert last.stderr == "", last.stderr
    codes = [int(out) for c, out in steps if c == "echo $?"]
    assert 0 in codes and 1 in codes  # a runnable pod and a blocked one


def match(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return shell("vk-eci match " + " ".join(args), stdin=stdin)


def test_match_count_constraint_and_a_list_from_stdin(tmp_path: Path) -> None:
    manifest = """
apiVersion: v1
kind: List
items:
- apiVersion: batch/v1
  kind: CronJob
  metadata: {name: nightly, namespace: jobs}
  spec:
    schedule: "@daily"
    jobTemplate:
      spec:
        template:
          metadata:
            annotations:
              k8s.aliyun.com/eci-image-cache: "true"
              k8s.aliyun.com/imc-match-count-request: "2"
          spec:
            containers:
            - {name: a, image: "nginx:1.7.9"}
            - {name: b, image: "busybox"}
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: ignored}
"""
    out = match("-f", "-", "--caches-from", str(EXAMPLES / "caches.json"), stdin=manifest)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "CronJob jobs/nightly: 2 image(s), auto image cache"
    assert lines[1].startswith("  1. imc-2zeditzeoemfhqor4rf8 (imagecache-sample): 2/2 images")
    assert len([ln for ln in lines if re.match(r"  \d\. ", ln)]) == 1
    assert any('imc-match-count-request="2": excludes 2 cache(s)' in ln for ln in lines)
    assert lines[-1] == "  => hit: ImageSnapshotId=imc-2zeditzeoemfhqor4rf8 (2/2)"


def test_exported_body_wrapper_and_no_auto_create(tmp_path: Path) -> None:
    caches = json.loads((EXAMPLES / "caches.json").read_text())
    exported = tmp_path / "export.json"
    exported.write_text(json.dumps({"body": caches, "statusCode": 200}))
    out = match("-f", str(EXAMPLES / "perfect-match.yaml"), "--caches-from", str(exported),
                "--no-imagecache-auto-create")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "  => miss: starts without a cache"


@pytest.mark.parametrize(("files", "message"), [
    (("-f", "missing.yaml", "--caches-from", "x"), "missing.yaml: cannot read"),
    (("-f", str(EXAMPLES / "caches.json"), "--caches-from", str(EXAMPLES / "caches.json")),
     "no Pod or workload with a pod template"),
    (("-f", str(EXAMPLES / "deployment.yaml"), "--caches-from",
      str(EXAMPLES / "deployment.yaml")), "expected a DescribeImageCaches answer"),
])
def test_bad_input_exits_2_naming_the_file(files: tuple[str, ...], message: str) -> None:
    out = match(*files)
    assert out.returncode == 2 and message in out.stderr and out.stdout == ""


def test_without_caches_from_the_region_is_required() -> None:
    out = shell(f"vk-eci match -f {EXAMPLES / 'deployment.yaml'}", env={"VK_ECI_REGION": ""})
    assert out.returncode == 2 and "--region" in out.stderr
