"""Benchmarks of the fast engine against a plain forward+backward and other libraries."""
