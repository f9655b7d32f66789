"""The tasks the benchmark runs."""
