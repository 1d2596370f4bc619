"""Names of the user-facing contract (docs/reference.md): group, annotations, conditions, labels."""

from __future__ import annotations

GROUP = "lbipam.io"
VERSION = "v1alpha1"
POOLS = "ippools"
POOL_API_VERSION = f"{GROUP}/{VERSION}"

ANNOTATION_IPS = f"{GROUP}/ips"
ANNOTATION_POOL = f"{GROUP}/pool"
ANNOTATION_SHARING_KEY = f"{GROUP}/sharing-key"
ANNOTATION_SHARING_CROSS_NAMESPACE = f"{GROUP}/sharing-cross-namespace"
LEGACY_SOURCE_RANGES = "service.beta.kubernetes.io/load-balancer-source-ranges"

# Other controllers' request annotations, honoured as lbipam's own when LBIPAM_FOREIGN_ANNOTATIONS
# names the controller. Per controller and kind of request, its names in its own order: the
# first present one is what that controller reads (MetalLB 0.15 controller/service.go
# valueForAnnotation and SharingKey; Cilium 1.16+ pkg/annotation, LBIPAM*Key before *Alias;
# Cilium 1.15 reads only the io.cilium/ forms and never shares across namespaces).
METALLB = "metallb"
CILIUM = "cilium"
FOREIGN_IPS = {
    METALLB: ("metallb.io/loadBalancerIPs", "metallb.universe.tf/loadBalancerIPs"),
    CILIUM: ("lbipam.cilium.io/ips", "io.cilium/lb-ipam-ips"),
}
FOREIGN_POOL = {
    METALLB: ("metallb.io/address-pool", "metallb.universe.tf/address-pool"),
}
FOREIGN_SHARING_KEY = {
    METALLB: ("metallb.io/allow-shared-ip", "metallb.universe.tf/allow-shared-ip"),
    CILIUM: ("lbipam.cilium.io/sharing-key", "io.cilium/lb-ipam-sharing-key"),
}
FOREIGN_SHARING_CROSS_NAMESPACE = {
    CILIUM: (
        "lbipam.cilium.io/sharing-cross-namespace",
        "io.cilium/lb-ipam-sharing-cross-namespace",
    ),
}
FOREIGN_CONTROLLERS = (METALLB, CILIUM)

SERVICE_CONDITION = f"{GROUP}/AddressAllocated"
POOL_READY = "Ready"
POOL_EXHAUSTED = "Exhausted"
POOL_SERVICE_CIDR = "OverlapsServiceCIDR"
POOL_NODE_ADDRESS = "OverlapsNodeAddress"
POOL_OVER_LIMIT = "OverNamespaceLimit"
FINALIZER = f"{GROUP}/protection"

# Address claims: one networking.k8s.io/v1 IPAddress per handed-out address, named by it.
CLAIM_MANAGER_LABEL = ("ipaddress.kubernetes.io/managed-by", "lbipam.io")
# On a claim kept after its Service let go (releaseHold): when it let go, RFC 3339.
CLAIM_HELD_SINCE = f"{GROUP}/held-since"

FIELD_MANAGER = "lbipam"
COMPONENT = "lbipam"
MANAGED_BY_LABEL = ("app.kubernetes.io/managed-by", "lbipam")
POLICY_PREFIX = "lbipam-"
