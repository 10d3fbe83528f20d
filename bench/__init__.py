"""Benchmarks: each measures our path against its baseline in the same run and reports the ratio."""
