"""Tests of the Wen et al. 2020 experiments."""
