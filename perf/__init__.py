"""Throughput scripts (not tests, not the benchmark): `python -m perf.<name>`; each prints medians and ratios."""
