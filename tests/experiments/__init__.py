"""Tests of the experiments (the runner, the verdict rules and one package per paper)."""
