"""Benchmarks: each prints ratios measured in one run (this machine is shared, so absolute times drift)."""
