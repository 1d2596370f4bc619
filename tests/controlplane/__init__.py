"""A real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager) for tests."""

from .build import ensure_binaries
from .cluster import ControlPlane, running_control_plane

__all__ = ["ControlPlane", "ensure_binaries", "running_control_plane"]
