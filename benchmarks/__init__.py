"""Benchmarks: registry, profiles, metrics, the sweep runner and its reports."""
