"""`python -m tests.bench` (`make bench`): every benchmark, one after the
other; figures and how to read them are in docs/performance.md.

`python -m tests.bench media calls` runs only the ones named; each module
takes its own options (`python -m tests.bench.media --levels 50,100`)."""

import importlib
import sys

BENCHMARKS = ("decide", "calls", "cdr", "web", "media", "transcoding")

if __name__ == "__main__":
    chosen = sys.argv[1:] or list(BENCHMARKS)
    unknown = sorted(set(chosen) - set(BENCHMARKS))
    if unknown:
        sys.exit(f"no benchmark {', '.join(unknown)}; there are {', '.join(BENCHMARKS)}")
    for name in chosen:
        module = importlib.import_module(f"tests.bench.{name}")
        print(f"== {name}", flush=True)
        module.main([])
