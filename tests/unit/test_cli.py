"""The command line a user meets first: help, version, and a bad setting."""

from __future__ import annotations

import pytest

from lbipam import __version__
from lbipam.cli import main


def test_run_help_lists_every_setting_with_its_environment_variable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as done:
        main(["run", "--help"])

    assert done.value.code == 0
    text = capsys.readouterr().out
    for flag, variable in [
        ("--lb-class", "LBIPAM_LB_CLASS"),
        ("--default-class", "LBIPAM_DEFAULT_CLASS"),
        ("--metrics-port", "LBIPAM_METRICS_PORT"),
        ("--health-port", "LBIPAM_HEALTH_PORT"),
        ("--source-ranges", "LBIPAM_SOURCE_RANGES"),
        ("--source-ranges-allow-cluster", "LBIPAM_SOURCE_RANGES_ALLOW_CLUSTER"),
        ("--leader-election", "LBIPAM_LEADER_ELECTION"),
        ("--namespace", "LBIPAM_NAMESPACE"),
        ("--log-format", "LBIPAM_LOG_FORMAT"),
        ("--foreign-annotations", "LBIPAM_FOREIGN_ANNOTATIONS"),
    ]:
        assert flag in text and variable in text


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    assert capsys.readouterr().out.strip() == f"lbipam {__version__}"


def test_a_bad_setting_stops_before_anything_starts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--metrics-port", "none"]) == 2
    assert "invalid setting: LBIPAM_METRICS_PORT='none'" in capsys.readouterr().err
