"""Benchmarks (`make bench`, or `python -m tests.bench.cdr`); figures and how
to reproduce them are in docs/performance.md."""
