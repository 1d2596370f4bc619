"""Kubeconfig files as a user's tools write them: one cluster, one user, one current context."""

from __future__ import annotations

from pathlib import Path

import yaml


def write_kubeconfig(path: Path, cluster: dict[str, object], user: dict[str, object]) -> Path:
    """A kubeconfig at `path` whose current context joins `cluster` (with its server) and `user`."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path.write_text(yaml.safe_dump(config))
    return path
