"""lbipam: LoadBalancer addresses from IPPools for clusters without a cloud load balancer."""

__version__ = "0.1.0"
