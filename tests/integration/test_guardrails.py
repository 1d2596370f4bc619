"""The API server confines what lbipam's ServiceAccount may write (deploy/guardrails.yaml).

Each story below is a write a compromised or buggy lbipam could make with the RBAC it has.
Made with the ServiceAccount's own token, each is refused with its rule's message; made with
that rule taken out of the policy, it goes through; made by a cluster admin, it always does.
The writes lbipam really makes pass: the whole suite runs its session operator under these
guardrails (tests/kit.py), and its teardown fails on any refusal in the operator's log.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from tests.controlplane import ControlPlane
from tests.kit import (
    REPO,
    SYSTEM,
    Kubectl,
    Pools,
    create,
    eventually,
    fresh_namespace,
    ingress_ips,
    ip_address,
    our_condition,
    service_manifest,
    subnet,
    wait_service,
)
from tests.operator_process import OperatorProcess

pytestmark = pytest.mark.cluster

GUARDRAILS = REPO / "deploy" / "guardrails.yaml"
MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
ADDRESSES = ("networking.k8s.io", "v1", "ipaddresses")
POOLS = ("lbipam.io", "v1alpha1", "ippools")
FOREIGN = {
    "type": "example.com/Healthy",
    "status": "True",
    "reason": "Probed",
    "message": "set by another controller",
    "lastTransitionTime": "2026-01-01T00:00:00Z",
}
_addresses = itertools.count(10)


def policies() -> dict[str, dict[str, Any]]:
    """The ValidatingAdmissionPolicies of deploy/guardrails.yaml by name."""
    docs = [d for d in yaml.safe_load_all(GUARDRAILS.read_text()) if d]
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == "ValidatingAdmissionPolicy"}


class Clients:
    """The API as one identity sees it; every write can be a server-side dry run."""

    def __init__(self, api: client.ApiClient) -> None:
        self.core = client.CoreV1Api(api)
        self.networking = client.NetworkingV1Api(api)
        self.custom = client.CustomObjectsApi(api)


@dataclass
class Scene:
    """Objects lbipam does not own, made by the admin, next to one it does."""

    namespace: str
    pool: str
    foreign_claim: str  # an IPAddress another allocator holds
    squat: str  # a free address lbipam might claim in another's name


def network_policy(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
    }


Write = Callable[[Clients, Scene, str | None], Any]  # clients, scene, dry run or None


@dataclass(frozen=True)
class Forbidden:
    """A write lbipam's RBAC allows but its guardrails refuse: `rule` of `policy` stops it."""

    story: str
    policy: str
    rule: int
    write: Write
    message: str | None = None  # what a rule with a messageExpression says


def _dry(dry_run: str | None) -> dict[str, str]:
    return {"dry_run": dry_run} if dry_run else {}


# The writes of the stories, by the object they touch.


def create_policy(name: str) -> Write:
    return lambda c, s, d: c.networking.create_namespaced_network_policy(
        s.namespace, network_policy(name), **_dry(d)
    )


def patch_policy(name: str, patch: dict[str, Any]) -> Write:
    return lambda c, s, d: c.networking.patch_namespaced_network_policy(
        name, s.namespace, patch, **_dry(d)
    )


def delete_policy(name: str) -> Write:
    return lambda c, s, d: c.networking.delete_namespaced_network_policy(
        name, s.namespace, **_dry(d)
    )


def patch_status(patch: dict[str, Any], content_type: str = MERGE) -> Write:
    """A patch of the db Service through its status."""
    return lambda c, s, d: c.core.patch_namespaced_service_status(
        "db", s.namespace, patch, _content_type=content_type, **_dry(d)
    )


def patch_pool(patch: Callable[[], dict[str, Any]]) -> Write:
    return lambda c, s, d: c.custom.patch_cluster_custom_object(
        *POOLS, s.pool, patch(), _content_type=MERGE, **_dry(d)
    )


def claim(name: Callable[[Scene], str], manager: str) -> Write:
    return lambda c, s, d: c.custom.create_cluster_custom_object(
        *ADDRESSES, ip_address(name(s), manager, s.namespace, "db"), **_dry(d)
    )


def release(name: Callable[[Scene], str]) -> Write:
    return lambda c, s, d: c.custom.delete_cluster_custom_object(*ADDRESSES, name(s), **_dry(d))


def labelled(key: str, value: str) -> dict[str, Any]:
    return {"metadata": {"labels": {key: value}}}


def finalizers(*names: str) -> dict[str, Any]:
    return {"metadata": {"finalizers": list(names)}}


def in_clusterip_range(address: str) -> str:
    return f"lbipam may not claim {address}: it lies in ServiceCIDR kubernetes, " + (
        "which is for ClusterIPs"
    )


NETPOL, STATUS, POOL = "lbipam-networkpolicies", "lbipam-service-status", "lbipam-ippools"
CLAIMS, OUTSIDE = "lbipam-ipaddresses", "lbipam-ipaddresses-outside-servicecidrs"
MANAGED_BY = "app.kubernetes.io/managed-by"
FORBIDDEN = [
    # The first story of each rule is one that only that rule stops (see the removal test).
    Forbidden(
        "write a deny-all NetworkPolicy of its own naming", NETPOL, 0, create_policy("lockdown")
    ),
    Forbidden(
        "rewrite a team's own firewall",
        NETPOL,
        0,
        patch_policy("team-firewall", {"spec": {"podSelector": {"matchLabels": {"app": "x"}}}}),
    ),
    Forbidden(
        "take over a team's lbipam-named policy by adding the managed-by label",
        NETPOL,
        1,
        patch_policy("lbipam-team", labelled(MANAGED_BY, "lbipam")),
    ),
    Forbidden("delete a team's firewall", NETPOL, 2, delete_policy("team-firewall")),
    Forbidden(
        "erase another controller's condition from a Service",
        STATUS,
        0,
        patch_status({"status": {"conditions": []}}),
    ),
    Forbidden(
        "forge another controller's condition on a Service",
        STATUS,
        0,
        patch_status(
            {"status": {"conditions": [{**FOREIGN, "type": "example.com/Approved"}]}}, STRATEGIC
        ),
    ),
    Forbidden(
        "relabel a Service through its status", STATUS, 1, patch_status(labelled("tier", "x"))
    ),
    Forbidden(
        "block a Service's deletion with a finalizer sent through its status",
        STATUS,
        1,
        patch_status(finalizers("example.com/block")),
    ),
    Forbidden(
        "widen a pool to addresses the admin never gave",
        POOL,
        0,
        patch_pool(lambda: {"spec": {"addresses": [f"{subnet()}.0/24"]}}),
    ),
    Forbidden("label a pool", POOL, 1, patch_pool(lambda: labelled("tier", "x"))),
    Forbidden(
        "block a pool's deletion with a finalizer of its own making",
        POOL,
        2,
        patch_pool(lambda: finalizers("lbipam.io/protection", "example.com/keep", "x.io/block")),
    ),
    Forbidden(
        "remove another controller's finalizer from a pool",
        POOL,
        2,
        patch_pool(lambda: finalizers("lbipam.io/protection")),
    ),
    Forbidden(
        "claim an address in the API server's name",
        CLAIMS,
        0,
        claim(lambda s: s.squat, "ipallocator.k8s.io"),
    ),
    Forbidden("release another allocator's claim", CLAIMS, 1, release(lambda s: s.foreign_claim)),
    Forbidden(
        "release the kubernetes Service's ClusterIP", CLAIMS, 1, release(lambda s: "10.96.0.1")
    ),
    Forbidden(
        "claim a ClusterIP",
        OUTSIDE,
        0,
        claim(lambda s: "10.96.0.200", "lbipam.io"),
        in_clusterip_range("10.96.0.200"),
    ),
    Forbidden(
        "claim an IPv6 ClusterIP",
        OUTSIDE,
        0,
        claim(lambda s: "fd00:10:96::c8", "lbipam.io"),
        in_clusterip_range("fd00:10:96::c8"),
    ),
]


def refusal(case: Forbidden) -> str:
    """How the API server refuses `case`: in its rule's message, or its messageExpression's."""
    said = case.message or policies()[case.policy]["spec"]["validations"][case.rule]["message"]
    policy = f"'{case.policy}' with binding '{case.policy}'"
    return f"403: ValidatingAdmissionPolicy {policy} denied request: {said}"


def outcome(case: Forbidden, clients: Clients, scene: Scene, dry_run: str | None) -> str:
    """'admitted', or the refusal: '403: ValidatingAdmissionPolicy ... denied request: ...'."""
    try:
        case.write(clients, scene, dry_run)
    except client.ApiException as error:
        message = json.loads(error.body)["message"]
        # The API server puts `<resource> "<name>" is forbidden: ` before the policy's words.
        _, policy, said = message.partition("ValidatingAdmissionPolicy ")
        return f"{error.status}: {policy + said if policy else message}"
    return "admitted"


# --- fixtures ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lbipam(operator_kubeconfig: Path) -> Clients:
    """lbipam's ServiceAccount (a TokenRequest token), as a compromised operator would use it."""
    return Clients(config.new_client_from_config(str(operator_kubeconfig)))


@pytest.fixture(scope="module")
def admin(api: client.ApiClient) -> Clients:
    return Clients(api)


@contextmanager
def staged(admin: Clients, namespace: str, pools: Pools) -> Iterator[Scene]:
    networking, core, custom = admin.networking, admin.core, admin.custom
    networking.create_namespaced_network_policy(namespace, network_policy("team-firewall"))
    networking.create_namespaced_network_policy(namespace, network_policy("lbipam-team"))
    db = {"metadata": {"name": "db"}, "spec": {"ports": [{"port": 5432}]}}
    core.create_namespaced_service(namespace, db)
    core.patch_namespaced_service_status(
        "db", namespace, {"status": {"conditions": [FOREIGN]}}, _content_type=MERGE
    )
    pool = pools.create([f"{subnet()}.0/30"])
    # lbipam's finalizer (its own write, if it comes first, is a no-op or a lost race) and
    # another controller's next to it.
    custom.patch_cluster_custom_object(
        *POOLS, pool, finalizers("lbipam.io/protection", "example.com/keep"), _content_type=MERGE
    )
    held, squat = (f"198.18.1.{next(_addresses)}" for _ in range(2))
    custom.create_cluster_custom_object(
        *ADDRESSES, ip_address(held, "other-allocator.example.com", namespace, "db")
    )
    try:
        yield Scene(namespace, pool, held, squat)
    finally:
        # Whatever a test let through must not outlive it.
        for name in (held, squat, "10.96.0.200", "fd00:10:96::c8"):
            try:
                custom.delete_cluster_custom_object(*ADDRESSES, name)
            except client.ApiException as error:
                if error.status != 404:
                    raise
        custom.patch_cluster_custom_object(*POOLS, pool, {"metadata": {"finalizers": None}})
        core.patch_namespaced_service("db", namespace, {"metadata": {"finalizers": None}})
        pools.delete(pool)


@pytest.fixture
def scene(admin: Clients, namespace: str, pools: Pools) -> Iterator[Scene]:
    """A scene of its own, for a test that lets a write through."""
    with staged(admin, namespace, pools) as made:
        yield made


@pytest.fixture(scope="module")
def shared_scene(
    admin: Clients, custom: client.CustomObjectsApi, operator: OperatorProcess
) -> Iterator[Scene]:
    """One scene for the tests whose writes are refused or dry runs (fewer namespaces to reap)."""
    with (
        fresh_namespace(admin.core) as namespace,
        staged(admin, namespace, Pools(custom, namespace)) as made,
    ):
        yield made


def in_force(case: Forbidden, lbipam: Clients, scene: Scene, expected: str) -> None:
    """Wait until dry runs of `case` get `expected` ('admitted' or a refusal).

    The API server reads policies a moment after they are applied or changed.
    """
    answers = [""]

    def answered() -> bool:
        answers[0] = outcome(case, lbipam, scene, "All")
        return answers[0] == expected

    try:
        eventually(answered, timeout=30, interval=0.2)
    except AssertionError:
        raise AssertionError(
            f"dry runs of '{case.story}': wanted {expected!r}, last got {answers[0]!r}"
        ) from None


@contextmanager
def changed(kubectl: Kubectl, policy: str, edit: Callable[[dict[str, Any]], Any]) -> Iterator[None]:
    """The policy with `edit` made to its spec, until the block ends; then deploy/'s again."""
    copied = copy.deepcopy(policies()[policy])
    edit(copied["spec"])
    kubectl("apply", "-f", "-", input=yaml.safe_dump(copied))
    try:
        yield
    finally:
        # Every test waits for its rule to be in force again before it relies on it.
        kubectl("apply", "-f", str(GUARDRAILS))


# --- stories -------------------------------------------------------------------------


@pytest.mark.parametrize("case", FORBIDDEN, ids=lambda c: c.story)
def test_lbipam_may_not(
    case: Forbidden, installed: None, lbipam: Clients, shared_scene: Scene
) -> None:
    expected = refusal(case)
    in_force(case, lbipam, shared_scene, expected)
    assert outcome(case, lbipam, shared_scene, None) == expected
    print(f"{case.story}: {expected}")


def first_of_each_rule() -> list[Forbidden]:
    first: dict[tuple[str, int], Forbidden] = {}
    for case in FORBIDDEN:
        first.setdefault((case.policy, case.rule), case)
    return list(first.values())


def story(text: str) -> Forbidden:
    (case,) = [c for c in FORBIDDEN if c.story == text]
    return case


@pytest.mark.parametrize("case", first_of_each_rule(), ids=lambda c: f"{c.policy}[{c.rule}]")
def test_without_its_rule_the_forbidden_write_goes_through(
    case: Forbidden, installed: None, kubectl: Kubectl, lbipam: Clients, scene: Scene
) -> None:
    in_force(case, lbipam, scene, refusal(case))
    # A policy needs at least one validation, so the rule is switched off rather than cut out.
    with changed(
        kubectl, case.policy, lambda spec: spec["validations"][case.rule].update(expression="true")
    ):
        in_force(case, lbipam, scene, "admitted")
        assert outcome(case, lbipam, scene, None) == "admitted"


@pytest.mark.parametrize("case", FORBIDDEN, ids=lambda c: c.story)
def test_an_admin_may_make_every_write_lbipam_may_not(
    case: Forbidden, installed: None, admin: Clients, shared_scene: Scene
) -> None:
    assert outcome(case, admin, shared_scene, "All") == "admitted"


def test_lbipam_may_claim_and_release_an_address_outside_every_service_cidr(
    installed: None, lbipam: Clients, admin: Clients, scene: Scene
) -> None:
    name = f"198.18.2.{next(_addresses)}"
    ours = ip_address(name, "lbipam.io", scene.namespace, "db")
    clusterip = story("claim a ClusterIP")
    in_force(clusterip, lbipam, scene, refusal(clusterip))
    lbipam.custom.create_cluster_custom_object(*ADDRESSES, ours)
    assert admin.custom.get_cluster_custom_object(*ADDRESSES, name)["metadata"]["labels"] == {
        "ipaddress.kubernetes.io/managed-by": "lbipam.io"
    }
    lbipam.custom.delete_cluster_custom_object(*ADDRESSES, name)


def test_the_operator_updates_a_service_status_and_leaves_other_conditions_as_they_were(
    installed: None,
    admin: Clients,
    pools: Pools,
    namespace: str,
    operator: OperatorProcess,
) -> None:
    prefix = subnet()
    pools.create([f"{prefix}.0/29"])
    create(
        admin.core, namespace, service_manifest("web", annotations={"lbipam.io/ips": f"{prefix}.1"})
    )
    wait_service(admin.core, namespace, "web", lambda s: our_condition(s) is not None)
    admin.core.patch_namespaced_service_status(
        "web", namespace, {"status": {"conditions": [FOREIGN]}}, _content_type=STRATEGIC
    )
    # The request moves, so the operator writes the status again, next to the foreign condition.
    admin.core.patch_namespaced_service(
        "web", namespace, {"metadata": {"annotations": {"lbipam.io/ips": f"{prefix}.2"}}}
    )
    service = wait_service(
        admin.core,
        namespace,
        "web",
        lambda s: [i.ip for i in (s.status.load_balancer.ingress or [])] == [f"{prefix}.2"],
        what="the new address",
    )
    kept = [c for c in service.status.conditions if c.type == FOREIGN["type"]]
    assert [(c.status, c.reason, c.message) for c in kept] == [
        (FOREIGN["status"], FOREIGN["reason"], FOREIGN["message"])
    ]
    assert our_condition(service).reason == "Allocated"
    assert "ValidatingAdmissionPolicy" not in operator.logs(lines=100_000)


def test_the_session_operator_runs_as_lbipams_service_account(
    operator: OperatorProcess, operator_kubeconfig: Path
) -> None:
    assert operator.env["KUBECONFIG"] == str(operator_kubeconfig)
    api = config.new_client_from_config(str(operator_kubeconfig))
    review = client.AuthenticationV1Api(api).create_self_subject_review({})
    assert review.status.user_info.username == "system:serviceaccount:lbipam-system:lbipam"


# --- failure modes (docs/security.md) ------------------------------------------------

GOOD_CLAIM = Forbidden(
    "claim a free address outside every ServiceCIDR",
    OUTSIDE,
    0,
    claim(lambda s: s.squat, "lbipam.io"),
)


def test_a_rule_that_cannot_be_evaluated_refuses_lbipam_and_no_one_else(
    installed: None, kubectl: Kubectl, lbipam: Clients, admin: Clients, scene: Scene
) -> None:
    broken = "!params.spec.cidrs.exists(c, cidr(object.metadata.labels['no-such']).containsIP('')"
    with changed(
        kubectl, OUTSIDE, lambda spec: spec["validations"][0].update(expression=broken + ")")
    ):
        refused = (
            f"422: ValidatingAdmissionPolicy '{OUTSIDE}' with binding '{OUTSIDE}' denied request: "
            f"expression '{broken})' resulted in error: no such key: no-such"
        )
        in_force(GOOD_CLAIM, lbipam, scene, refused)
        assert outcome(GOOD_CLAIM, admin, scene, "All") == "admitted"
    in_force(GOOD_CLAIM, lbipam, scene, "admitted")


def test_a_policy_that_cannot_be_set_up_refuses_everyone(
    installed: None, kubectl: Kubectl, lbipam: Clients, admin: Clients, scene: Scene
) -> None:
    """A ServiceCIDR kind the API server does not serve: even its own claims would fail."""
    with changed(kubectl, OUTSIDE, lambda spec: spec["paramKind"].update(kind="NoSuchKind")):
        refused = (
            f"422: ValidatingAdmissionPolicy '{OUTSIDE}' denied request: failed to configure "
            "policy: failed to find resource referenced by paramKind: "
            "'networking.k8s.io/v1, Kind=NoSuchKind'"
        )
        in_force(GOOD_CLAIM, lbipam, scene, refused)
        assert outcome(GOOD_CLAIM, admin, scene, "All") == refused
    in_force(GOOD_CLAIM, lbipam, scene, "admitted")


def test_an_admin_turns_them_off_and_on_with_the_documented_commands(
    installed: None, kubectl: Kubectl, lbipam: Clients, scene: Scene
) -> None:
    case = story("delete a team's firewall")
    in_force(case, lbipam, scene, refusal(case))
    kubectl(
        "delete",
        "validatingadmissionpolicybindings",
        "-l",
        "app.kubernetes.io/component=guardrails",
    )
    try:
        in_force(case, lbipam, scene, "admitted")
    finally:
        kubectl("apply", "-k", str(REPO / "deploy"))
    in_force(case, lbipam, scene, refusal(case))


def test_a_refused_operator_retries_until_the_write_is_admitted(
    installed: None,
    without_session_operator: None,
    control_plane: ControlPlane,
    operator_kubeconfig: Path,
    kubectl: Kubectl,
    lbipam: Clients,
    admin: Clients,
    pools: Pools,
    scene: Scene,
) -> None:
    """Its own replica: the session operator's log must stay free of refusals."""
    replica = OperatorProcess(
        control_plane, KUBECONFIG=str(operator_kubeconfig), LBIPAM_NAMESPACE=SYSTEM
    ).start()
    ours = {
        "type": "lbipam.io/Probe",
        "status": "True",
        "reason": "Probe",
        "message": "",
        "lastTransitionTime": FOREIGN["lastTransitionTime"],
    }
    status_write = Forbidden(
        "write lbipam's own condition",
        STATUS,
        0,
        patch_status({"status": {"conditions": [ours]}}, STRATEGIC),
    )
    try:
        with changed(
            kubectl, STATUS, lambda spec: spec["validations"][0].update(expression="false")
        ):
            in_force(status_write, lbipam, scene, refusal(status_write))
            pools.create([f"{subnet()}.0/30"])
            create(admin.core, scene.namespace, service_manifest("web"))
            eventually(
                lambda: "denied request" in replica.logs(10**6),
                what="the operator to be refused",
            )
            assert "retrying in" in replica.logs(10**6)
            assert not admin.core.read_namespaced_service(
                "web", scene.namespace
            ).status.load_balancer.ingress
        # Retries back off up to 30 s.
        wait_service(admin.core, scene.namespace, "web", ingress_ips, timeout=60)
    finally:
        replica.cleanup()
