"""Wen et al. 2020 experiment (registered once implemented)."""
