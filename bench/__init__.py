"""Benchmarks of StreamSpace Plugins; see bench/README.md."""
