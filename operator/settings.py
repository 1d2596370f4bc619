"""Operator settings: environment variables, overridden by `lbipam run` flags, checked once."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lbipam.api import FOREIGN_CONTROLLERS

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class SettingsError(ValueError):
    """A setting has a value the operator cannot run with."""


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def parse_port(text: str) -> int:
    port = int(text)
    if not 1 <= port <= 65535:
        raise ValueError("expected a port number from 1 to 65535")
    return port


def parse_seconds(text: str) -> float:
    seconds = float(text)
    if seconds <= 0:
        raise ValueError("expected a positive number of seconds")
    return seconds


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in allowed:
            raise ValueError(f"expected one of: {', '.join(allowed)}")
        return text

    return parse


def _non_empty(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty")
    return text.strip()


def parse_controllers(text: str) -> str:
    """A comma list of other controllers' names, canonical ("metallb,cilium"), or "none"."""
    names = {part.strip().lower() for part in text.split(",") if part.strip()} - {"none"}
    unknown = sorted(names - set(FOREIGN_CONTROLLERS))
    if unknown:
        raise ValueError(
            f"unknown controller {', '.join(unknown)}; expected a comma list of "
            f"{', '.join(FOREIGN_CONTROLLERS)}, or none"
        )
    return ",".join(name for name in FOREIGN_CONTROLLERS if name in names) or "none"


def _setting(default: Any, env: str, parse: Callable[[str], Any], help: str) -> Any:
    return field(default=default, metadata={"env": env, "parse": parse, "help": help})


@dataclass(frozen=True)
class Settings:
    lb_class: str = _setting(
        "lbipam.io/lb", "LBIPAM_LB_CLASS", _non_empty, "spec.loadBalancerClass handled"
    )
    default_class: bool = _setting(
        True, "LBIPAM_DEFAULT_CLASS", parse_bool, "also handle Services with no class"
    )
    # On by default: a user switching from MetalLB or Cilium keeps every Service's requested
    # address, pool and sharing key (without the sharing key, the younger of two Services
    # sharing an address would lose it on the switch). The cost falls on an admin running
    # lbipam beside such a controller: on the Services lbipam handles, it obeys their
    # annotations too; "none" turns that off.
    foreign_annotations: str = _setting(
        ",".join(FOREIGN_CONTROLLERS),
        "LBIPAM_FOREIGN_ANNOTATIONS",
        parse_controllers,
        "honour these controllers' Service annotations (requested addresses, pool, sharing "
        "key, namespaces to share with) as lbipam's own: a comma list of metallb, cilium, "
        "or none. Where an lbipam.io/ annotation asks too, its value is used and the others "
        "must agree (else InvalidRequest). On by default so a switch loses no request; none "
        "when such a controller runs beside lbipam on the same Services",
    )
    metrics_port: int = _setting(8080, "LBIPAM_METRICS_PORT", parse_port, "Prometheus /metrics")
    health_port: int = _setting(
        8081, "LBIPAM_HEALTH_PORT", parse_port, "/healthz (liveness) and /readyz (readiness)"
    )
    source_ranges: str = _setting(
        "networkpolicy",
        "LBIPAM_SOURCE_RANGES",
        _choice("networkpolicy", "off"),
        "enforce loadBalancerSourceRanges with NetworkPolicies (networkpolicy) or not (off)",
    )
    source_ranges_allow_cluster: bool = _setting(
        True,
        "LBIPAM_SOURCE_RANGES_ALLOW_CLUSTER",
        parse_bool,
        "let in-cluster pods through source-range policies",
    )
    address_claims: str = _setting(
        "ipaddress",
        "LBIPAM_ADDRESS_CLAIMS",
        _choice("ipaddress", "off"),
        "claim each handed-out address as a networking.k8s.io/v1 IPAddress, which the API "
        "server keeps unique (ipaddress), or not, for clusters without that API (off)",
    )
    leader_election: bool = _setting(
        True, "LBIPAM_LEADER_ELECTION", parse_bool, "elect one active replica with a Lease"
    )
    namespace: str = _setting(
        "", "LBIPAM_NAMESPACE", str, "namespace of the leader Lease (default: the pod's)"
    )
    log_format: str = _setting(
        "text", "LBIPAM_LOG_FORMAT", _choice("text", "json"), "log line format"
    )
    log_level: str = _setting(
        "info", "LBIPAM_LOG_LEVEL", _choice("debug", "info", "warning", "error"), "log level"
    )
    lease_duration: float = _setting(
        15.0, "LBIPAM_LEASE_DURATION", parse_seconds, "seconds a leader's Lease is valid"
    )
    renew_deadline: float = _setting(
        10.0, "LBIPAM_RENEW_DEADLINE", parse_seconds, "seconds a leader may fail to renew"
    )
    retry_period: float = _setting(
        2.0, "LBIPAM_RETRY_PERIOD", parse_seconds, "seconds between Lease attempts"
    )

    @property
    def enforce_source_ranges(self) -> bool:
        return self.source_ranges == "networkpolicy"

    @property
    def foreign_controllers(self) -> tuple[str, ...]:
        """The other controllers whose annotations count as lbipam's own."""
        return tuple(name for name in self.foreign_annotations.split(",") if name != "none")

    @property
    def claim_addresses(self) -> bool:
        return self.address_claims == "ipaddress"

    @classmethod
    def load(
        cls, environ: Mapping[str, str], overrides: Mapping[str, str | None] | None = None
    ) -> Settings:
        """Read each setting from `overrides` (flags), else `environ`, else its default."""
        values: dict[str, Any] = {}
        for spec in dataclasses.fields(cls):
            env = spec.metadata["env"]
            raw = (overrides or {}).get(spec.name)
            if raw is None:
                raw = environ.get(env)
            if raw is None:
                continue
            try:
                values[spec.name] = spec.metadata["parse"](raw)
            except ValueError as error:
                raise SettingsError(f"{env}={raw!r}: {error}") from None
        settings = cls(**values)
        if settings.renew_deadline >= settings.lease_duration:
            raise SettingsError(
                "LBIPAM_RENEW_DEADLINE must be shorter than LBIPAM_LEASE_DURATION, so a leader "
                "stops acting before its Lease can be taken over"
            )
        if not settings.namespace:
            settings = dataclasses.replace(settings, namespace=_pod_namespace())
        return settings


def _pod_namespace() -> str:
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"
