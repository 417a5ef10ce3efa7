"""Tests of the Balles 2021 experiments."""
