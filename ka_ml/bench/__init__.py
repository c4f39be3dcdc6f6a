"""Benchmarks (run on demand, never at import)."""
