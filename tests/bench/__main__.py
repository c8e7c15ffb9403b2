"""`python -m tests.bench` (`make bench`): every benchmark, one after the
other; figures and how to read them are in docs/performance.md."""

import importlib

BENCHMARKS = ("decide", "calls", "cdr", "web")

if __name__ == "__main__":
    for name in BENCHMARKS:
        module = importlib.import_module(f"tests.bench.{name}")
        print(f"== {name}", flush=True)
        module.main([])
