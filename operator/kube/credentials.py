"""Who the operator (or the kubectl plugin) is to the API server, and where that is: a
kubeconfig as kubectl reads it, exec credential plugins included, or the pod's service account."""

from __future__ import annotations

import base64
import datetime
import os
import ssl
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from lbipam.kube.exec_plugin import ExecPlugin, ExecSpec, cluster_info

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")

REMOVED_USER_FIELDS = {
    "auth-provider": (
        "auth-provider plugins were removed in Kubernetes 1.26; use an exec credential plugin "
        "instead (kubelogin for OIDC and AKS, gke-gcloud-auth-plugin for GKE)"
    ),
    "username": (
        "basic authentication was removed from the API server in Kubernetes 1.19; use a "
        "token, a client certificate or an exec credential plugin"
    ),
    **dict.fromkeys(
        ("as", "as-groups", "as-uid", "as-user-extra"),
        "impersonation is not supported; use a kubeconfig user that has the rights itself",
    ),
}


@dataclass(frozen=True)
class Trust:
    """What the client trusts: the cluster's CA (a file or PEM bytes), or nothing at all."""

    ca_file: str | None = None
    ca_data: bytes | None = None
    insecure: bool = False

    def context(self, cert: tuple[bytes, bytes] | None) -> ssl.SSLContext:
        """A TLS context presenting `cert` (PEM certificate and key), if given."""
        context = ssl.create_default_context(
            cafile=self.ca_file, cadata=self.ca_data.decode() if self.ca_data else None
        )
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if cert is not None:
            # load_cert_chain reads files only; the key stays on disk for no longer than this.
            with tempfile.TemporaryDirectory() as folder:
                cert_path, key_path = Path(folder, "cert"), Path(folder, "key")
                cert_path.write_bytes(cert[0])
                key_path.touch(mode=0o600)
                key_path.write_bytes(cert[1])
                context.load_cert_chain(cert_path, key_path)
        return context


@dataclass(frozen=True)
class Credentials:
    """Where the API server is and how to prove who we are."""

    server: str
    trust: Trust = Trust()
    cert: tuple[bytes, bytes] | None = None  # a client certificate and key, PEM
    token: str | None = None
    token_file: Path | None = None  # re-read now and then: the kubelet rotates it
    proxy: str | None = None
    exec: ExecSpec | None = None  # a credential plugin run when a token or certificate is due
    server_name: str | None = None  # the name the server's certificate is checked against
    namespace: str = "default"  # the context's namespace, for commands given none

    @cached_property
    def tls(self) -> ssl.SSLContext:
        return self.trust.context(self.cert)


def _field(entry: Mapping[str, Any], name: str, base: Path) -> bytes | None:
    """`name-data` (base64) or the file `name` (relative to the kubeconfig's folder)."""
    if entry.get(f"{name}-data"):
        return base64.b64decode(str(entry[f"{name}-data"]))
    if entry.get(name):
        return (base / os.path.expanduser(str(entry[name]))).read_bytes()
    return None


@dataclass(frozen=True)
class _Named:
    """One entry of a kubeconfig list, with the folder its relative paths start from."""

    value: Mapping[str, Any]
    base: Path


class Kubeconfig:
    """One or more kubeconfig files merged as kubectl does: the first file naming a thing wins."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = tuple(paths)
        self.current: str | None = None
        self.entries: dict[str, dict[str, _Named]] = {"context": {}, "cluster": {}, "user": {}}
        for path in paths:
            config = yaml.safe_load(path.read_text()) or {}
            self.current = self.current or config.get("current-context") or None
            for kind, known in self.entries.items():
                for item in config.get(kind + "s") or []:
                    known.setdefault(item.get("name"), _Named(item.get(kind) or {}, path.parent))

    def named(self, kind: str, name: str) -> _Named:
        found = self.entries[kind].get(name)
        if found is None:
            where = ", ".join(str(p) for p in self.paths)
            raise ValueError(f"{where}: no {kind} named {name!r}")
        return found

    def credentials(self, context_name: str | None = None) -> Credentials:
        """The credentials of `context_name`, or of the current context."""
        context = self.named("context", context_name or self.current or "").value
        cluster = self.named("cluster", context["cluster"])
        user = self.named("user", context["user"])
        for field, instead in REMOVED_USER_FIELDS.items():
            if field in user.value:
                raise ValueError(f"users[{context['user']}].user.{field}: {instead}")
        proxy = cluster.value.get("proxy-url") or None
        if proxy is not None and not str(proxy).startswith(("http://", "https://")):
            raise ValueError(
                f"clusters[{context['cluster']}].cluster.proxy-url {proxy!r}: only http(s) "
                "proxies are supported; reach a SOCKS proxy through a local HTTP proxy"
            )
        ca = _field(cluster.value, "certificate-authority", cluster.base)
        return Credentials(
            server=str(cluster.value["server"]).rstrip("/"),
            trust=Trust(None, ca, bool(cluster.value.get("insecure-skip-tls-verify"))),
            cert=_client_certificate(user.value, user.base),
            token=user.value.get("token") or None,
            token_file=_token_file(user.value, user.base),
            proxy=proxy,
            exec=_exec(user.value, user.base, cluster.value, ca),
            server_name=cluster.value.get("tls-server-name") or None,
            namespace=context.get("namespace") or "default",
        )


def _client_certificate(user: Mapping[str, Any], base: Path) -> tuple[bytes, bytes] | None:
    cert, key = _field(user, "client-certificate", base), _field(user, "client-key", base)
    if bool(cert) != bool(key):
        raise ValueError("a kubeconfig user with client-certificate needs client-key, and back")
    return (cert, key) if cert and key else None


def _token_file(user: Mapping[str, Any], base: Path) -> Path | None:
    name = user.get("tokenFile")
    return base / os.path.expanduser(str(name)) if name and not user.get("token") else None


def _exec(
    user: Mapping[str, Any], base: Path, cluster: Mapping[str, Any], ca: bytes | None
) -> ExecSpec | None:
    entry = user.get("exec")
    if not entry:
        return None
    return ExecSpec.parse(entry, base, cluster_info(cluster, ca))


def kubeconfig_paths() -> list[Path]:
    """$KUBECONFIG's files (those that exist), else ~/.kube/config."""
    listed = [p for p in (os.environ.get("KUBECONFIG") or "").split(os.pathsep) if p]
    paths = [Path(os.path.expanduser(p)) for p in listed or ["~/.kube/config"]]
    return [path for path in paths if path.exists()]


def from_kubeconfig(path: Path | Sequence[Path], context: str | None = None) -> Credentials:
    """A context of one kubeconfig, or of several merged (the current context by default)."""
    return Kubeconfig([path] if isinstance(path, Path) else path).credentials(context)


def in_cluster(folder: Path = SERVICE_ACCOUNT) -> Credentials:
    """The pod's service account."""
    host = os.environ["KUBERNETES_SERVICE_HOST"]
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    server = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
    namespace = (
        (folder / "namespace").read_text().strip() if (folder / "namespace").exists() else None
    )
    return Credentials(
        server,
        Trust(str(folder / "ca.crt")),
        token_file=folder / "token",
        namespace=namespace or "default",
    )


def credentials() -> Credentials:
    """$KUBECONFIG when set (or ~/.kube/config), else the in-cluster service account."""
    paths = kubeconfig_paths()
    if paths:
        return from_kubeconfig(paths)
    if "KUBERNETES_SERVICE_HOST" not in os.environ:
        raise ValueError("no kubeconfig ($KUBECONFIG, ~/.kube/config) and not in a pod")
    return in_cluster()


@dataclass(frozen=True)
class Identity:
    """Who the credentials prove we are now, for a client other than `Api` (Kopf's)."""

    token: str | None
    cert: tuple[bytes, bytes] | None  # PEM certificate and key
    expires: datetime.datetime | None  # when to ask again (an exec plugin's expiry)


async def identity(creds: Credentials) -> Identity:
    """The token or certificate to present now; an exec plugin is run for it."""
    if creds.exec is not None:
        issued = await ExecPlugin(creds.exec).credential()
        expires = None
        if issued.expires is not None:
            expires = datetime.datetime.fromtimestamp(issued.expires, datetime.UTC)
        return Identity(issued.token, issued.cert, expires)
    token = creds.token
    if creds.token_file is not None:
        token = creds.token_file.read_text().strip()
    return Identity(token, creds.cert, None)
