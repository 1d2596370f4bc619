"""Benchmarks: `bench/ipam.py` (the allocator alone), `python -m bench.cluster` (end to end)."""
