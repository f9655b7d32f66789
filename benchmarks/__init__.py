"""The benchmark suite: ``python benchmarks/run.py`` (see docs/performance.md)."""
