"""Credentials as a user hands them over: a kubeconfig, or the pod's service account."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml

from lbipam.kube import client
from tests.controlplane.certs import make_pki


def _kubeconfig(folder: Path, user: dict[str, object], **cluster: object) -> Path:
    config = {
        "clusters": [{"name": "c", "cluster": {"server": "https://198.18.0.1:6443/", **cluster}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path = folder / "config"
    path.write_text(yaml.safe_dump(config))
    return path


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def test_a_kubeconfig_with_a_client_certificate_inline(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki", "198.18.0.1")
    user = {"client-certificate-data": _b64(pki.admin_cert), "client-key-data": _b64(pki.admin_key)}
    path = _kubeconfig(tmp_path, user, **{"certificate-authority-data": _b64(pki.ca_cert)})

    creds = client.from_kubeconfig(path)

    assert creds.server == "https://198.18.0.1:6443"
    assert creds.token is None
    assert len(creds.tls.get_ca_certs()) == 1


def test_a_kubeconfig_with_files_beside_it_and_a_token(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki", "198.18.0.1")
    path = _kubeconfig(tmp_path, {"token": "abc"}, **{"certificate-authority": "pki/ca.crt"})
    assert pki.ca_cert == tmp_path / "pki" / "ca.crt"

    creds = client.from_kubeconfig(path)

    assert creds.token == "abc"
    assert len(creds.tls.get_ca_certs()) == 1


def test_exec_credentials_are_refused_with_a_reason(tmp_path: Path) -> None:
    path = _kubeconfig(tmp_path, {"exec": {"command": "get-token"}})
    with pytest.raises(ValueError, match="exec and auth-provider credentials are not supported"):
        client.from_kubeconfig(path)


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

    api = client.Api(client.in_cluster(account))
    try:
        assert api.creds.server == "https://[2001:db8::1]:443"
        assert api.authorization() == {"Authorization": "Bearer first"}
        (account / "token").write_text("second\n")
        api._token_read -= client.TOKEN_REREAD_S + 1  # a minute later
        assert api.authorization() == {"Authorization": "Bearer second"}
    finally:
        await api.close()
