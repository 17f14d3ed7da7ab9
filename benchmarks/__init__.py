"""Cost benchmarks of dagr; run each as ``python -m benchmarks.NAME`` (see benchmarks/README.md)."""
