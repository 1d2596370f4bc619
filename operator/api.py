"""Names of the user-facing contract (docs/reference.md): group, annotations, conditions, labels."""

from __future__ import annotations

GROUP = "lbipam.io"
VERSION = "v1alpha1"
POOLS = "ippools"
POOL_API_VERSION = f"{GROUP}/{VERSION}"

ANNOTATION_IPS = f"{GROUP}/ips"
ANNOTATION_POOL = f"{GROUP}/pool"
ANNOTATION_SHARING_KEY = f"{GROUP}/sharing-key"
LEGACY_SOURCE_RANGES = "service.beta.kubernetes.io/load-balancer-source-ranges"

SERVICE_CONDITION = f"{GROUP}/AddressAllocated"
POOL_READY = "Ready"
POOL_EXHAUSTED = "Exhausted"
POOL_SERVICE_CIDR = "OverlapsServiceCIDR"
FINALIZER = f"{GROUP}/protection"

# Address claims: one networking.k8s.io/v1 IPAddress per handed-out address, named by it.
CLAIM_MANAGER_LABEL = ("ipaddress.kubernetes.io/managed-by", "lbipam.io")

FIELD_MANAGER = "lbipam"
COMPONENT = "lbipam"
MANAGED_BY_LABEL = ("app.kubernetes.io/managed-by", "lbipam")
POLICY_PREFIX = "lbipam-"
