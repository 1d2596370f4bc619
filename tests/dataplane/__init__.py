"""The node data plane: namespaces, kube-proxy and kube-router, proving Services with packets."""
