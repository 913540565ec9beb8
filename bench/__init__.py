"""Benchmarks: scripts that print figures (run as modules, e.g. python -m bench.bench_gateway)."""
