"""Throughput scripts (not tests, not the benchmark): `python -m perf.<name>`; each prints medians and ratios.
`perf/executor_speed.sh` times the benchmark with the local executor against a local Ray (interleaved pairs)."""
