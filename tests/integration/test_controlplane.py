"""The test control plane is a real Kubernetes API server, not a stand-in."""

from __future__ import annotations

import pytest
from kubernetes import client

from tests.controlplane import ControlPlane
from tests.kit import eventually


def lb_service(name: str, node_port: int | None = None) -> client.V1Service:
    return client.V1Service(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1ServiceSpec(
            type="LoadBalancer",
            selector={"app": name},
            ports=[client.V1ServicePort(port=80, target_port=8080, node_port=node_port)],
        ),
    )


def test_version_reports_the_release_we_built(control_plane: ControlPlane) -> None:
    status, body = control_plane.get("/version")
    assert status == 200
    assert '"gitVersion": "v1.36.3"' in body


def test_a_load_balancer_service_gets_a_cluster_ip_and_node_port(
    core: client.CoreV1Api, namespace: str
) -> None:
    created = core.create_namespaced_service(namespace, lb_service("sample-lb"))

    assert created.spec.cluster_ip.startswith("10.96.")
    assert 30000 <= created.spec.ports[0].node_port <= 32767
    assert created.status.load_balancer.ingress is None


def test_a_node_port_outside_the_range_is_rejected_by_the_api_server(
    core: client.CoreV1Api, namespace: str
) -> None:
    with pytest.raises(client.ApiException) as caught:
        core.create_namespaced_service(namespace, lb_service("bad-port", node_port=8888))

    assert caught.value.status == 422
    assert "provided port is not in the valid range" in caught.value.body


def test_a_require_dual_stack_service_gets_both_families(
    core: client.CoreV1Api, namespace: str
) -> None:
    service = lb_service("dual")
    service.spec.ip_family_policy = "RequireDualStack"
    created = core.create_namespaced_service(namespace, service)

    assert created.spec.ip_families == ["IPv4", "IPv6"]
    assert len(created.spec.cluster_ips) == 2


def test_a_custom_resource_definition_becomes_servable(api: client.ApiClient) -> None:
    extensions = client.ApiextensionsV1Api(api)
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.smoke.example.com"},
        "spec": {
            "group": "smoke.example.com",
            "scope": "Cluster",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object"}},
                }
            ],
        },
    }
    extensions.create_custom_resource_definition(crd)
    objects = client.CustomObjectsApi(api)

    def created() -> dict[str, object] | None:
        try:
            return objects.create_cluster_custom_object(  # type: ignore[no-any-return]
                "smoke.example.com",
                "v1",
                "widgets",
                {"apiVersion": "smoke.example.com/v1", "kind": "Widget", "metadata": {"name": "a"}},
            )
        except client.ApiException as error:
            if error.status == 404:
                return None
            raise

    try:
        assert eventually(created, what="the CRD to be served")["kind"] == "Widget"
    finally:
        extensions.delete_custom_resource_definition("widgets.smoke.example.com")


def test_an_owned_object_is_garbage_collected_after_its_owner(
    core: client.CoreV1Api, namespace: str
) -> None:
    owner = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"))
    )
    reference = client.V1OwnerReference(
        api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid
    )
    owned = client.V1ObjectMeta(name="owned", owner_references=[reference])
    core.create_namespaced_config_map(namespace, client.V1ConfigMap(metadata=owned))

    core.delete_namespaced_config_map("owner", namespace)

    def owned_gone() -> bool:
        names = [c.metadata.name for c in core.list_namespaced_config_map(namespace).items]
        return "owned" not in names

    eventually(owned_gone, timeout=30, what="the garbage collector to delete 'owned'")


def test_a_service_account_without_grants_is_forbidden(
    control_plane: ControlPlane, core: client.CoreV1Api, namespace: str
) -> None:
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="nobody"))
    )
    token = core.create_namespaced_service_account_token(
        "nobody", namespace, client.AuthenticationV1TokenRequest(spec={"audiences": []})
    ).status.token
    configuration = client.Configuration()
    configuration.host = control_plane.server
    configuration.ssl_ca_cert = str(control_plane.pki.ca_cert)
    configuration.api_key = {"authorization": f"Bearer {token}"}
    as_nobody = client.CoreV1Api(client.ApiClient(configuration))

    with pytest.raises(client.ApiException) as caught:
        as_nobody.list_namespaced_service(namespace)

    assert caught.value.status == 403
    assert f"system:serviceaccount:{namespace}:nobody" in caught.value.body
