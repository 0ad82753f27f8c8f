"""The Dockerfile, checked for its structural facts (no Docker engine on the test machines).

A small parser splits it into instructions (continuations joined, comments dropped) and build
stages; the tests tie it to the rest of the repository: the chart's uid, the package layout,
the console script and the default ports of ``vk-eci run``.
"""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from vk_eci import config

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Instruction:
    keyword: str
    args: str


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARGs (with defaults) and the build stages of a Dockerfile."""
    logical: list[str] = []
    buf = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if buf and line.startswith("#"):
            continue  # comment lines inside a continued instruction are dropped by Docker
        if line.endswith("\\"):
            buf += line[:-1].rstrip() + " "
            continue
        logical.append(buf + line)
        buf = ""
    assert not buf, "Dockerfile ends inside a continued line"
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            m = re.fullmatch(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", args.strip(),
                             re.IGNORECASE)
            assert m, f"cannot parse FROM {args!r}"
            base = re.sub(r"\$\{?(\w+)\}?", lambda v: global_args.get(v.group(1), v.group(0)),
                          m.group(1))
            stages.append(Stage(base=base, name=m.group(2)))
        elif not stages:
            assert keyword == "ARG", f"{keyword} before the first FROM"
            name, _, default = args.strip().partition("=")
            global_args[name] = default
        else:
            stages[-1].instructions.append(Instruction(keyword, args.strip()))
    return global_args, stages


def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    return parse((ROOT / "Dockerfile").read_text(encoding="utf-8"))


def test_every_stage_is_python_3_11_slim_pinned_by_digest() -> None:
    args, stages = dockerfile()
    assert stages, "no FROM in the Dockerfile"
    # The base is an argument (CI builds on a local stand-in), defaulting to the official
    # image pinned by digest, so a user's build is reproducible.
    assert re.fullmatch(r"python:3\.11-slim@sha256:[0-9a-f]{64}", args["PYTHON_IMAGE"]), args
    for stage in stages:
        assert stage.base == args["PYTHON_IMAGE"], stage.base


def test_runtime_stage_runs_as_the_charts_non_root_uid() -> None:
    _, stages = dockerfile()
    final = stages[-1]
    users = final.all("USER")
    assert users, "the runtime stage never drops root"
    user = users[-1].args
    uid, _, gid = user.partition(":")
    # Numeric, so the kubelet can check runAsNonRoot without reading /etc/passwd.
    assert uid.isdigit() and int(uid) != 0, user
    # USER comes after every RUN: nothing runs as root once the user is dropped, and the
    # entrypoint runs as that user.
    keywords = [i.keyword for i in final.instructions]
    assert keywords.index("USER") > max(n for n, k in enumerate(keywords) if k == "RUN")
    assert keywords.index("USER") < keywords.index("ENTRYPOINT")
    values = yaml.safe_load((ROOT / "charts/vk-eci/values.yaml").read_text(encoding="utf-8"))
    assert values["podSecurityContext"]["runAsUser"] == int(uid)
    assert values["podSecurityContext"]["runAsGroup"] == int(gid)
    assert values["podSecurityContext"]["runAsNonRoot"] is True
    # The user is created with that uid.
    created = " ".join(i.args for i in final.all("RUN"))
    assert f"--uid {uid}" in created and f"--gid {gid}" in created


def test_entrypoint_is_vk_eci_run_in_exec_form() -> None:
    _, stages = dockerfile()
    entry = stages[-1].all("ENTRYPOINT")
    assert len(entry) == 1
    argv = json.loads(entry[0].args)  # exec form: signals reach the process, no shell
    assert argv[-2:] == ["vk-eci", "run"], argv
    if len(argv) > 2:
        assert argv[:2] == ["/usr/bin/tini", "--"], argv
        installs = " ".join(i.args for i in stages[-1].all("RUN"))
        assert re.search(r"apt-get install .*\btini\b", installs)
    assert not stages[-1].all("CMD"), "CMD would be appended to vk-eci run as flags"
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["vk-eci"] == "vk_eci.cli:main"


def _dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


def _ignored(path: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(path, p) or path.split("/")[0] == p for p in patterns)


def test_the_copied_sources_are_the_whole_package() -> None:
    _, stages = dockerfile()
    build = stages[0]
    copied: set[str] = set()
    for ins in build.all("COPY"):
        parts = ins.args.split()
        assert not parts[0].startswith("--from"), "the build stage copies from the context"
        for src in parts[:-1]:
            path = src.rstrip("/")
            assert (ROOT / path).exists(), f"COPY {src}: not in the repository"
            assert not _ignored(path, _dockerignore()), f"COPY {src}: excluded by .dockerignore"
            copied.add(path)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["readme"] in copied, "pip needs the readme named in pyproject"
    assert "pyproject.toml" in copied
    # Every package setuptools would find lives under a copied directory.
    includes = project["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {p.parent.relative_to(ROOT).parts[0] for p in ROOT.glob("*/__init__.py")}
    wanted = {p for p in packages if any(fnmatch.fnmatch(p, inc) for inc in includes)}
    assert wanted == {"vk_eci", "matcher"}
    assert wanted <= copied
    # The wheel is built in the first stage and installed, not the sources, in the last.
    assert any("pip wheel" in i.args for i in build.all("RUN"))
    final = stages[-1]
    assert any(i.args.startswith(f"--from={build.name}") for i in final.all("COPY"))
    assert any("pip install" in i.args and "vk-eci" in i.args for i in final.all("RUN"))


def test_exposed_ports_are_the_defaults_of_vk_eci_run() -> None:
    _, stages = dockerfile()
    exposed = {int(p.split("/")[0]) for i in stages[-1].all("EXPOSE") for p in i.args.split()}
    defaults = config.Settings(region="cn-hangzhou", vswitches=("vsw-a",), security_group="sg-1")
    assert exposed == {defaults.kubelet_port, defaults.metrics_host_port[1]}


def test_no_credential_is_baked_into_the_image() -> None:
    _, stages = dockerfile()
    for stage in stages:
        for ins in stage.all("ENV") + stage.all("ARG"):
            assert "ALIBABA_CLOUD" not in ins.args.upper(), ins.args
            assert "SECRET" not in ins.args.upper(), ins.args


def test_parser_joins_continuations_and_names_stages() -> None:
    args, stages = parse("ARG B=img:1\nFROM ${B} AS one\nRUN a \\\n  # note\n  && b\n"
                         "FROM one\nUSER 5\n")
    assert args == {"B": "img:1"}
    assert [(s.base, s.name) for s in stages] == [("img:1", "one"), ("one", None)]
    assert stages[0].all("RUN")[0].args == "a && b"
    assert stages[1].all("USER")[0].args == "5"
