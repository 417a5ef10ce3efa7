"""Tests of the EWC experiment."""
