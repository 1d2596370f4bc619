"""Pure address management: pools, allocation, holders. No Kubernetes here."""
