"""The manifests in deploy/ install a least-privilege, hardened operator.

A cluster admin runs `kubectl apply -k deploy/` and expects: only the permissions the
operator uses (no wildcards, no secrets), two locked-down replicas that can be scraped
and drained safely, and examples that work against each other.
"""

from __future__ import annotations

import ipaddress
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from lbipam.api import FINALIZER
from lbipam.ipam.registry import PoolState, Registry
from lbipam.ipam.requests import ServiceKey, ServiceRequest
from lbipam.objects import pool_spec
from tests.controlplane import ensure_binaries

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
NAMESPACE = "lbipam-system"
# Files in deploy/ that are not Kubernetes objects.
NOT_OBJECTS = {"kustomization.yaml", "rules.yaml", "rules_test.yaml"}

Obj = dict[str, Any]


def _docs(path: Path) -> list[Obj]:
    with path.open(encoding="utf-8") as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]


def _objects(pattern: str = "*.yaml") -> Iterator[tuple[Path, Obj]]:
    for path in sorted(DEPLOY.glob(pattern)):
        if path.name in NOT_OBJECTS:
            continue
        for doc in _docs(path):
            yield path, doc


def _one(kind: str, name: str | None = None) -> Obj:
    found = [
        obj
        for _, obj in _objects()
        if obj["kind"] == kind and (name is None or obj["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''} in deploy/*.yaml, got {len(found)}"
    return found[0]


def _rules_of(kind: str) -> list[Obj]:
    return [rule for _, obj in _objects() if obj["kind"] == kind for rule in obj["rules"]]


def _grants(rules: list[Obj]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
        for verb in rule.get("verbs", [])
    }


def _container() -> Obj:
    containers = _one("Deployment", "lbipam")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: Obj = containers[0]
    return container


def _kustomization() -> Obj:
    docs = _docs(DEPLOY / "kustomization.yaml")
    assert len(docs) == 1
    return docs[0]


# --- every file ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [p for p in sorted(DEPLOY.rglob("*.yaml")) if p.name not in NOT_OBJECTS],
    ids=lambda p: str(p.relative_to(DEPLOY)),
)
def test_every_manifest_is_a_well_formed_kubernetes_object(path: Path) -> None:
    docs = _docs(path)
    assert docs, f"{path} is empty"
    for doc in docs:
        assert {"apiVersion", "kind", "metadata"} <= doc.keys(), path
        assert doc["metadata"].get("name"), path


def test_namespaced_objects_live_in_the_operator_namespace() -> None:
    cluster_scoped = {
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    }
    for path, obj in _objects():
        if obj["kind"] not in cluster_scoped:
            assert obj["metadata"].get("namespace") == NAMESPACE, f"{path}: {obj['kind']}"
    assert _one("Namespace")["metadata"]["name"] == NAMESPACE
    assert _one("ServiceAccount")["metadata"]["name"] == "lbipam"


# --- RBAC ------------------------------------------------------------------------------


def test_no_role_uses_a_wildcard() -> None:
    for kind in ("ClusterRole", "Role"):
        for rule in _rules_of(kind):
            for field in ("verbs", "resources", "apiGroups", "resourceNames"):
                assert "*" not in rule.get(field, []), f"{kind} rule {rule} has * in {field}"
            assert "nonResourceURLs" not in rule, f"{kind} rule {rule}"


def test_the_operator_cannot_read_secrets() -> None:
    for kind in ("ClusterRole", "Role"):
        for rule in _rules_of(kind):
            assert "secrets" not in rule.get("resources", []), f"{kind} rule {rule}"


def test_cluster_role_grants_exactly_what_the_operator_uses() -> None:
    expected = (
        {("", "services", v) for v in ("get", "list", "watch")}
        | {("", "services/status", v) for v in ("get", "patch", "update")}
        | {("", "namespaces", v) for v in ("get", "list", "watch")}
        | {("", "nodes", v) for v in ("get", "list", "watch")}
        | {("lbipam.io", "ippools", v) for v in ("get", "list", "watch", "patch", "update")}
        | {("lbipam.io", "ippools/status", v) for v in ("get", "patch", "update")}
        | {
            ("networking.k8s.io", "networkpolicies", v)
            for v in ("get", "list", "watch", "create", "update", "patch", "delete")
        }
        | {
            ("networking.k8s.io", "ipaddresses", v)
            for v in ("get", "list", "watch", "create", "delete")
        }
        | {("networking.k8s.io", "servicecidrs", v) for v in ("get", "list", "watch")}
        | {(g, "events", v) for g in ("", "events.k8s.io") for v in ("create", "patch")}
        | {
            ("apiextensions.k8s.io", "customresourcedefinitions", v)
            for v in ("get", "list", "watch")
        }
    )
    assert _grants(_one("ClusterRole", "lbipam")["rules"]) == expected


def test_services_themselves_are_never_written_only_their_status() -> None:
    grants = _grants(_rules_of("ClusterRole"))
    written = {verb for group, res, verb in grants if group == "" and res == "services"}
    assert written == {"get", "list", "watch"}


def test_leader_election_may_only_touch_its_own_lease() -> None:
    role = _one("Role")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert _grants(role["rules"]) == {
        ("coordination.k8s.io", "leases", v) for v in ("get", "update", "create")
    }
    for rule in role["rules"]:
        if rule["verbs"] == ["create"]:
            # resourceNames cannot restrict create: the API server would deny it.
            assert "resourceNames" not in rule
        else:
            assert rule.get("resourceNames") == ["lbipam-leader"], rule


@pytest.mark.parametrize(
    ("binding_kind", "role_kind"),
    [("ClusterRoleBinding", "ClusterRole"), ("RoleBinding", "Role")],
)
def test_roles_are_bound_to_the_operator_service_account(binding_kind: str, role_kind: str) -> None:
    binding = _one(binding_kind)
    role = _one(role_kind)
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": role_kind,
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "lbipam", "namespace": NAMESPACE}
    ]


# --- Deployment ------------------------------------------------------------------------


def test_the_operator_runs_locked_down() -> None:
    pod = _one("Deployment", "lbipam")["spec"]["template"]["spec"]
    sc = _container()["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["runAsUser"] == 65532
    assert sc["runAsGroup"] == 65532
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert sc.get("privileged", False) is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod.get("hostNetwork", False) is False
    assert pod.get("automountServiceAccountToken", True) is True  # it talks to the API


def test_a_read_only_root_still_has_a_writable_tmp() -> None:
    pod = _one("Deployment", "lbipam")["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m["name"] for m in _container()["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]


def test_two_replicas_spread_over_nodes_run_as_the_operator_account() -> None:
    deployment = _one("Deployment", "lbipam")
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 2
    assert pod["serviceAccountName"] == "lbipam"
    assert pod["terminationGracePeriodSeconds"] == 30
    (term,) = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert (
        term["podAffinityTerm"]["labelSelector"]["matchLabels"]
        == deployment["spec"]["selector"]["matchLabels"]
    )


def test_the_image_is_started_with_its_own_entrypoint_and_settings_from_env() -> None:
    container = _container()
    assert container["image"] == "lbipam:latest"
    assert container["args"] == []
    assert "command" not in container
    env = {e["name"]: e for e in container["env"]}
    assert env["LBIPAM_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["LBIPAM_LOG_FORMAT"]["value"] == "json"


def test_probes_hit_the_health_port_and_metrics_are_exposed() -> None:
    container = _container()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": 8080, "health": 8081}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = container[probe]["httpGet"]
        assert get["path"] == path
        assert ports.get(get["port"], get["port"]) == 8081


def test_resources_request_a_little_and_cap_memory() -> None:
    resources = _container()["resources"]
    assert resources["requests"] == {"cpu": "50m", "memory": "192Mi"}
    assert resources["limits"] == {"memory": "384Mi"}


def test_metrics_service_reaches_the_operator_pods_and_invites_scraping() -> None:
    service = _one("Service", "lbipam-metrics")
    pod_labels = _one("Deployment", "lbipam")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (port,) = service["spec"]["ports"]
    assert (port["name"], port["port"]) == ("metrics", 8080)
    assert port["targetPort"] in ("metrics", 8080)
    assert service["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "8080",
        "prometheus.io/path": "/metrics",
    }


def test_a_drain_keeps_one_replica_running() -> None:
    pdb = _one("PodDisruptionBudget")
    pod_labels = _one("Deployment", "lbipam")["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_service_monitor_selects_the_metrics_service() -> None:
    (monitor,) = _docs(DEPLOY / "prometheus" / "servicemonitor.yaml")
    service = _one("Service", "lbipam-metrics")
    assert monitor["kind"] == "ServiceMonitor"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]


# --- kustomization ---------------------------------------------------------------------


def test_kustomization_lists_files_that_exist() -> None:
    resources = _kustomization()["resources"]
    missing = [r for r in resources if not (DEPLOY / r).is_file()]
    assert not missing, f"kustomization.yaml lists missing files: {missing}"


def test_kustomization_installs_the_crd_first_and_every_base_manifest() -> None:
    kustomization = _kustomization()
    resources = kustomization["resources"]
    assert kustomization["namespace"] == NAMESPACE
    assert resources[0] == "crds/ippools.yaml"
    top_level = {p.name for p in DEPLOY.glob("*.yaml")} - NOT_OBJECTS
    assert set(resources) - {"crds/ippools.yaml"} == top_level
    assert not [r for r in resources if r.startswith(("examples/", "prometheus/"))]


def test_users_can_swap_the_image_with_kustomize_edit_set_image() -> None:
    assert _kustomization()["images"] == [
        {"name": "lbipam", "newName": "lbipam", "newTag": "latest"}
    ]


def test_kustomize_renders_the_base_into_the_operator_namespace() -> None:
    kubectl = str(ensure_binaries() / "kubectl")  # the kubectl we build, never a skip
    if not (DEPLOY / "crds" / "ippools.yaml").is_file():
        pytest.fail("deploy/crds/ippools.yaml is missing", pytrace=False)
    result = subprocess.run(
        [kubectl, "kustomize", str(DEPLOY)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rendered = [d for d in yaml.safe_load_all(result.stdout) if d is not None]
    kinds = {d["kind"] for d in rendered}
    assert {
        "CustomResourceDefinition",
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    } <= kinds
    (deployment,) = [d for d in rendered if d["kind"] == "Deployment"]
    assert deployment["metadata"]["namespace"] == NAMESPACE
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "lbipam:latest"


# --- examples --------------------------------------------------------------------------


def _example(kind: str, name: str) -> Obj:
    for path in sorted((DEPLOY / "examples").glob("*.yaml")):
        for doc in _docs(path):
            if doc["kind"] == kind and doc["metadata"]["name"] == name:
                return doc
    raise AssertionError(f"no example {kind} {name}")


def test_example_pools_cover_a_public_a_reserved_and_an_ipv6_pool() -> None:
    public = _example("IPPool", "public")["spec"]
    reserved = _example("IPPool", "reserved")["spec"]
    v6 = _example("IPPool", "public-v6")["spec"]
    assert public == {"addresses": ["192.168.10.0/24"], "exclude": ["192.168.10.1"]}
    assert reserved == {"addresses": ["192.168.20.10-192.168.20.50"], "autoAssign": False}
    assert v6 == {"addresses": ["2001:db8:1::/64"]}
    assert _example("IPPool", "public")["apiVersion"] == "lbipam.io/v1alpha1"


def test_example_fixed_address_can_be_given_by_the_example_public_pool() -> None:
    wanted = ipaddress.ip_address(_example("Service", "sample-lb-fixip")["spec"]["loadBalancerIP"])
    public = _example("IPPool", "public")["spec"]
    assert wanted in ipaddress.ip_network(public["addresses"][0])
    assert str(wanted) not in public["exclude"]


def test_example_services_are_plain_load_balancers_of_the_guide() -> None:
    for name in ("sample-lb", "sample-lb-fixip", "sample-lb-fw"):
        service = _example("Service", name)
        spec = service["spec"]
        assert service["metadata"]["namespace"] == "default"
        assert spec["type"] == "LoadBalancer"
        assert spec["selector"] == {"app": "sample"}
        assert [(p["port"], p["targetPort"], p["protocol"]) for p in spec["ports"]] == [
            (80, 8080, "TCP")
        ]
        assert "allocateLoadBalancerNodePorts" not in spec
        assert "loadBalancerClass" not in spec
    firewalled = _example("Service", "sample-lb-fw")["spec"]
    assert firewalled["loadBalancerSourceRanges"] == ["10.0.0.0/8"]
    # Local keeps the client address, so the NetworkPolicy can match it.
    assert firewalled["externalTrafficPolicy"] == "Local"


def test_example_tenant_pool_reserves_addresses_and_limits_namespaces() -> None:
    reg = Registry()
    protected = {"name": "tenants", "finalizers": [FINALIZER]}
    reg.apply_pool(pool_spec(_example("IPPool", "tenants") | {"metadata": protected}))
    summary = reg.pool_summary("tenants")
    assert (summary.state, summary.reserved, summary.available) == (PoolState.READY, 11, 243)
    web = reg.ensure(ServiceRequest(ServiceKey("shop", "web"), "2026-01-01T00:00:00Z"))
    assert web.addresses == ("192.168.30.5",)
