"""Settings as an operator admin sets them: environment first, flags over it, clear errors."""

from __future__ import annotations

import pytest

from lbipam.settings import Settings, SettingsError


def test_defaults_are_those_of_the_contract() -> None:
    settings = Settings.load({"LBIPAM_NAMESPACE": "lbipam-system"})

    assert settings.lb_class == "lbipam.io/lb"
    assert settings.default_class is True
    assert (settings.metrics_port, settings.health_port) == (8080, 8081)
    assert settings.enforce_source_ranges and settings.source_ranges_allow_cluster
    assert settings.leader_election is True
    assert settings.log_format == "text"
    assert (settings.lease_duration, settings.renew_deadline, settings.retry_period) == (15, 10, 2)
    assert settings.foreign_controllers == ("metallb", "cilium")


@pytest.mark.parametrize(
    ("value", "controllers"),
    [("none", ()), ("", ()), (" Cilium ", ("cilium",)), ("cilium,metallb", ("metallb", "cilium"))],
)
def test_an_admin_chooses_whose_annotations_count(value: str, controllers: tuple[str, ...]) -> None:
    settings = Settings.load({"LBIPAM_FOREIGN_ANNOTATIONS": value})

    assert settings.foreign_controllers == controllers


def test_a_flag_overrides_the_environment() -> None:
    environ = {"LBIPAM_METRICS_PORT": "9000", "LBIPAM_DEFAULT_CLASS": "false"}

    settings = Settings.load(environ, {"metrics_port": "9100"})

    assert settings.metrics_port == 9100
    assert settings.default_class is False


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("LBIPAM_METRICS_PORT", "http", "LBIPAM_METRICS_PORT='http'"),
        ("LBIPAM_HEALTH_PORT", "70000", "expected a port number from 1 to 65535"),
        ("LBIPAM_SOURCE_RANGES", "iptables", "expected one of: networkpolicy, off"),
        ("LBIPAM_LEADER_ELECTION", "maybe", "expected true or false"),
        ("LBIPAM_LOG_FORMAT", "xml", "expected one of: text, json"),
        ("LBIPAM_LB_CLASS", " ", "must not be empty"),
        ("LBIPAM_RETRY_PERIOD", "-1", "expected a positive number of seconds"),
        ("LBIPAM_FOREIGN_ANNOTATIONS", "metallb,kube-vip", "unknown controller kube-vip"),
    ],
)
def test_a_bad_value_is_named_with_what_is_expected(
    variable: str, value: str, message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.load({variable: value})


def test_a_renew_deadline_not_shorter_than_the_lease_is_refused() -> None:
    with pytest.raises(SettingsError, match="must be shorter than LBIPAM_LEASE_DURATION"):
        Settings.load({"LBIPAM_LEASE_DURATION": "10", "LBIPAM_RENEW_DEADLINE": "10"})


def test_without_a_namespace_setting_outside_a_pod_events_go_to_default() -> None:
    assert Settings.load({}).namespace == "default"
