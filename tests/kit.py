"""The cluster as tests use it: the CRD, the operator, pools and Services as a user makes them.

Its fixtures are registered once, by the root conftest: a second registration (say, by a
folder's conftest importing them) would make a second session operator that competes.
"""

from __future__ import annotations

import base64
import itertools
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from kubernetes import client, watch

from tests.controlplane import ControlPlane
from tests.operator_process import OperatorProcess

REPO = Path(__file__).resolve().parents[1]
GROUP, VERSION, PLURAL = "lbipam.io", "v1alpha1", "ippools"
SYSTEM = "lbipam-system"
CONDITION = "lbipam.io/AddressAllocated"
# Short enough for a quick failover test, long enough for a loaded 2-core machine.
SHORT_LEASE = {
    "LBIPAM_LEADER_ELECTION": "true",
    "LBIPAM_LEASE_DURATION": "6",
    "LBIPAM_RENEW_DEADLINE": "4",
    "LBIPAM_RETRY_PERIOD": "1",
}
_subnets = itertools.count(1)

Kubectl = Callable[..., subprocess.CompletedProcess[str]]
T = TypeVar("T")


def eventually(
    probe: Callable[[], T | None], *, timeout: float = 15, interval: float = 0.05, what: str = ""
) -> T:
    """Poll `probe` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or probe}; last: {last!r}")


@pytest.fixture(scope="session")
def kubectl(control_plane: ControlPlane) -> Kubectl:
    def run(*args: str, input: str | None = None, check: bool = True) -> Any:
        command = [str(control_plane.kubectl), f"--kubeconfig={control_plane.kubeconfig}", *args]
        result = subprocess.run(command, input=input, capture_output=True, text=True)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
        return result

    return run


@pytest.fixture(scope="session")
def crds(kubectl: Kubectl, control_plane: ControlPlane) -> None:
    kubectl("apply", "-f", str(REPO / "deploy/crds/ippools.yaml"))
    control_plane.wait_established("ippools.lbipam.io")


@pytest.fixture(scope="session")
def installed(kubectl: Kubectl, crds: None) -> None:
    """The base as a cluster admin applies it (the image never runs: there are no nodes)."""
    # A server-side dry run cannot create namespaced objects in a namespace it only pretends
    # to create, so the namespace goes first.
    kubectl("apply", "-f", str(REPO / "deploy/namespace.yaml"))
    dry = kubectl("apply", "-k", str(REPO / "deploy"), "--dry-run=server")
    assert "deployment.apps/lbipam created (server dry run)" in dry.stdout
    kubectl("apply", "-k", str(REPO / "deploy"))


def service_account_kubeconfig(plane: ControlPlane, core: client.CoreV1Api, folder: Path) -> Path:
    """A kubeconfig holding a token of the operator's own ServiceAccount (TokenRequest)."""
    token = service_account_token(core)
    ca = base64.b64encode(plane.pki.ca_cert.read_bytes()).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "test", "cluster": {"server": plane.server, "certificate-authority-data": ca}}
        ],
        "users": [{"name": "lbipam", "user": {"token": token}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "lbipam"}}],
        "current-context": "test",
    }
    path = folder / "lbipam.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="session")
def operator_kubeconfig(
    control_plane: ControlPlane,
    core: client.CoreV1Api,
    installed: None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """Credentials of lbipam's ServiceAccount: its RBAC and guardrails from deploy/ apply."""
    return service_account_kubeconfig(control_plane, core, tmp_path_factory.mktemp("lbipam-sa"))


@pytest.fixture(scope="session")
def operator(control_plane: ControlPlane, operator_kubeconfig: Path) -> Iterator[OperatorProcess]:
    """The shared operator, as deployed: its own ServiceAccount, under the guardrails."""
    process = OperatorProcess(
        control_plane, KUBECONFIG=str(operator_kubeconfig), LBIPAM_NAMESPACE=SYSTEM
    ).start()
    yield process
    # Every write the suite made it do must have passed deploy/guardrails.yaml.
    refused = [line for line in process.logs(10**7).splitlines() if "denied request" in line]
    process.cleanup()
    assert not refused, "the guardrails refused the operator:\n" + "\n".join(refused[:20])


@pytest.fixture
def without_session_operator(operator: OperatorProcess) -> Iterator[None]:
    """A test that runs its own replicas: the shared one steps aside meanwhile."""
    operator.stop()
    yield
    operator.start()


def service_account_token(core: client.CoreV1Api) -> str:
    """A TokenRequest token of the operator's own ServiceAccount, as a kubelet projects one."""
    # A day: the session operator lives as long as the whole suite.
    spec = {"audiences": [], "expirationSeconds": 24 * 3600}
    request = client.AuthenticationV1TokenRequest(spec=spec)
    token: str = core.create_namespaced_service_account_token(
        "lbipam", SYSTEM, request
    ).status.token
    return token


@pytest.fixture
def namespace(core: client.CoreV1Api) -> Iterator[str]:
    """A namespace per test, labelled so that test pools select only their own test."""
    with fresh_namespace(core) as name:
        yield name


@contextmanager
def fresh_namespace(core: client.CoreV1Api) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    meta = client.V1ObjectMeta(name=name, labels={"lbipam-test": name})
    core.create_namespace(client.V1Namespace(metadata=meta))
    try:
        yield name
    finally:
        core.delete_namespace(name)


def subnet() -> str:
    """A /24 no other test uses, so test pools never overlap by accident."""
    n = next(_subnets)
    return f"10.{100 + n // 256}.{n % 256}"


class Pools:
    """Creates IPPools for one test and deletes them afterwards."""

    def __init__(self, custom: client.CustomObjectsApi, namespace: str) -> None:
        self.custom = custom
        self.namespace = namespace
        self.names: list[str] = []

    def create(self, addresses: list[str], name: str | None = None, **spec: Any) -> str:
        name = name or f"{self.namespace}-{len(self.names)}"
        spec.setdefault("namespaceSelector", {"matchLabels": {"lbipam-test": self.namespace}})
        # Stories count every address of their CIDRs; the default that skips IPv4 network
        # and broadcast addresses has stories of its own (test_pools.py).
        spec.setdefault("allowFirstLastIPs", True)
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "IPPool",
            "metadata": {"name": name},
            "spec": {"addresses": addresses, **spec},
        }
        self.custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, body)
        self.names.append(name)
        return name

    def get(self, name: str) -> dict[str, Any]:
        pool: dict[str, Any] = self.custom.get_cluster_custom_object(GROUP, VERSION, PLURAL, name)
        return pool

    def patch(self, name: str, spec: dict[str, Any]) -> None:
        self.custom.patch_cluster_custom_object(GROUP, VERSION, PLURAL, name, {"spec": spec})

    def delete(self, name: str) -> None:
        try:
            self.custom.delete_cluster_custom_object(GROUP, VERSION, PLURAL, name)
        except client.ApiException as error:
            if error.status != 404:
                raise

    def status(self, name: str, **expected: str) -> dict[str, Any]:
        """Wait until the pool's status shows `expected` (e.g. allocated="2")."""

        def shown() -> dict[str, Any] | None:
            status: dict[str, Any] = self.get(name).get("status") or {}
            return status if all(status.get(k) == v for k, v in expected.items()) else None

        return eventually(shown, what=f"IPPool {name} status {expected}")

    def condition(self, name: str, kind: str) -> dict[str, Any]:
        for condition in (self.get(name).get("status") or {}).get("conditions") or []:
            if condition["type"] == kind:
                return dict(condition)
        return {}


@pytest.fixture
def pools(
    custom: client.CustomObjectsApi, namespace: str, operator: OperatorProcess
) -> Iterator[Pools]:
    made = Pools(custom, namespace)
    yield made
    for name in made.names:
        made.delete(name)


def service_manifest(
    name: str,
    *,
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    ports: list[dict[str, Any]] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "annotations": annotations or {}, "labels": labels or {}},
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": name},
            "ports": ports or [{"port": 80, "targetPort": 8080, "protocol": "TCP"}],
            "allocateLoadBalancerNodePorts": False,
            **spec,
        },
    }


def ingress_ips(service: Any) -> list[str]:
    lb = service.status.load_balancer
    return [entry.ip for entry in (lb.ingress or [])] if lb else []


def our_condition(service: Any) -> Any:
    for condition in service.status.conditions or []:
        if condition.type == CONDITION:
            return condition
    return None


def wait_service(
    core: client.CoreV1Api,
    namespace: str,
    name: str,
    predicate: Callable[[Any], bool],
    *,
    timeout: float = 15,
    what: str = "",
) -> Any:
    """Watch one Service until `predicate` holds; returns it. Fails after `timeout` seconds."""
    current = core.read_namespaced_service(name, namespace)
    if predicate(current):
        return current
    stream = watch.Watch()
    for event in stream.stream(
        core.list_namespaced_service,
        namespace,
        field_selector=f"metadata.name={name}",
        resource_version=current.metadata.resource_version,
        timeout_seconds=int(timeout),
    ):
        if event["type"] != "DELETED" and predicate(event["object"]):
            stream.stop()
            return event["object"]
    current = core.read_namespaced_service(name, namespace)
    if predicate(current):
        return current
    raise AssertionError(
        f"Service {namespace}/{name}: timed out waiting for {what or predicate}; "
        f"ingress={ingress_ips(current)} condition={our_condition(current)}"
    )


def wait_address(core: client.CoreV1Api, namespace: str, name: str, count: int = 1) -> list[str]:
    service = wait_service(
        core, namespace, name, lambda s: len(ingress_ips(s)) >= count, what="an address"
    )
    return ingress_ips(service)


def held_since(networking: client.NetworkingV1Api, address: str) -> str | None:
    """When the claim on `address` says its hold after release began; None when it is no hold
    (or, between the delete and the create that make a claim a hold, no claim at all)."""
    try:
        claim = networking.read_ip_address(address)
    except client.ApiException as error:
        if error.status == 404:
            return None
        raise
    return (claim.metadata.annotations or {}).get("lbipam.io/held-since")


def wait_reason(core: client.CoreV1Api, namespace: str, name: str, reason: str) -> Any:
    """Wait for our condition to carry `reason`; returns the condition."""

    def has(service: Any) -> bool:
        condition = our_condition(service)
        return condition is not None and condition.reason == reason

    return our_condition(wait_service(core, namespace, name, has, what=f"reason {reason}"))


def events_for(core: client.CoreV1Api, namespace: str, name: str) -> list[Any]:
    events = core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}")
    return list(events.items)


def wait_event(core: client.CoreV1Api, namespace: str, name: str, reason: str) -> Any:
    def found() -> Any:
        matching = [e for e in events_for(core, namespace, name) if e.reason == reason]
        return matching[0] if matching else None

    return eventually(found, what=f"Event {reason} on {namespace}/{name}")


def create(core: client.CoreV1Api, namespace: str, manifest: dict[str, Any]) -> Any:
    return core.create_namespaced_service(namespace, manifest)


def ip_address(name: str, manager: str, namespace: str, service: str) -> dict[str, Any]:
    """An IPAddress claim (networking.k8s.io/v1) of `manager` on behalf of a Service."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IPAddress",
        "metadata": {"name": name, "labels": {"ipaddress.kubernetes.io/managed-by": manager}},
        "spec": {
            "parentRef": {
                "group": "",
                "resource": "services",
                "namespace": namespace,
                "name": service,
            }
        },
    }


def load_yaml(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def policy(api: client.NetworkingV1Api, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        found = api.read_namespaced_network_policy(name, namespace)
    except client.ApiException as error:
        if error.status == 404:
            return None
        raise
    return dict(api.api_client.sanitize_for_serialization(found))


def wait_policy(
    api: client.NetworkingV1Api, namespace: str, name: str, check: Any = bool, timeout: float = 5
) -> dict[str, Any]:
    return eventually(
        lambda: (p := policy(api, namespace, name)) is not None and check(p) and p,
        timeout=timeout,
        what=f"NetworkPolicy {namespace}/{name}",
    )


def wait_no_policy(api: client.NetworkingV1Api, namespace: str, name: str) -> None:
    eventually(lambda: policy(api, namespace, name) is None, what=f"{name} to be gone")
