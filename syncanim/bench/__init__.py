"""Timing harness used by ``syncanim bench`` and the scripts in benchmarks/."""
