"""Tests of the Kunstner et al. 2019 experiments."""
