"""Benchmark scripts (not tests): run as `python -m benchmarks.<name>`; each prints medians and ratios."""
