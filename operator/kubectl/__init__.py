"""`kubectl lbipam`: pools, Services and addresses as lbipam sees them, read-only."""
