"""Credentials as a user hands them over (a kubeconfig, or the pod's service account), and the
client that presents them."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml

from lbipam.kube import client
from lbipam.kube.credentials import credentials, from_kubeconfig, in_cluster
from tests.controlplane.certs import make_pki
from tests.kubeconfigs import write_kubeconfig


def _kubeconfig(folder: Path, user: dict[str, object], **cluster: object) -> Path:
    server = {"server": "https://198.18.0.1:6443/", **cluster}
    return write_kubeconfig(folder / "config", server, user)


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def test_a_kubeconfig_with_a_client_certificate_inline(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki", "198.18.0.1")
    user = {"client-certificate-data": _b64(pki.admin_cert), "client-key-data": _b64(pki.admin_key)}
    path = _kubeconfig(tmp_path, user, **{"certificate-authority-data": _b64(pki.ca_cert)})

    creds = from_kubeconfig(path)

    assert creds.server == "https://198.18.0.1:6443"
    assert creds.token is None
    assert len(creds.tls.get_ca_certs()) == 1


def test_a_kubeconfig_with_files_beside_it_and_a_token(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki", "198.18.0.1")
    path = _kubeconfig(tmp_path, {"token": "abc"}, **{"certificate-authority": "pki/ca.crt"})
    assert pki.ca_cert == tmp_path / "pki" / "ca.crt"

    creds = from_kubeconfig(path)

    assert creds.token == "abc"
    assert len(creds.tls.get_ca_certs()) == 1


def test_a_removed_auth_provider_is_refused_naming_the_field_and_what_to_use(
    tmp_path: Path,
) -> None:
    path = _kubeconfig(tmp_path, {"auth-provider": {"name": "oidc"}})
    with pytest.raises(ValueError, match=r"users\[u\]\.user\.auth-provider: .* use an exec"):
        from_kubeconfig(path)


def test_a_socks_proxy_is_refused_an_http_proxy_is_used(tmp_path: Path) -> None:
    socks = _kubeconfig(tmp_path, {"token": "t"}, **{"proxy-url": "socks5://127.0.0.1:1080"})
    with pytest.raises(ValueError, match=r"proxy-url 'socks5://127\.0\.0\.1:1080': only http"):
        from_kubeconfig(socks)
    http = _kubeconfig(tmp_path, {"token": "t"}, **{"proxy-url": "http://proxy.example:3128"})
    assert from_kubeconfig(http).proxy == "http://proxy.example:3128"


def test_an_exec_plugin_next_to_the_kubeconfig_is_found_there(tmp_path: Path) -> None:
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": "./bin/get-token",
            "args": ["--cluster", "c"],
            "env": [{"name": "REGION", "value": "north"}],
            "interactiveMode": "Never",
            "provideClusterInfo": True,
        }
    }
    path = _kubeconfig(tmp_path, user, **{"insecure-skip-tls-verify": True})

    spec = from_kubeconfig(path).exec

    assert spec is not None
    assert spec.command == str(tmp_path / "bin" / "get-token")
    assert spec.args == ("--cluster", "c")
    assert spec.env == (("REGION", "north"),)
    assert spec.cluster == {"server": "https://198.18.0.1:6443/", "insecure-skip-tls-verify": True}


def test_an_exec_plugin_of_the_removed_alpha_version_is_refused(tmp_path: Path) -> None:
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1alpha1", "command": "x"}}
    with pytest.raises(ValueError, match="v1alpha1 was removed"):
        from_kubeconfig(_kubeconfig(tmp_path, user))


def test_two_kubeconfigs_merge_and_the_context_namespace_is_kept(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    (second / "token").write_text("from-a-file\n")
    _kubeconfig(first, {"token": "first"})
    extra = {
        "contexts": [
            {"name": "other", "context": {"cluster": "c", "user": "v", "namespace": "team"}}
        ],
        "users": [{"name": "v", "user": {"tokenFile": "token"}}],
    }
    (second / "config").write_text(yaml.safe_dump(extra))

    creds = from_kubeconfig([first / "config", second / "config"], context="other")

    assert creds.server == "https://198.18.0.1:6443"
    assert creds.namespace == "team"
    assert creds.token_file == second / "token"
    assert from_kubeconfig([first / "config", second / "config"]).token == "first"


async def test_in_a_pod_the_rotated_token_is_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pki = make_pki(tmp_path / "pki", "198.18.0.1")
    account = tmp_path / "account"
    account.mkdir()
    (account / "ca.crt").write_bytes(pki.ca_cert.read_bytes())
    (account / "token").write_text("first\n")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "2001:db8::1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")

    api = client.Api(in_cluster(account))
    try:
        assert api.creds.server == "https://[2001:db8::1]:443"
        assert (await api.proof()).headers == {"Authorization": "Bearer first"}
        (account / "token").write_text("second\n")
        api._token_read -= client.TOKEN_REREAD_S + 1  # a minute later
        assert (await api.proof()).headers == {"Authorization": "Bearer second"}
    finally:
        await api.close()


def test_without_a_kubeconfig_outside_a_pod_the_error_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ValueError, match=r"no kubeconfig \(\$KUBECONFIG, ~/\.kube/config\)"):
        credentials()
